{#- One row per feed outage: a maximal stretch of down minutes (cms.feed.up = 0) with no up minute in
    between. Ends are exclusive (the minute after the last down minute); an outage still open at the latest
    heartbeat is marked ongoing. Incremental: outages with a minute in the window are re-measured whole; a
    post-hook drops outages whose first minute no longer starts one (late data merged two, or split one). -#}
{{
    config(
        materialized='incremental',
        unique_key=['feed_id', 'outage_start_ts'],
        incremental_strategy=cms.incremental_strategy(),
        on_schema_change='append_new_columns',
        post_hook=[
            "delete from {{ this }} where feed_id || '|' || cast(outage_start_ts as {{ dbt.type_string() }}) not in (
                select feed_id || '|' || cast(minute_ts as {{ dbt.type_string() }})
                from {{ ref('fct_feed_status') }}
                where outage_start_ts = minute_ts)"
        ],
    )
}}

{%- set window = cms.event_window('watermark_ts') -%}

with status as (

    select * from {{ ref('fct_feed_status') }}

),

touched as (

    select distinct feed_id, outage_start_ts
    from status
    where outage_start_ts is not null
        and {{ cms.in_window('minute_ts', {'start': window.start, 'end': none}) }}

),

down_minutes as (

    select status.feed_id, status.outage_start_ts, status.minute_ts
    from status
    inner join touched
        on status.feed_id = touched.feed_id and status.outage_start_ts = touched.outage_start_ts
    {% if window.start is not none %}
    where status.minute_ts >= (select min(outage_start_ts) from touched)
    {% endif %}

),

latest as (

    select feed_id, max(minute_ts) as latest_minute_ts, max(last_heartbeat_ts) as watermark_ts
    from status
    {% if window.start is not none %}
    where status.minute_ts >= (select min(outage_start_ts) from touched)
    {% endif %}
    group by feed_id

),

outages as (

    select
        feed_id,
        outage_start_ts,
        max(minute_ts) as last_down_minute_ts,
        count(*) as down_minutes
    from down_minutes
    group by feed_id, outage_start_ts

)

select
    {{ cms.surrogate_key(['outages.feed_id', 'outages.outage_start_ts']) }} as feed_outage_key,
    outages.feed_id,
    outages.outage_start_ts,
    {{ dbt.dateadd('minute', 1, 'outages.last_down_minute_ts') }} as outage_end_ts,
    cast(outages.outage_start_ts as date) as outage_date,
    {{ dbt.datediff('outages.outage_start_ts', 'outages.last_down_minute_ts', 'minute') }} + 1 as duration_minutes,
    outages.down_minutes,
    outages.last_down_minute_ts >= latest.latest_minute_ts as is_ongoing,
    latest.watermark_ts
from outages
inner join latest on outages.feed_id = latest.feed_id
