"""The semantic layer questions are answered from: which marts hold which entities and measures, which
columns are their dimensions, where each sits in time, and what "usual" means for each measure.

The same measures and dimensions are declared for analysts as dbt semantic models and metrics
(dbt_project/models/semantic/); a test keeps the two in step. Nothing outside these marts can be read:
the guard allows exactly the tables named here.
"""

from __future__ import annotations

from dataclasses import dataclass, field

# marts a question may read (the guard's allow-list), by name within the marts schema
ALLOWED_MARTS = (
    "fct_batch_runs",
    "mart_stage_bottlenecks",
    "fct_feed_status",
    "fct_feed_outages",
    "fct_infra_metrics",
    "dim_job",
    "dim_stage",
    "dim_feed",
    "dim_resource",
    "dim_asset_class",
)

# "longer than usual": above this multiple of the usual (median) value; the marts' slow_factor
SLOW_FACTOR = 1.5
USUAL_DAYS = 7  # the reference window of "usual" when less than four weeks of history exist
USUAL_WEEKS = 4  # with this many weeks of history, "usual" compares the same weekday only
USUAL_MIN_SAMPLES = 1


@dataclass(frozen=True)
class Dimension:
    """A way to filter or group: a column of the table (or of the entity it belongs to)."""

    name: str
    column: str
    help: str


@dataclass(frozen=True)
class Table:
    """A mart a question reads, with the columns its answer shows and the dimensions it carries."""

    name: str
    time_column: str
    columns: tuple[str, ...]
    dimensions: dict[str, str]  # dimension name -> column
    order: tuple[str, ...] = ()


@dataclass(frozen=True)
class Entity:
    """What a listing question lists ("show me the runs that ...")."""

    name: str
    table: str
    help: str
    noun: str  # singular, for the answer sentence
    keys: tuple[str, ...]  # the columns that identify a row (exact-match evaluation compares these)


@dataclass(frozen=True)
class Metric:
    """A measure: an aggregate over one mart, placed in time by one column, with its meaning of usual."""

    name: str
    table: str
    expr: str  # SQL aggregate over the table's columns (sqlglot parses it; no free text reaches it)
    unit: str
    help: str
    time_column: str
    where: str = ""  # rows it counts
    usual: str = ""  # what "usual" means for it (the answer quotes this)
    higher_is_worse: bool = True
    synonyms: tuple[str, ...] = field(default=())


RUN_COLUMNS = (
    "run_id",
    "job_key",
    "asset_class_id",
    "job_id",
    "status",
    "scheduled_start_ts",
    "actual_start_ts",
    "actual_end_ts",
    "duration_s",
    "start_delay_s",
    "error_type",
    "records",
    "records_per_minute",
    "sla_deadline_ts",
    "is_sla_breached",
)
STAGE_COLUMNS = (
    "run_id",
    "job_key",
    "asset_class_id",
    "stage_key",
    "stage_id",
    "final_status",
    "attempts",
    "stage_started_ts",
    "stage_finished_ts",
    "elapsed_s",
    "is_on_critical_path",
)
JOB_COLUMNS = ("job_key", "asset_class_id", "job_id", "job_name", "schedule_cron", "sla_minutes", "expected_minutes", "required_feeds")
OUTAGE_COLUMNS = ("feed_id", "outage_start_ts", "outage_end_ts", "duration_minutes", "is_ongoing")

TABLES: dict[str, Table] = {
    "fct_batch_runs": Table(
        "fct_batch_runs",
        "actual_start_ts",
        RUN_COLUMNS,
        {"asset_class": "asset_class_id", "job": "job_key", "status": "status", "error_type": "error_type"},
        ("actual_start_ts", "run_id"),
    ),
    "mart_stage_bottlenecks": Table(
        "mart_stage_bottlenecks",
        "stage_started_ts",
        STAGE_COLUMNS,
        {
            "asset_class": "asset_class_id",
            "job": "job_key",
            "stage": "stage_key",
            "stage_type": "stage_key",  # resolved to the stages of the type through the ontology
            "status": "final_status",
        },
        ("stage_started_ts", "run_id", "stage_id"),
    ),
    "fct_feed_status": Table(
        "fct_feed_status",
        "minute_ts",
        ("feed_id", "provider"),
        {"feed": "feed_id", "provider": "provider", "asset_class": "feed_id", "job": "feed_id"},
        ("feed_id",),
    ),
    "fct_feed_outages": Table(
        "fct_feed_outages",
        "outage_start_ts",
        OUTAGE_COLUMNS,
        {"feed": "feed_id", "provider": "feed_id", "asset_class": "feed_id", "job": "feed_id"},
        ("outage_start_ts", "feed_id"),
    ),
    "dim_job": Table("dim_job", "", JOB_COLUMNS, {"asset_class": "asset_class_id", "job": "job_key"}, ("job_key",)),
    "fct_infra_metrics": Table(
        "fct_infra_metrics",
        "minute_ts",
        ("entity_id",),
        {"resource": "entity_id", "resource_kind": "entity_id", "asset_class": "entity_id", "job": "entity_id"},
        ("entity_id",),
    ),
}

