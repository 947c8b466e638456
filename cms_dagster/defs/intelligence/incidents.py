"""Incident reports in Dagster: one dynamic partition per incident, requested by a sensor as the detector runs.

The sensor reads the anomalies asset's new materializations, finds the incidents (confirmed alarm episodes
grouped by cms_dagster.incidents.grouping) of the hours they cover (and a day before) and requests an
``incident_report`` run for each incident whose report is new or out of date: the run key is
``<incident id>:<alarms>:<open|closed>``, so a report is rewritten when more alarms or episodes join and
once more when the incident closes, and a re-run or back-fill of the same data
asks for nothing new. The report's Markdown is the materialization's metadata; the report itself goes to
the warehouse (intelligence.incidents) and the lake (archive zone, incidents/<id>.json).
"""


import datetime as dt

import dagster as dg
import pandas as pd

from cms_dagster.defs.alerting.alerts import alert_on_report_failure, alert_with_incident_report
from cms_dagster.defs.partitions import hourly_partitions
from cms_dagster.domain import load_ontology
from cms_dagster.incidents.report import build_report, find_episode, scored_until, to_markdown
from cms_dagster.incidents.run import episode_versions
from cms_dagster.incidents.store import save_report
from cms_dagster.resources import LakeResource, WarehouseResource
from cms_dagster.resources.llm import LlmResource

ANOMALIES = dg.AssetKey(["intelligence", "anomalies"])
INCIDENT_REPORT = dg.AssetKey(["intelligence", "incident_report"])
incident_partitions = dg.DynamicPartitionsDefinition(name="incidents")


@dg.asset(
    key=INCIDENT_REPORT,
    group_name="intelligence",
    partitions_def=incident_partitions,
    # an incident depends on the detector's alarms around it, not on one hour of them
    deps=[dg.AssetDep(ANOMALIES, partition_mapping=dg.AllPartitionMapping())],
    kinds={"python", "openai"},
    description="intelligence.incident_report: one partition per incident (confirmed alarm episodes "
    "related in the ontology and close in time; id "
    "inc-YYYYMMDD-HHMM-<entity hash>). Ranked causes with evidence (cms rca incident's analysis), blast "
    "radius from the ontology, timeline, the runbook's remediation and a checked narrative (OpenAI or the "
    "offline engine). Stored in intelligence.incidents and the lake; shown here as Markdown.",
)
def incident_report(
    context: dg.AssetExecutionContext, lake: LakeResource, warehouse: WarehouseResource, llm: LlmResource
) -> dg.MaterializeResult:
    s = warehouse.settings()
    wh = warehouse.client()
    ontology = load_ontology(s.domain_file or None)
    until = scored_until(wh.query)
    episode = find_episode(wh.query, context.partition_key, ontology, until=until)
    if episode is None:
        raise dg.Failure(
            f"no group of confirmed alarm episodes is incident {context.partition_key} in intelligence.anomalies: "
            "materialize intelligence/anomalies for its hours first"
        )
    with llm.adapter(context) as engine:
        report = build_report(wh.query, episode, ontology, engine, until=until, marts_schema=wh.marts)
    uri = save_report(wh, lake.lake().archive, report)
    meta = report["narrative_meta"]
    context.log.info(
        f"{report['id']} ({report['status']}): {report['root_cause']['entity']} "
        f"{report['root_cause']['kind']}; narrative by {meta['engine']}"
        + (f" (fallback: {meta['fallback_reason']})" if meta["fallback_reason"] else "")
    )
    return dg.MaterializeResult(
        metadata={
            "report": dg.MetadataValue.md(to_markdown(report)),
            "status": report["status"],
            "start": report["start"],
            "end": report["end"] or "open",
            "root_cause": f"{report['root_cause']['entity']} ({report['root_cause']['kind']})",
            "alarms": report["episode"]["alarms"],
            "narrative_engine": meta["engine"],
            "narrative_fallback": meta["fallback_reason"] or "",
            "narrative_disagreement": meta["disagreement"] or "",
            "lake": dg.MetadataValue.path(uri),
        }
    )


incident_report_job = dg.define_asset_job(
    "incident_report_job",
    selection=[INCIDENT_REPORT],
    partitions_def=incident_partitions,
    hooks={alert_with_incident_report, alert_on_report_failure},
)


@dg.sensor(
    name="incident_report_sensor",
    job=incident_report_job,
    minimum_interval_seconds=60,
    default_status=dg.DefaultSensorStatus.RUNNING,
    description="Requests an incident_report run per incident (confirmed alarm episodes grouped) as intelligence/anomalies "
    "materializes (new incident, more alarms, incident closed).",
)
def incident_report_sensor(
    context: dg.SensorEvaluationContext, warehouse: WarehouseResource
) -> dg.SensorResult | dg.SkipReason:
    after = int(context.cursor) if context.cursor else None
    records = context.instance.fetch_materializations(
        dg.AssetRecordsFilter(asset_key=ANOMALIES, after_storage_id=after), limit=1000, ascending=True
    ).records
    if not records:
        return dg.SkipReason("no new intelligence/anomalies materialization")
    s = warehouse.settings()
    wh = warehouse.client()
    until = scored_until(wh.query)
    if until is None:
        return dg.SensorResult(skip_reason="the detector has scored nothing yet", cursor=str(records[-1].storage_id))
    starts = [
        hourly_partitions.time_window_for_partition_key(r.partition_key).start.astimezone(dt.timezone.utc)
        for r in records
        if r.partition_key
    ]
    since = (min(starts) if starts else until.to_pydatetime()) - dt.timedelta(days=1)
    versions = episode_versions(wh.query, load_ontology(s.domain_file or None), since, pd.Timestamp(until))
    known = set(context.instance.get_dynamic_partitions(incident_partitions.name))
    new = sorted(k for k in versions if k not in known)
    return dg.SensorResult(
        run_requests=[dg.RunRequest(partition_key=k, run_key=f"{k}:{v}") for k, v in sorted(versions.items())],
        dynamic_partitions_requests=[incident_partitions.build_add_request(new)] if new else [],
        cursor=str(records[-1].storage_id),
    )
