with feeds as (

    select * from {{ ref('stg_ontology__feeds') }}

),

jobs as (

    select
        feed_id,
        {{ dbt.listagg('job_key', "','", 'order by job_key') }} as dependent_jobs,
        count(*) as dependent_job_count
    from {{ ref('stg_ontology__job_feeds') }}
    group by feed_id

)

select
    feeds.feed_id,
    feeds.provider,
    feeds.feed_name,
    feeds.staleness_sla_s,
    feeds.expected_latency_ms,
    feeds.expected_messages_per_min,
    coalesce(jobs.dependent_jobs, '') as dependent_jobs,
    coalesce(jobs.dependent_job_count, 0) as dependent_job_count,
    feeds.entity_id
from feeds
left join jobs on feeds.feed_id = jobs.feed_id
