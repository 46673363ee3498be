{#- credentials that exist now: gone once a complete listing (grant shard 1) no longer saw them. -#}
with rows as (
    select *, _sdc_extracted_at as last_seen_at from {{ ref('stg_nylas__credentials') }}
)

select {{ nylas_columns(ref('stg_nylas__credentials'), except=['_sdc_extracted_at', '_sdc_deleted_at'], alias='r') }},
    r.last_seen_at
from rows as r
where r._sdc_deleted_at is null
  and not {{ nylas_gone('r', ['credentials'], grant_expr="''") }}
