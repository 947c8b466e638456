"""Alert delivery through Dagster: sensors over new data and asset-check evaluations, a run-status sensor,
and hooks on the incident-report job. Each calls cms_dagster.alerts (routing, dedup, channels).

- ``alert_symptoms_sensor``: when the feed or batch marts or the anomalies asset materialize, raise and
  route the alerts of the last day of data (data time).
- ``asset_check_alert_sensor``: a cursor over asset-check evaluations (Dagster OSS has no alerts for failing
  checks): a failing ERROR check pages, a WARN one warns, a passing one resolves it.
- ``dagster_run_failure_alert``: a failed Dagster run is an alert (the monitoring itself is blind).
- hooks on ``incident_report_job``: on success, the incident's alerts are routed again with the report
  attached; on failure, an alert says the report could not be written.
"""

import datetime as dt
import json

import dagster as dg
import pandas as pd

from cms_dagster.alerts.router import AlertStore, dispatch
from cms_dagster.alerts.rules import Alert
from cms_dagster.alerts.run import data_until, evaluate_alerts
from cms_dagster.alerts.symptoms import check_alert
from cms_dagster.domain import load_ontology
from cms_dagster.resources import LakeResource, WarehouseResource
from cms_dagster.resources.alerts import AlertsResource

WATCHED = {
    dg.AssetKey(["intelligence", "anomalies"]),
    dg.AssetKey(["dbt", "fct_feed_status"]),
    dg.AssetKey(["dbt", "fct_batch_runs"]),
}


def _iso(ts: float) -> str:
    return dt.datetime.fromtimestamp(ts, dt.timezone.utc).replace(microsecond=0).isoformat().replace("+00:00", "Z")


WINDOW = pd.Timedelta("1d")  # how far back each evaluation looks (dedup keeps earlier alerts from repeating)


def route_symptoms(
    lake: LakeResource, warehouse: WarehouseResource, alerts: AlertsResource, window: pd.Timedelta = WINDOW
) -> dict:
    """Raise and route the alerts of the last ``window`` of data; returns what was done."""
    s = warehouse.settings()
    wh = warehouse.client()
    until = data_until(wh.query, wh.marts)
    if until is None:
        return {"skipped": "no feed data in the warehouse yet"}
    archive = lake.lake().archive
    rep = evaluate_alerts(
        wh.query, load_ontology(s.domain_file or None), alerts.rules(), AlertStore(archive), alerts.build_channels(archive),
        (until - window).to_pydatetime(), until, marts_schema=wh.marts, dagster_url=alerts.settings().dagster_url,
    )
    return {"until": str(until), **rep.to_dict()}


@dg.sensor(
    name="alert_symptoms_sensor",
    minimum_interval_seconds=60,
    default_status=dg.DefaultSensorStatus.RUNNING,
    description="Raises and routes alerts (feeds down or stale, runs failed or late, unexplained anomalies) "
    "when the feed or batch marts or intelligence/anomalies materialize.",
)
def alert_symptoms_sensor(
    context: dg.SensorEvaluationContext, lake: LakeResource, warehouse: WarehouseResource, alerts: AlertsResource
) -> dg.SensorResult:
    seen = json.loads(context.cursor) if context.cursor else {}
    new = 0
    for key in sorted(WATCHED, key=lambda k: k.to_user_string()):
        name = key.to_user_string()
        records = context.instance.fetch_materializations(
            dg.AssetRecordsFilter(asset_key=key, after_storage_id=seen.get(name)), limit=100, ascending=True
        ).records
        if records:
            new += len(records)
            seen[name] = records[-1].storage_id
    if not new:
        return dg.SensorResult(skip_reason="no new feed, batch or anomaly data", cursor=context.cursor)
    done = route_symptoms(lake, warehouse, alerts)
    return dg.SensorResult(skip_reason=f"alerts routed: {done}", cursor=json.dumps(seen, sort_keys=True))


