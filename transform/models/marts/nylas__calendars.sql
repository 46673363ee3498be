{#- calendars that exist now: a row is gone once a complete read of its grant no longer
    saw it (a completion record newer than the row), or when its grant is gone. -#}
with rows as (
    select *, _sdc_extracted_at as last_seen_at from {{ ref('stg_nylas__calendars') }}
)

select {{ nylas_columns(ref('stg_nylas__calendars'), except=['_sdc_extracted_at', '_sdc_deleted_at'], alias='r') }},
    r.last_seen_at
from rows as r
where r._sdc_deleted_at is null
  and not {{ nylas_gone('r', ['calendars']) }}
  and not {{ nylas_grant_gone('r.grant_id') }}
