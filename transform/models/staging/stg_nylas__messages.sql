{{ nylas_staging('messages', epochs=['created_at', 'date', 'send_at']) }}
