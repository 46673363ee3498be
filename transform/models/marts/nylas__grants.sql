{#- Grants that exist now: gone once a run that listed every grant (no grant_ids, no
    grant_shard) no longer saw them. An expired or invalid grant is listed: it stays. -#}
with rows as (
    select *, _sdc_extracted_at as last_seen_at from {{ ref('stg_nylas__grants') }}
)

select {{ nylas_columns(ref('stg_nylas__grants'), except=['_sdc_extracted_at', '_sdc_deleted_at'], alias='r') }},
    r.last_seen_at
from rows as r
where r._sdc_deleted_at is null
  and not {{ nylas_gone('r', ['grants'], grant_expr="''") }}
