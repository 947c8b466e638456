"""The incident_report asset and its sensor on a real Dagster instance."""

from pathlib import Path

import dagster as dg
import pytest

from cms_dagster.defs.intelligence.incidents import (
    ANOMALIES,
    incident_partitions,
    incident_report,
    incident_report_sensor,
)
from cms_dagster.resources import WarehouseResource, build_resources

from .incident_fixtures import write_alarms, write_marts


@pytest.fixture()
def instance(cms_home: Path, monkeypatch: pytest.MonkeyPatch):
    path = cms_home / "warehouse.duckdb"
    write_marts(path)
    write_alarms(path)
    monkeypatch.setenv("CMS_DUCKDB_PATH", str(path))
    with dg.instance_for_test() as inst:
        yield inst


def _tick(instance, cursor=None):
    ctx = dg.build_sensor_context(instance=instance, cursor=cursor, resources={"warehouse": WarehouseResource()})
    return incident_report_sensor(ctx)


@pytest.mark.slow
def test_sensor_requests_one_report_per_incident_and_nothing_again_for_the_same_data(instance):
    assert isinstance(_tick(instance), dg.SkipReason)  # the detector has not run
    for hour in ("2026-11-25-20:00", "2026-11-25-21:00"):
        instance.report_runless_asset_event(dg.AssetMaterialization(ANOMALIES, partition=hour))
    result = _tick(instance)
    (req,) = result.run_requests
    assert req.partition_key.startswith("inc-20261125-2000-") and req.run_key == f"{req.partition_key}:2:closed"
    (add,) = result.dynamic_partitions_requests
    assert list(add.partition_keys) == [req.partition_key]
    # nothing new materialized: nothing requested
    assert isinstance(_tick(instance, result.cursor), dg.SkipReason)
    # a back-fill of the same hours: the same incident id and run key (Dagster runs a run key once)
    instance.add_dynamic_partitions(incident_partitions.name, [req.partition_key])
    instance.report_runless_asset_event(dg.AssetMaterialization(ANOMALIES, partition="2026-11-25-20:00"))
    again = _tick(instance, result.cursor)
    assert [(r.partition_key, r.run_key) for r in again.run_requests] == [(req.partition_key, req.run_key)]
    assert again.dynamic_partitions_requests == []


@pytest.mark.slow
def test_report_asset_shows_the_report_as_markdown_and_stores_it(instance, cms_home):
    instance.report_runless_asset_event(dg.AssetMaterialization(ANOMALIES, partition="2026-11-25-20:00"))
    (req,) = _tick(instance).run_requests
    instance.add_dynamic_partitions(incident_partitions.name, [req.partition_key])
    result = dg.materialize(
        [incident_report],
        partition_key=req.partition_key,
        instance=instance,
        resources=build_resources(),
    )
    assert result.success
    md = result.asset_materializations_for_node("intelligence__incident_report")[0].metadata
    assert md["report"].value.startswith(f"## Incident {req.partition_key} (closed)")
    assert "feed:cme-mdp" in md["root_cause"].value and md["narrative_engine"].value == "offline"
    assert (cms_home / "lake" / "archive" / "incidents" / f"{req.partition_key}.json").exists()


@pytest.mark.slow
def test_report_for_an_unknown_incident_fails_with_what_to_do(instance):
    instance.add_dynamic_partitions(incident_partitions.name, ["inc-20261120-0100-abcdef"])
    with pytest.raises(dg.Failure, match="materialize intelligence/anomalies"):
        dg.materialize(
            [incident_report],
            partition_key="inc-20261120-0100-abcdef",
            instance=instance,
            resources=build_resources(),
        )
