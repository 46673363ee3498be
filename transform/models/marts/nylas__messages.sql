{#- Messages that exist now, with their latest flags and folders.

    A message is last seen when `messages` or the `message_flags` sweep last wrote it; the
    flags come from whichever wrote it last. It is gone once a complete read of its grant
    (`messages` from its lower bound, or the sweep's window) that covers its date no longer
    saw it. -#}
with joined as (
    select
        m.*,
        f.unread as swept_unread,
        f.starred as swept_starred,
        f.folders as swept_folders,
        f._sdc_extracted_at as swept_at,
        greatest(m._sdc_extracted_at, f._sdc_extracted_at) as last_seen_at,
        coalesce(f._sdc_extracted_at > m._sdc_extracted_at, false) as swept_later
    from {{ ref('stg_nylas__messages') }} as m
    left join {{ ref('stg_nylas__message_flags') }} as f
        on f.grant_id = m.grant_id and f.id = m.id
)

select
    {{ nylas_columns(ref('stg_nylas__messages'),
                     except=['unread', 'starred', 'folders', '_sdc_extracted_at', '_sdc_deleted_at'],
                     alias='j') }},
    case when j.swept_later then j.swept_unread else j.unread end as unread,
    case when j.swept_later then j.swept_starred else j.starred end as starred,
    case when j.swept_later then j.swept_folders else j.folders end as folders,
    j.last_seen_at
from joined as j
where j._sdc_deleted_at is null
  and not {{ nylas_gone('j', ['messages', 'message_flags'], key='date') }}
  and not {{ nylas_grant_gone('j.grant_id') }}
