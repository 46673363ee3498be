{{ nylas_staging('events', epochs=['created_at', 'original_start_time', 'updated_at'], extra=nylas_event_when('s."when"')) }}
