{{ nylas_staging('calendars', epochs=[]) }}
