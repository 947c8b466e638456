select
    cast(job_key as {{ dbt.type_string() }}) as job_key,
    cast(stage_key as {{ dbt.type_string() }}) as stage_key,
    cast(depends_on_stage_key as {{ dbt.type_string() }}) as depends_on_stage_key,
    cast(stage_id as {{ dbt.type_string() }}) as stage_id,
    cast(depends_on_stage_id as {{ dbt.type_string() }}) as depends_on_stage_id
from {{ ref('stage_dependencies') }}
