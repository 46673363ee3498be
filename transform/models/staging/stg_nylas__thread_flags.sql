{{ nylas_staging('thread_flags', epochs=['latest_message_received_date', 'latest_message_sent_date']) }}
