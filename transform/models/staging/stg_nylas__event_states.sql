{{ nylas_staging('event_states', epochs=['updated_at']) }}
