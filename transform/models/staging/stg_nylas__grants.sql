{{ nylas_staging('grants', epochs=['created_at', 'updated_at']) }}