@dg.sensor(
    name="asset_check_alert_sensor",
    minimum_interval_seconds=30,
    default_status=dg.DefaultSensorStatus.RUNNING,
    description="Alerts on asset-check evaluations: a failing ERROR check pages, WARN warns, passing resolves.",
)
def asset_check_alert_sensor(
    context: dg.SensorEvaluationContext, lake: LakeResource, alerts: AlertsResource
) -> dg.SensorResult:
    # by time: the default SQLite event log is sharded by run, where storage ids are not a global cursor;
    # an evaluation read twice at the boundary is harmless (alerts are deduplicated)
    after = float(context.cursor) if context.cursor else None
    records = context.instance.get_event_records(
        dg.EventRecordsFilter(event_type=dg.DagsterEventType.ASSET_CHECK_EVALUATION, after_timestamp=after),
        limit=1000,
        ascending=True,
    )
    if not records:
        return dg.SensorResult(skip_reason="no new asset-check evaluation", cursor=context.cursor)
    archive = lake.lake().archive
    store = AlertStore(archive)
    url = alerts.settings().dagster_url
    open_checks = {
        (st["alert"]["labels"].get("asset"), st["alert"]["details"].get("check")): st["alert"]["at"]
        for st in store.firing()
        if st["alert"]["source"] == "asset_check"
    }
    raised = []
    for r in records:
        ev = r.event_log_entry.dagster_event.event_specific_data
        asset = ev.asset_key.to_user_string()
        at = _iso(r.event_log_entry.timestamp)
        severity = getattr(ev.severity, "value", str(ev.severity))
        alert = check_alert(
            asset, ev.check_name, ev.passed, severity, at, first_failed_at=open_checks.get((asset, ev.check_name)),
            description=ev.description or "", dagster_url=url,
        )
        if alert is None:
            continue
        if alert.resolved_at:
            open_checks.pop((asset, ev.check_name), None)
        else:
            open_checks.setdefault((asset, ev.check_name), alert.at)
        raised.append(alert)
    if raised:
        last = max(pd.Timestamp(a.resolved_at or a.at) for a in raised)
        dispatch(raised, alerts.rules(), store, alerts.build_channels(archive), last, dagster_url=url)
    return dg.SensorResult(
        skip_reason=f"{len(raised)} check alert(s) routed", cursor=str(max(r.timestamp for r in records))
    )


def _run_alert(run_id: str, job: str, at: str, error: str, url: str) -> Alert:
    return Alert(
        dedup_key=f"dagster_run:{run_id}",
        source="dagster_run",
        severity="critical",
        summary=f"Dagster run of {job} failed: {error[:160]}",
        at=at,
        labels={"job": job, "team": "data-platform"},
        link=f"{url}/runs/{run_id}",
        details={"run_id": run_id},
    )


@dg.run_failure_sensor(
    name="dagster_run_failure_alert",
    default_status=dg.DefaultSensorStatus.RUNNING,
    description="A failed Dagster run is an alert: while the pipeline is down, monitoring is blind.",
)
def dagster_run_failure_alert(context: dg.RunFailureSensorContext, lake: LakeResource, alerts: AlertsResource) -> None:
    run = context.dagster_run
    ts = getattr(context.failure_event, "timestamp", None) or dt.datetime.now(dt.timezone.utc).timestamp()
    url = alerts.settings().dagster_url
    alert = _run_alert(run.run_id, run.job_name, _iso(ts), context.failure_event.message or "failed", url)
    archive = lake.lake().archive
    dispatch([alert], alerts.rules(), AlertStore(archive), alerts.build_channels(archive), pd.Timestamp(alert.at), dagster_url=url)


@dg.success_hook(required_resource_keys={"lake", "warehouse", "alerts"})
def alert_with_incident_report(context: dg.HookContext) -> None:
    """After an incident report is written, route the alerts again so they carry the report."""
    done = route_symptoms(context.resources.lake, context.resources.warehouse, context.resources.alerts)
    context.log.info(f"alerts routed after the incident report: {done}")


@dg.failure_hook(required_resource_keys={"lake", "alerts"})
def alert_on_report_failure(context: dg.HookContext) -> None:
    """An incident report that could not be written is an alert of its own."""
    url = context.resources.alerts.settings().dagster_url
    error = str(context.op_exception or "failed").splitlines()[0] if context.op_exception else "failed"
    alert = _run_alert(context.run_id, context.job_name, _iso(dt.datetime.now(dt.timezone.utc).timestamp()), error, url)
    archive = context.resources.lake.lake().archive
    alerts = context.resources.alerts
    dispatch([alert], alerts.rules(), AlertStore(archive), alerts.build_channels(archive), pd.Timestamp(alert.at), dagster_url=url)
