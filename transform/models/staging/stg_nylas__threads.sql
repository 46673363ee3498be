{{ nylas_staging('threads', epochs=['earliest_message_date', 'latest_message_received_date', 'latest_message_sent_date']) }}
