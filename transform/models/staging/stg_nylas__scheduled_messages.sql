{{ nylas_staging('scheduled_messages', epochs=['close_time']) }}
