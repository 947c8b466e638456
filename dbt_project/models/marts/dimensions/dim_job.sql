with jobs as (

    select * from {{ ref('stg_ontology__jobs') }}

),

asset_classes as (

    select * from {{ ref('stg_ontology__asset_classes') }}

),

feeds as (

    select
        job_key,
        {{ dbt.listagg('feed_id', "','", 'order by feed_id') }} as required_feeds,
        count(*) as feed_count
    from {{ ref('stg_ontology__job_feeds') }}
    group by job_key

)

select
    jobs.job_key,
    jobs.asset_class_id,
    asset_classes.asset_class_name,
    jobs.job_id,
    jobs.job_name,
    jobs.schedule_cron,
    jobs.sla_minutes,
    jobs.expected_minutes,
    jobs.expected_records,
    jobs.stage_count,
    coalesce(feeds.required_feeds, '') as required_feeds,
    coalesce(feeds.feed_count, 0) as feed_count,
    jobs.entity_id
from jobs
left join asset_classes on jobs.asset_class_id = asset_classes.asset_class_id
left join feeds on jobs.job_key = feeds.job_key
