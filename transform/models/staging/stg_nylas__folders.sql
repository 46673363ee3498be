{{ nylas_staging('folders', epochs=[]) }}
