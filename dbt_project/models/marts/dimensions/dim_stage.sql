{#- One row per sub-stage of a job, with its edges in the stage DAG (the stages it waits for and the stages
    that wait for it), its depth, and the resources it uses. Edges one per row: mart_stage_dependencies. -#}

with stages as (

    select * from {{ ref('stg_ontology__stages') }}

),

edges as (

    select * from {{ ref('stg_ontology__stage_dependencies') }}

),

downstream as (

    select
        depends_on_stage_key as stage_key,
        {{ dbt.listagg('stage_id', "','", 'order by stage_id') }} as downstream_stages,
        count(*) as downstream_count
    from edges
    group by depends_on_stage_key

),

upstream as (

    select stage_key, count(*) as upstream_count
    from edges
    group by stage_key

),

resources as (

    select
        stage_key,
        {{ dbt.listagg('resource_id', "','", 'order by resource_id') }} as resources
    from {{ ref('stg_ontology__stage_resources') }}
    group by stage_key

)

select
    stages.stage_key,
    stages.job_key,
    stages.asset_class_id,
    stages.job_id,
    stages.stage_id,
    stages.stage_type,
    stages.expected_minutes,
    stages.depth,
    stages.depends_on,
    coalesce(upstream.upstream_count, 0) as upstream_count,
    coalesce(downstream.downstream_stages, '') as downstream_stages,
    coalesce(downstream.downstream_count, 0) as downstream_count,
    stages.is_terminal,
    coalesce(resources.resources, '') as resources,
    stages.entity_id
from stages
left join upstream on stages.stage_key = upstream.stage_key
left join downstream on stages.stage_key = downstream.stage_key
left join resources on stages.stage_key = resources.stage_key
