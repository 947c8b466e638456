select
    cast(stage_key as {{ dbt.type_string() }}) as stage_key,
    cast(job_key as {{ dbt.type_string() }}) as job_key,
    cast(asset_class_id as {{ dbt.type_string() }}) as asset_class_id,
    cast(job_id as {{ dbt.type_string() }}) as job_id,
    cast(stage_id as {{ dbt.type_string() }}) as stage_id,
    cast(stage_type as {{ dbt.type_string() }}) as stage_type,
    cast(expected_minutes as double) as expected_minutes,
    cast(depth as integer) as depth,
    cast(coalesce(depends_on, '') as {{ dbt.type_string() }}) as depends_on,
    cast(is_terminal as boolean) as is_terminal,
    cast(entity_id as {{ dbt.type_string() }}) as entity_id
from {{ ref('stages') }}
