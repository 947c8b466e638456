{#- One row per feed and minute: up or down, latency, messages, missing fields, invalid values and
    staleness, from the feed's heartbeats. outage_start_ts ties each down minute to its outage (the first
    down minute with no up minute since): an outage that began before the window carries on from the
    stored minutes, so outages are whole across partitions. Incremental on event time. -#}
{{
    config(
        materialized='incremental',
        unique_key=['feed_id', 'minute_ts'],
        incremental_strategy=cms.incremental_strategy(),
        on_schema_change='append_new_columns',
    )
}}

{%- set window = cms.event_window('last_heartbeat_ts') -%}

with heartbeats as (

    select * from {{ ref('stg_cms__feed_heartbeats') }}
    where {{ cms.in_window('event_ts', window) }}

),

minutes as (

    select
        feed_id,
        minute_ts,
        max(provider) as provider,
        min(case when measure = 'up' then value end) as up_value,
        avg(case when measure = 'latency' then value end) as latency_ms,
        sum(case when measure = 'messages' then value end) as messages,
        sum(case when measure = 'missing_fields' then value end) as missing_fields,
        sum(case when measure = 'invalid_values' then value end) as invalid_values,
        max(case when measure = 'staleness' then value end) as staleness_s,
        max(event_ts) as last_heartbeat_ts
    from heartbeats
    group by feed_id, minute_ts

),

marked as (

    select
        minutes.*,
        case when up_value is null then null else up_value >= 1 end as is_up,
        sum(case when up_value >= 1 then 1 else 0 end) over (
            partition by feed_id order by minute_ts rows between unbounded preceding and current row
        ) as up_seq
    from minutes

),

islands as (

    select feed_id, up_seq, min(minute_ts) as island_start_ts
    from marked
    where is_up = false
    group by feed_id, up_seq

),

{% if is_incremental() and window.start is not none %}
previous as (

    {#- the last stored minute before the window, per feed: is an outage still open there? -#}
    select feed_id, is_up as previous_is_up, outage_start_ts as previous_outage_start_ts
    from (
        select
            feed_id,
            is_up,
            outage_start_ts,
            row_number() over (partition by feed_id order by minute_ts desc) as rn
        from {{ this }}
        where minute_ts < {{ window.start }}
            and minute_ts >= {{ dbt.dateadd('day', -7, window.start) }}
    ) as ranked
    where rn = 1

),
{% endif %}

feeds as (

    select * from {{ ref('stg_ontology__feeds') }}

)

select
    marked.feed_id,
    marked.minute_ts,
    cast(marked.minute_ts as date) as status_date,
    {{ dbt.date_trunc('hour', 'marked.minute_ts') }} as hour_ts,
    {{ cms.hour_of_week('marked.minute_ts') }} as hour_of_week,
    coalesce(marked.provider, feeds.provider) as provider,
    marked.is_up,
    marked.latency_ms,
    cast(marked.messages as bigint) as messages,
    cast(marked.missing_fields as bigint) as missing_fields,
    cast(marked.invalid_values as bigint) as invalid_values,
    marked.staleness_s,
    marked.staleness_s > feeds.staleness_sla_s as is_stale,
    case
        when marked.is_up = false then
            {% if is_incremental() and window.start is not none -%}
            case
                when marked.up_seq = 0 and previous.previous_is_up = false
                    then coalesce(previous.previous_outage_start_ts, islands.island_start_ts)
                else islands.island_start_ts
            end
            {%- else -%}
            islands.island_start_ts
            {%- endif %}
    end as outage_start_ts,
    marked.last_heartbeat_ts
from marked
left join islands
    on marked.feed_id = islands.feed_id and marked.up_seq = islands.up_seq
left join feeds on marked.feed_id = feeds.feed_id
{% if is_incremental() and window.start is not none %}
left join previous on marked.feed_id = previous.feed_id
{% endif %}
