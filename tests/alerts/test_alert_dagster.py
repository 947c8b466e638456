"""Alert delivery through Dagster: the asset-check sensor, the symptoms sensor and the incident job's hooks."""

from pathlib import Path

import dagster as dg
import pytest

from cms_dagster.alerts.channels import OutboxChannel
from cms_dagster.alerts.router import AlertStore
from cms_dagster.defs.alerting.alerts import alert_symptoms_sensor, asset_check_alert_sensor
from cms_dagster.defs.intelligence.incidents import (
    incident_partitions,
    incident_report,
    incident_report_job,
    incident_report_sensor,
)
from cms_dagster.lake import Lake
from cms_dagster.resources import LakeResource, WarehouseResource
from cms_dagster.resources.alerts import AlertsResource
from cms_dagster.resources.llm import LlmResource
from cms_dagster.settings import load as load_settings
from tests.incidents.incident_fixtures import write_alarms, write_marts

RESOURCES = {"lake": LakeResource(), "warehouse": WarehouseResource(), "alerts": AlertsResource(dagster_url="http://ui.example:3000")}


@pytest.fixture()
def instance(cms_home: Path, monkeypatch: pytest.MonkeyPatch):
    path = cms_home / "warehouse.duckdb"
    write_marts(path)
    write_alarms(path)
    monkeypatch.setenv("CMS_DUCKDB_PATH", str(path))
    with dg.instance_for_test() as inst:
        yield inst


def _outbox() -> list[dict]:
    return OutboxChannel(Lake.from_settings(load_settings()).archive).read()


def _tick(sensor, instance, cursor=None):
    return sensor(dg.build_sensor_context(instance=instance, cursor=cursor, resources=RESOURCES))


def _checked(passed: bool):
    @dg.asset(key=["dbt", "fct_feed_status_check_probe"])
    def probe() -> None:
        return None

    @dg.asset_check(asset=probe, name="feed_ids_not_null")
    def feed_ids_not_null() -> dg.AssetCheckResult:
        return dg.AssetCheckResult(passed=passed, severity=dg.AssetCheckSeverity.ERROR, description="3 rows with no feed_id")

    return [probe, feed_ids_not_null]


@pytest.mark.slow
def test_a_failing_error_check_pages_and_its_recovery_resolves(instance):
    assert dg.materialize(_checked(False), instance=instance).success  # a failing check is an event, not a failed run
    result = _tick(asset_check_alert_sensor, instance)
    (msg,) = _outbox()
    assert msg["page"] and msg["status"] == "firing" and "feed_ids_not_null" in msg["title"]
    assert msg["link"] == "http://ui.example:3000/assets/dbt/fct_feed_status_check_probe?view=checks"
    dg.materialize(_checked(True), instance=instance)
    _tick(asset_check_alert_sensor, instance, result.cursor)
    first, second = _outbox()
    assert second["status"] == "resolved" and second["alerts"][0]["dedup_key"] == first["alerts"][0]["dedup_key"]


@pytest.mark.slow
def test_new_feed_data_raises_the_outage_page_once(instance):
    instance.report_runless_asset_event(dg.AssetMaterialization(dg.AssetKey(["dbt", "fct_feed_status"])))
    result = _tick(alert_symptoms_sensor, instance)
    titles = [m["title"] for m in _outbox()]
    assert any("feed cme-mdp interrupted" in t for t in titles)
    # the same data again: nothing new is sent (dedup)
    instance.report_runless_asset_event(dg.AssetMaterialization(dg.AssetKey(["dbt", "fct_feed_status"])))
    _tick(alert_symptoms_sensor, instance, result.cursor)
    assert [m["title"] for m in _outbox()] == titles


@pytest.mark.slow
def test_the_incident_job_hook_routes_alerts_with_the_report_attached(instance):
    instance.report_runless_asset_event(
        dg.AssetMaterialization(dg.AssetKey(["intelligence", "anomalies"]), partition="2026-11-25-20:00")
    )
    (req,) = incident_report_sensor(dg.build_sensor_context(instance=instance, resources=RESOURCES)).run_requests
    instance.add_dynamic_partitions(incident_partitions.name, [req.partition_key])
    defs = dg.Definitions(assets=[incident_report], jobs=[incident_report_job], resources={**RESOURCES, "llm": LlmResource()})
    job = defs.resolve_job_def("incident_report_job")
    assert job.execute_in_process(instance=instance, partition_key=req.partition_key).success
    feed = next(m for m in _outbox() if "feed cme-mdp" in m["title"])
    assert feed["incident_ids"] == [req.partition_key]
    assert f"incident_report?partition={req.partition_key}" in feed["text"]
    # a report that cannot be written raises an alert of its own
    instance.add_dynamic_partitions(incident_partitions.name, ["inc-20261120-0100-abcdef"])
    bad = job.execute_in_process(instance=instance, partition_key="inc-20261120-0100-abcdef", raise_on_error=False)
    assert not bad.success
    runs = [st["alert"] for st in AlertStore(Lake.from_settings(load_settings()).archive).all() if st["alert"]["source"] == "dagster_run"]
    assert len(runs) == 1 and runs[0]["link"].endswith(f"/runs/{bad.run_id}")
