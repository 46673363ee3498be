{{ nylas_staging('contacts', epochs=['updated_at']) }}