ENTITIES: dict[str, Entity] = {
    "runs": Entity("runs", "fct_batch_runs", "batch runs of the jobs", "run", ("run_id",)),
    "stage_runs": Entity(
        "stage_runs",
        "mart_stage_bottlenecks",
        "sub-stages of the runs (one row per run and stage, retries included)",
        "sub-stage run",
        ("run_id", "stage_id"),
    ),
    "feeds": Entity(
        "feeds", "fct_feed_status", "market-data feeds, with how they did over the time asked", "feed", ("feed_id",)
    ),
    "outages": Entity("outages", "fct_feed_outages", "feed outages", "outage", ("feed_id", "outage_start_ts")),
    "jobs": Entity(
        "jobs",
        "dim_job",
        "the jobs of the ontology (schedule, SLA, the feeds they need): which jobs depend on a feed, a resource or a stage type",
        "job",
        ("job_key",),
    ),
    "resources": Entity(
        "resources",
        "fct_infra_metrics",
        "AWS resources (RDS, SQS, Lambda, EKS), with a measure over the time asked",
        "resource",
        ("resource_id",),
    ),
}

_RUN_USUAL = (
    f"the median of the same job's successful runs over the {USUAL_DAYS} days before the period asked "
    f"(the same weekday of the {USUAL_WEEKS} weeks before, once {USUAL_WEEKS} weeks of history exist)"
)
_STAGE_USUAL = _RUN_USUAL.replace("job's successful runs", "sub-stage's successful runs")
_FEED_USUAL = (
    f"the same feed over the {USUAL_DAYS} days before the period asked (same weekday of the "
    f"{USUAL_WEEKS} weeks before, once {USUAL_WEEKS} weeks exist)"
)
_RES_USUAL = _FEED_USUAL.replace("same feed", "same resource")

