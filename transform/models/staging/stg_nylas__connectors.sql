{{ nylas_staging('connectors', epochs=['created_at', 'updated_at']) }}
