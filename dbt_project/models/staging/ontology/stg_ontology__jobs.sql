select
    cast(job_key as {{ dbt.type_string() }}) as job_key,
    cast(asset_class_id as {{ dbt.type_string() }}) as asset_class_id,
    cast(job_id as {{ dbt.type_string() }}) as job_id,
    cast(job_name as {{ dbt.type_string() }}) as job_name,
    cast(schedule_cron as {{ dbt.type_string() }}) as schedule_cron,
    cast(sla_minutes as integer) as sla_minutes,
    cast(expected_records as bigint) as expected_records,
    cast(expected_minutes as double) as expected_minutes,
    cast(stage_count as integer) as stage_count,
    cast(entity_id as {{ dbt.type_string() }}) as entity_id
from {{ ref('jobs') }}
