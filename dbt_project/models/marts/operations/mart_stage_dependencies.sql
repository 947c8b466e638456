{#- The dependency mapping between sub-stages: one row per edge "stage waits for depends_on stage", from
    the ontology and as declared by the emitters, and whether the two agree. -#}

with ontology as (

    select * from {{ ref('stg_ontology__stage_dependencies') }}

),

declared as (

    select * from {{ ref('int_stage_declared_dependencies') }}

),

stages as (

    select * from {{ ref('stg_ontology__stages') }}

),

edges as (

    select
        coalesce(ontology.stage_key, declared.stage_key) as stage_key,
        coalesce(ontology.depends_on_stage_key, declared.depends_on_stage_key) as depends_on_stage_key,
        coalesce(ontology.job_key, declared.job_key) as job_key,
        coalesce(ontology.stage_id, declared.stage_id) as stage_id,
        coalesce(ontology.depends_on_stage_id, declared.depends_on_stage_id) as depends_on_stage_id,
        ontology.stage_key is not null as in_ontology,
        declared.stage_key is not null as declared_by_emitters,
        declared.first_declared_ts,
        declared.last_declared_ts
    from ontology
    full outer join declared
        on ontology.stage_key = declared.stage_key
        and ontology.depends_on_stage_id = declared.depends_on_stage_id

)

select
    {{ cms.surrogate_key(['edges.stage_key', 'edges.depends_on_stage_key']) }} as stage_dependency_key,
    edges.job_key,
    edges.stage_key,
    edges.stage_id,
    edges.depends_on_stage_key,
    edges.depends_on_stage_id,
    stage.stage_type,
    upstream.stage_type as depends_on_stage_type,
    stage.depth as stage_depth,
    upstream.depth as depends_on_stage_depth,
    edges.in_ontology,
    edges.declared_by_emitters,
    case
        when edges.in_ontology and edges.declared_by_emitters then 'confirmed'
        when edges.in_ontology then 'not_declared'
        else 'undeclared_in_ontology'
    end as agreement,
    edges.first_declared_ts,
    edges.last_declared_ts
from edges
left join stages as stage on edges.stage_key = stage.stage_key
left join stages as upstream on edges.depends_on_stage_key = upstream.stage_key
