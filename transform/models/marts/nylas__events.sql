{#- Events that exist now, with their latest status.

    An event is last seen when `events` or the `event_states` sweep last wrote it. It is
    gone once a complete read of its calendar no longer saw it: `events` with
    `updated_after` covers events updated since (the stored `updated_at` above the bound),
    `event_states` every event of its window, both only events overlapping the window read.
    Events of a calendar that is gone, and of a grant that is gone, are gone. -#}
with joined as (
    select
        e.*,
        s.status as swept_status,
        s.updated_at as swept_updated_at,
        greatest(e._sdc_extracted_at, s._sdc_extracted_at) as last_seen_at,
        coalesce(s._sdc_extracted_at > e._sdc_extracted_at, false) as swept_later
    from {{ ref('stg_nylas__events') }} as e
    left join {{ ref('stg_nylas__event_states') }} as s
        on s.grant_id = e.grant_id and s.calendar_id = e.calendar_id and s.id = e.id
),

latest as (
    select
        j.*,
        case when j.swept_later then j.swept_updated_at else j.updated_at end as key_updated
    from joined as j
)

select
    {{ nylas_columns(ref('stg_nylas__events'),
                     except=['status', 'updated_at', '_sdc_extracted_at', '_sdc_deleted_at'],
                     alias='l') }},
    case when l.swept_later then l.swept_status else l.status end as status,
    l.key_updated as updated_at,
    l.last_seen_at
from latest as l
where l._sdc_deleted_at is null
  and not {{ nylas_gone('l', ['events', 'event_states'], calendar=true, key='key_updated',
                        window=true) }}
  and not {{ nylas_grant_gone('l.grant_id') }}
  and not (
    exists (
        select 1 from {{ ref('stg_nylas__calendars') }} as c
        where c.grant_id = l.grant_id and c.id = l.calendar_id
    )
    and not exists (
        select 1 from {{ ref('nylas__calendars') }} as c
        where c.grant_id = l.grant_id and c.id = l.calendar_id
    )
  )
