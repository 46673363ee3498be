{#- One row per message and address: from, to, cc, bcc and reply_to of the messages that
    exist now; the email lower-cased, its domain split out. An address listed twice in one
    field of a message is one row (its first position). -#}
with addresses as (
    select
        m.grant_id,
        m.id as message_id,
        a.role,
        lower(trim(a.entry ->> 'email')) as email,
        nullif(a.entry ->> 'name', '') as name,
        a.position
    from {{ ref('nylas__messages') }} as m
    cross join lateral (
        select 'from' as role, e.value as entry, e.ordinality as position
        from jsonb_array_elements(coalesce(to_jsonb(m."from"), '[]'::jsonb))
            with ordinality as e (value, ordinality)
        union all
        select 'to', e.value, e.ordinality
        from jsonb_array_elements(coalesce(to_jsonb(m."to"), '[]'::jsonb))
            with ordinality as e (value, ordinality)
        union all
        select 'cc', e.value, e.ordinality
        from jsonb_array_elements(coalesce(to_jsonb(m.cc), '[]'::jsonb))
            with ordinality as e (value, ordinality)
        union all
        select 'bcc', e.value, e.ordinality
        from jsonb_array_elements(coalesce(to_jsonb(m.bcc), '[]'::jsonb))
            with ordinality as e (value, ordinality)
        union all
        select 'reply_to', e.value, e.ordinality
        from jsonb_array_elements(coalesce(to_jsonb(m.reply_to), '[]'::jsonb))
            with ordinality as e (value, ordinality)
    ) as a
    where jsonb_typeof(a.entry) = 'object'
),

ranked as (
    select
        *,
        row_number() over (
            partition by grant_id, message_id, role, email order by position
        ) as nth
    from addresses
    where email is not null and email <> ''
)

select
    grant_id,
    message_id,
    role,
    email,
    nullif(split_part(email, '@', 2), '') as domain,
    name,
    position
from ranked
where nth = 1
