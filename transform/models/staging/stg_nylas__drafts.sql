{{ nylas_staging('drafts', epochs=['created_at', 'date', 'send_at']) }}
