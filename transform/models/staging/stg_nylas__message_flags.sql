{{ nylas_staging('message_flags', epochs=['date']) }}
