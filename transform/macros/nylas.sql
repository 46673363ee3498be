{#- Helpers of the tap-nylas models. PostgreSQL (the tested path). -#}

{#- The target's metadata columns the models do not pass on. -#}
{% macro nylas_loader_columns() -%}
  {{ return(['_sdc_received_at', '_sdc_batched_at', '_sdc_sequence', '_sdc_table_version',
             '_sdc_sync_started_at']) }}
{%- endmacro %}

{#- Every column of `relation` but `except`, quoted, each prefixed by `alias.` when given. -#}
{% macro nylas_columns(relation, except=[], alias=none) -%}
  {%- if execute -%}
    {%- set skip = except | map('lower') | list -%}
    {%- for column in adapter.get_columns_in_relation(relation)
        if column.name | lower not in skip -%}
      {{ alias ~ '.' if alias else '' }}{{ adapter.quote(column.name) }}{{ ', ' if not loop.last }}
    {%- endfor -%}
  {%- else -%}
    *
  {%- endif -%}
{%- endmacro %}

{#- Epoch seconds (bigint) as a UTC timestamp. -#}
{% macro nylas_epoch(column) -%}
  to_timestamp({{ column }})
{%- endmacro %}

{#- A staging model: the source table, its epoch-second columns as timestamps (same names),
    the loader's own bookkeeping columns left out (but `_sdc_extracted_at`, when the record
    was written by the tap, and `_sdc_deleted_at`). -#}
{% macro nylas_staging(stream, epochs=[], extra=none) -%}
  {%- set relation = source('nylas', stream) -%}
  select
    {{ nylas_columns(relation, except=epochs + nylas_loader_columns(), alias='s') }}
    {%- for column in epochs %},
    {{ nylas_epoch('s.' ~ adapter.quote(column)) }} as {{ adapter.quote(column) }}
    {%- endfor %}
    {%- if extra %},
    {{ extra }}
    {%- endif %}
  from {{ relation }} as s
{%- endmacro %}

{#- Whether a complete read of the row's own partition no longer saw it.

    True when a completion record of one of `streams`, for the row's grant (and calendar),
    started after the row was last written (`row.last_seen_at`) and covers the row: its
    key (`row.key_value`, a timestamp) is above the read's lower bound and below its upper
    bound, and, for events, the event overlaps the window listed. A row whose key is null
    is covered only by a read without a key range. -#}
{% macro nylas_gone(row, streams, grant_expr=none, calendar=false, key=none, window=false) -%}
  exists (
    select 1 from {{ ref('stg_nylas__sync_coverage') }} as c
    where c.stream in ({% for s in streams %}'{{ s }}'{{ ', ' if not loop.last }}{% endfor %})
      and c.grant_id = {{ grant_expr or row ~ '.grant_id' }}
      {%- if calendar %}
      and c.calendar_id = {{ row }}.calendar_id
      {%- endif %}
      and c.read_started_at > {{ row }}.last_seen_at
      {%- if key %}
      and (c.range_start is null or {{ row }}.{{ key }} > c.range_start_at)
      and (c.range_end is null or {{ row }}.{{ key }} < c.range_end_at)
      {%- else %}
      and c.range_start is null and c.range_end is null
      {%- endif %}
      {%- if window %}
      and (
        c.window_start is null
        or ({{ row }}.ends_at > c.window_start_at and {{ row }}.starts_at < c.window_end_at)
      )
      {%- endif %}
  )
{%- endmacro %}

{#- Whether the row's grant is gone: listed once, then no longer by a run that listed every
    grant. -#}
{% macro nylas_grant_gone(grant_id) -%}
  (
    {{ grant_id }} in (select id from {{ ref('stg_nylas__grants') }})
    and {{ grant_id }} not in (select id from {{ ref('nylas__grants') }})
  )
{%- endmacro %}

{#- An event's `when` (time, timespan, date, datespan) as UTC start and end (end exclusive:
    an all-day event ends at midnight after its last day), whether it is all day, and its
    time zones. -#}
{% macro nylas_event_when(when) -%}
    {{ when }} ->> 'object' as when_object,
    case {{ when }} ->> 'object'
      when 'timespan' then to_timestamp(({{ when }} ->> 'start_time')::bigint)
      when 'time' then to_timestamp(({{ when }} ->> 'time')::bigint)
      when 'date' then (({{ when }} ->> 'date')::date)::timestamp at time zone 'UTC'
      when 'datespan' then (({{ when }} ->> 'start_date')::date)::timestamp at time zone 'UTC'
    end as starts_at,
    case {{ when }} ->> 'object'
      when 'timespan' then to_timestamp(({{ when }} ->> 'end_time')::bigint)
      when 'time' then to_timestamp(({{ when }} ->> 'time')::bigint)
      when 'date' then (({{ when }} ->> 'date')::date + 1)::timestamp at time zone 'UTC'
      when 'datespan' then (({{ when }} ->> 'end_date')::date + 1)::timestamp at time zone 'UTC'
    end as ends_at,
    coalesce({{ when }} ->> 'object' in ('date', 'datespan'), false) as is_all_day,
    coalesce({{ when }} ->> 'start_timezone', {{ when }} ->> 'timezone') as start_timezone,
    coalesce({{ when }} ->> 'end_timezone', {{ when }} ->> 'timezone') as end_timezone
{%- endmacro %}
