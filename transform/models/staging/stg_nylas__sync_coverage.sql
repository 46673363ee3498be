{#- Completion records: epoch bounds also as timestamps, to compare with the rows' own. -#}
{{ nylas_staging('sync_coverage', extra="
    to_timestamp(s.range_start) as range_start_at,
    to_timestamp(s.range_end) as range_end_at,
    to_timestamp(s.window_start) as window_start_at,
    to_timestamp(s.window_end) as window_end_at") }}
