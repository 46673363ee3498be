{{ nylas_staging('credentials', epochs=['created_at', 'updated_at']) }}
