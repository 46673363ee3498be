{{ nylas_staging('contact_groups', epochs=[]) }}
