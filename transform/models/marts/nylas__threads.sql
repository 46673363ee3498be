{#- Threads that exist now, with their latest flags, folders, message IDs and dates.

    As for messages, with the `thread_flags` sweep. A thread whose newest message was deleted
    moves back in time and may leave both the incremental range and the sweep window: it is
    kept as long as `nylas__messages` holds one of its messages. -#}
with joined as (
    select
        t.*,
        f.unread as swept_unread,
        f.starred as swept_starred,
        f.folders as swept_folders,
        f.message_ids as swept_message_ids,
        f.latest_message_received_date as swept_received,
        f.latest_message_sent_date as swept_sent,
        greatest(t._sdc_extracted_at, f._sdc_extracted_at) as last_seen_at,
        coalesce(f._sdc_extracted_at > t._sdc_extracted_at, false) as swept_later
    from {{ ref('stg_nylas__threads') }} as t
    left join {{ ref('stg_nylas__thread_flags') }} as f
        on f.grant_id = t.grant_id and f.id = t.id
),

latest as (
    select
        j.*,
        case when j.swept_later then j.swept_received
             else j.latest_message_received_date end as key_received
    from joined as j
)

select
    {{ nylas_columns(ref('stg_nylas__threads'),
                     except=['unread', 'starred', 'folders', 'message_ids',
                             'latest_message_received_date', 'latest_message_sent_date',
                             '_sdc_extracted_at', '_sdc_deleted_at'],
                     alias='l') }},
    case when l.swept_later then l.swept_unread else l.unread end as unread,
    case when l.swept_later then l.swept_starred else l.starred end as starred,
    case when l.swept_later then l.swept_folders else l.folders end as folders,
    case when l.swept_later then l.swept_message_ids else l.message_ids end as message_ids,
    l.key_received as latest_message_received_date,
    case when l.swept_later then l.swept_sent else l.latest_message_sent_date end
        as latest_message_sent_date,
    l.last_seen_at
from latest as l
where l._sdc_deleted_at is null
  and not {{ nylas_grant_gone('l.grant_id') }}
  and not (
    {{ nylas_gone('l', ['threads', 'thread_flags'], key='key_received') }}
    and not exists (
        select 1 from {{ ref('nylas__messages') }} as m
        where m.grant_id = l.grant_id and m.thread_id = l.id
    )
  )
