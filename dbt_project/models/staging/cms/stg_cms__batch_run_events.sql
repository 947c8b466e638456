{#- One row per cms.batch.run.* point: the events of batch runs (started, finished, duration, records,
    bytes) with their attributes parsed. Rename and cast only; runs are assembled downstream. -#}
with points as (

    select * from {{ source('cms', 'metric_points') }}
    where metric_name in (
        'cms.batch.run.started',
        'cms.batch.run.finished',
        'cms.batch.run.duration',
        'cms.batch.run.records',
        'cms.batch.run.bytes'
    )

)

select
    point_id,
    substr(metric_name, {{ ('cms.batch.run.' | length) + 1 }}) as event_type,
    run_id,
    asset_class as asset_class_id,
    job as job_id,
    asset_class || '.' || job as job_key,
    nullif(status, '') as status,
    nullif({{ cms.json_attr('attributes', 'cms.error_type') }}, '') as error_type,
    {{ cms.parse_iso_ts(cms.json_attr('attributes', 'cms.scheduled_start')) }} as scheduled_start_ts,
    ts as event_ts,
    start_ts as interval_start_ts,
    value,
    service_name,
    environment,
    source,
    ingested_at
from points