METRICS: dict[str, Metric] = {
    m.name: m
    for m in [
        Metric(
            "runs",
            "fct_batch_runs",
            "count(*)",
            "runs",
            "batch runs started",
            "actual_start_ts",
            usual=_RUN_USUAL.replace("median of the same job's successful runs", "daily mean of the same job's runs"),
        ),
        Metric(
            "failures",
            "fct_batch_runs",
            "count(*)",
            "failed runs",
            "batch runs that failed (placed in time by when they ended)",
            "actual_end_ts",
            where="status = 'failed'",
            usual=_RUN_USUAL.replace("median of the same job's successful runs", "daily mean of the same job's failures"),
        ),
        Metric(
            "failure_rate",
            "fct_batch_runs",
            "100.0 * count_if(status = 'failed') / nullif(count(*), 0)",
            "%",
            "failed runs over finished runs (by end time)",
            "actual_end_ts",
            where="status in ('success', 'failed')",
            usual=_RUN_USUAL.replace("median of the same job's successful runs", "failure rate of the same job"),
        ),
        Metric(
            "duration",
            "fct_batch_runs",
            "avg(duration_s)",
            "s",
            "mean duration of successful runs (by end time)",
            "actual_end_ts",
            where="status = 'success'",
            usual=_RUN_USUAL,
        ),
        Metric(
            "start_delay",
            "fct_batch_runs",
            "avg(start_delay_s)",
            "s",
            "mean seconds from the scheduled to the actual start",
            "actual_start_ts",
            usual=_RUN_USUAL.replace("successful runs", "runs"),
        ),
        Metric(
            "records_per_minute",
            "fct_batch_runs",
            "sum(records) / nullif(sum(duration_s) / 60.0, 0)",
            "records/min",
            "records processed per minute of successful run time (by end time)",
            "actual_end_ts",
            where="status = 'success'",
            usual=_RUN_USUAL,
            higher_is_worse=False,
        ),
        Metric(
            "sla_compliance",
            "fct_batch_runs",
            "100.0 * count_if(not is_sla_breached) / nullif(count(*), 0)",
            "%",
            "runs that succeeded by their SLA deadline, over runs whose deadline fell in the period",
            "sla_deadline_ts",
            usual=_RUN_USUAL.replace("median of the same job's successful runs", "compliance of the same job"),
            higher_is_worse=False,
        ),
        Metric(
            "sla_breaches",
            "fct_batch_runs",
            "count(*)",
            "breaches",
            "runs not succeeded by their SLA deadline (placed in time by the deadline)",
            "sla_deadline_ts",
            where="is_sla_breached",
            usual=_RUN_USUAL.replace("median of the same job's successful runs", "daily mean of the same job's breaches"),
        ),
        Metric(
            "stage_duration",
            "mart_stage_bottlenecks",
            "avg(elapsed_s)",
            "s",
            "mean elapsed seconds of a sub-stage in a run (retries included), successful ones",
            "stage_started_ts",
            where="final_status = 'success'",
            usual=_STAGE_USUAL,
        ),
        Metric(
            "stage_failures",
            "mart_stage_bottlenecks",
            "count(*)",
            "failed sub-stages",
            "sub-stages whose final attempt failed",
            "stage_started_ts",
            where="final_status = 'failed'",
            usual=_STAGE_USUAL.replace("median of the same sub-stage's successful runs", "daily mean of the sub-stage's failures"),
        ),
        Metric(
            "availability",
            "fct_feed_status",
            "100.0 * count_if(is_up) / nullif(count(is_up), 0)",
            "%",
            "minutes a feed was up over minutes with a heartbeat",
            "minute_ts",
            usual=_FEED_USUAL,
            higher_is_worse=False,
        ),
        Metric(
            "staleness",
            "fct_feed_status",
            "max(staleness_s)",
            "s",
            "worst staleness (seconds since the last update) of a feed",
            "minute_ts",
            usual=_FEED_USUAL,
        ),
        Metric(
            "stale_minutes",
            "fct_feed_status",
            "count_if(is_stale)",
            "minutes",
            "minutes a feed's data was older than its staleness SLA (delayed)",
            "minute_ts",
            usual=_FEED_USUAL,
        ),
        Metric(
            "latency",
            "fct_feed_status",
            "avg(latency_ms)",
            "ms",
            "mean provider-to-CMS latency of a feed",
            "minute_ts",
            usual=_FEED_USUAL,
        ),
        Metric(
            "messages",
            "fct_feed_status",
            "sum(messages)",
            "messages",
            "messages received from a feed",
            "minute_ts",
            usual=_FEED_USUAL,
            higher_is_worse=False,
        ),
        Metric(
            "outages",
            "fct_feed_outages",
            "count(*)",
            "outages",
            "feed outages that began in the period",
            "outage_start_ts",
            usual=_FEED_USUAL,
        ),
        Metric(
            "downtime",
            "fct_feed_outages",
            "sum(duration_minutes)",
            "minutes",
            "minutes of feed outages that began in the period",
            "outage_start_ts",
            usual=_FEED_USUAL,
        ),
        Metric(
            "cpu",
            "fct_infra_metrics",
            "max(avg_value)",
            "%",
            "peak CPU utilisation (minute averages: RDS CPUUtilization, EKS pod/node CPU utilisation)",
            "minute_ts",
            where="metric in ('CPUUtilization', 'pod_cpu_utilization', 'node_cpu_utilization')",
            usual=_RES_USUAL,
        ),
        Metric(
            "memory",
            "fct_infra_metrics",
            "max(avg_value)",
            "%",
            "peak memory utilisation (EKS pod/node memory utilisation)",
            "minute_ts",
            where="metric in ('pod_memory_utilization', 'node_memory_utilization')",
            usual=_RES_USUAL,
        ),
        Metric(
            "connections",
            "fct_infra_metrics",
            "max(avg_value)",
            "connections",
            "peak database connections (RDS DatabaseConnections)",
            "minute_ts",
            where="metric = 'DatabaseConnections'",
            usual=_RES_USUAL,
        ),
        Metric(
            "queue_depth",
            "fct_infra_metrics",
            "max(avg_value)",
            "messages",
            "peak visible messages of a queue (SQS ApproximateNumberOfMessagesVisible)",
            "minute_ts",
            where="metric = 'ApproximateNumberOfMessagesVisible'",
            usual=_RES_USUAL,
        ),
    ]
}

# group-by dimensions a metric question can ask for ("by asset class", "per feed", "by hour")
GROUPINGS: dict[str, dict[str, str]] = {
    "fct_batch_runs": {"asset_class": "asset_class_id", "job": "job_key", "status": "status"},
    "mart_stage_bottlenecks": {"asset_class": "asset_class_id", "job": "job_key", "stage": "stage_key"},
    "fct_feed_status": {"feed": "feed_id", "provider": "provider"},
    "fct_feed_outages": {"feed": "feed_id"},
    "fct_infra_metrics": {"resource": "entity_id"},
}
TIME_GRAINS = ("day", "hour")


def describe() -> str:
    """The measures and entities, one line each (the OpenAI engine's tool description and `cms ask --help`)."""
    lines = [f"- {m.name}: {m.help} [{m.unit}]" for m in METRICS.values()]
    lines += [f"- list {e.name}: {e.help}" for e in ENTITIES.values()]
    return "\n".join(lines)
