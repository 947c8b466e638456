{#- One row per cms.stage.run.* point: the events of stage attempts (started, finished, duration,
    records) with their attributes parsed. An attempt is (run_id, stage_id, attempt). -#}
with points as (

    select * from {{ source('cms', 'metric_points') }}
    where metric_name in (
        'cms.stage.run.started',
        'cms.stage.run.finished',
        'cms.stage.run.duration',
        'cms.stage.run.records'
    )

)

select
    point_id,
    substr(metric_name, {{ ('cms.stage.run.' | length) + 1 }}) as event_type,
    run_id,
    asset_class as asset_class_id,
    job as job_id,
    asset_class || '.' || job as job_key,
    stage as stage_id,
    asset_class || '.' || job || '.' || stage as stage_key,
    {{ cms.json_attr('attributes', 'cms.stage_type') }} as stage_type,
    cast({{ cms.json_attr('attributes', 'cms.attempt') }} as integer) as attempt,
    cast({{ cms.json_attr('attributes', 'cms.retries') }} as integer) as retries,
    coalesce({{ cms.json_attr('attributes', 'cms.stage_depends_on') }}, '') as declared_depends_on,
    nullif(status, '') as status,
    nullif({{ cms.json_attr('attributes', 'cms.error_type') }}, '') as error_type,
    ts as event_ts,
    start_ts as interval_start_ts,
    value,
    service_name,
    environment,
    source,
    ingested_at
from points
