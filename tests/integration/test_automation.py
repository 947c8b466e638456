"""The graph keeps itself current: every asset downstream of the points has an automation condition, the
automation sensor runs by default, an hour of new points reaches the marts and the anomalies, and so does a
late raw batch for an hour already loaded."""

from __future__ import annotations

import datetime as dt
from pathlib import Path

import dagster as dg
import duckdb
import orjson
import pytest

from cms_dagster.defs.automation import HOURLY, LATE_DAYS
from cms_dagster.defs.partitions import hourly_partitions
from cms_dagster.defs.warehouse.points import late_raw_hours
from cms_dagster.demo import fast_event_log

POINTS = dg.AssetKey(["warehouse", "metric_points"])
INGEST = [dg.AssetKey(["raw", "otel_metrics"]), dg.AssetKey(["processed", "points"]), POINTS]


def _descendants(graph, key: dg.AssetKey) -> set[dg.AssetKey]:
    seen: set[dg.AssetKey] = set()
    stack = [key]
    while stack:
        for child in graph.get(stack.pop()).child_keys:
            if child not in seen:
                seen.add(child)
                stack.append(child)
    return seen


def test_every_asset_downstream_of_the_points_has_an_automation_condition_and_the_sensor_runs() -> None:
    from cms_dagster.definitions import defs

    d = defs()
    graph = d.resolve_asset_graph()
    downstream = _descendants(graph, POINTS)
    assert {dg.AssetKey(["dbt", "mart_sla_compliance"]), dg.AssetKey(["intelligence", "anomalies"])} <= downstream
    # an asset whose runs a sensor requests (one incident report per confirmed episode) is kept current by it
    by_sensor = {
        key
        for sensor in d.sensors or []
        if not isinstance(sensor, dg.AutomationConditionSensorDefinition)
        for target in sensor.targets
        for key in d.resolve_job_def(target.job_name).asset_layer.executable_asset_keys
    }
    without = sorted(
        k.to_user_string() for k in downstream if graph.get(k).automation_condition is None and k not in by_sensor
    )
    assert without == [], f"give these an automation condition (cms_dagster/defs/automation.py): {without}"
    assert dg.AssetKey(["intelligence", "incident_report"]) in by_sensor
    hourly = [k for k in downstream if graph.get(k).partitions_def == hourly_partitions]
    assert all(graph.get(k).automation_condition == HOURLY for k in hourly)
    sensor = next(s for s in d.sensors if isinstance(s, dg.AutomationConditionSensorDefinition))
    assert sensor.default_status == dg.DefaultSensorStatus.RUNNING


def _run(result: dg.EvaluateAutomationConditionsResult, defs: dg.Definitions, instance: dg.DagsterInstance) -> set[str]:
    """Launch, in process, what the automation sensor requested (a run per partition, hourly ones first,
    each asset with its checks); returns the 'key@partition' launched."""
    by_partition: dict[str | None, set[dg.AssetKey]] = {}
    for key in defs.resolve_asset_graph().get_all_asset_keys():
        for partition in result.get_requested_partitions(key):
            by_partition.setdefault(partition, set()).add(key)
    done: set[str] = set()
    for partition in sorted(by_partition, key=lambda p: (p is None, p or "")):
        keys = by_partition[partition]
        run = dg.materialize(
            list(defs.assets or []) + list(defs.asset_checks or []),
            selection=dg.AssetSelection.assets(*keys) | dg.AssetSelection.checks_for_assets(*keys),
            partition_key=partition,
            instance=instance,
            resources=dict(defs.resources or {}),
        )
        assert run.success
        done |= {f"{k.to_user_string()}@{partition}" for k in keys}
    return done


def _deliver_late_point(hour: dt.datetime) -> None:
    """One SDK batch with one point in ``hour``, landing in its raw hour after that hour was loaded."""
    from cms_dagster.lake import Lake, gzip_bytes, raw_key
    from cms_dagster.otel import otlp
    from cms_dagster.settings import load as load_settings

    t = hour + dt.timedelta(minutes=42)
    req = otlp.request(
        {"service.name": "pricing", "cms.environment": "demo"},
        [otlp.gauge("cms.app.queue_depth", "1", [otlp.number_point({}, int(t.timestamp() * 1e9), 3.0)])],
    )
    Lake.from_settings(load_settings()).raw.put(raw_key("sdk", hour, f"{t:%Y%m%dT%H%M%SZ}-ingest-late-1"), gzip_bytes(orjson.dumps(req) + b"\n"))


def _count(db: Path, sql: str, params: list) -> int:
    con = duckdb.connect(str(db), read_only=True)
    try:
        return con.execute(sql, params).fetchone()[0]
    finally:
        con.close()


@pytest.mark.slow
def test_an_hour_of_new_points_reaches_the_marts_and_the_anomalies_without_anyone_asking(cms_home: Path) -> None:
    from cms_dagster.definitions import defs as build_defs
    from cms_dagster.defs.warehouse.dbt_assets import dbt_reference_assets
    from cms_dagster.domain import load_ontology
    from cms_dagster.lake import Lake
    from cms_dagster.settings import load as load_settings
    from cms_dagster.simulate.run import simulate

    now = dt.datetime.now(dt.timezone.utc).replace(minute=0, second=0, microsecond=0)
    simulate(load_ontology(), Lake.from_settings(load_settings()), days=1, seed=7, start=now - dt.timedelta(days=1))
    defs = build_defs()
    everything = list(defs.assets or []) + list(defs.asset_checks or [])
    resources = dict(defs.resources or {})
    late, new = (now - dt.timedelta(hours=h) for h in (4 + 24 * LATE_DAYS, 3))
    key = lambda t: t.strftime("%Y-%m-%d-%H:%M")  # noqa: E731

    # a throwaway instance: its SQLite files skip fsync, as the demo's build does (hundreds of events per run)
    with fast_event_log(), dg.instance_for_test() as instance:
        # the reference data, built once; then the sensor's first tick (it only takes stock)
        reference = dg.AssetSelection.assets(*dbt_reference_assets.keys)
        assert dg.materialize(everything, selection=reference, instance=instance, resources=resources).success
        tick = dg.evaluate_automation_conditions(defs=defs, instance=instance, evaluation_time=now)
        assert tick.total_requested == 0

        def load(hour: dt.datetime) -> None:  # what the hourly_ingest schedule does
            assert dg.materialize(everything, selection=INGEST, partition_key=key(hour), instance=instance, resources=resources).success

        def advance() -> set[str]:
            nonlocal tick
            tick = dg.evaluate_automation_conditions(defs=defs, instance=instance, evaluation_time=now + dt.timedelta(minutes=20), cursor=tick.cursor)
            return _run(tick, defs, instance)

        # a new hour of points is loaded: the sensor rebuilds that hour, down to the anomalies
        load(new)
        requested = advance()
        requested |= advance()  # the anomalies come in the same tick as the facts, or in the next
        assert {f"dbt/fct_infra_metrics@{key(new)}", f"intelligence/anomalies@{key(new)}"} <= requested
        db = cms_home / "warehouse.duckdb"
        lo, hi = new.replace(tzinfo=None), (new + dt.timedelta(hours=1)).replace(tzinfo=None)
        assert _count(db, "select count(*) from marts.fct_infra_metrics where minute_ts >= ? and minute_ts < ?", [lo, hi]) > 0
        scored = instance.get_latest_materialization_event(dg.AssetKey(["intelligence", "anomalies"]))
        assert scored.asset_materialization.partition == key(new)
        assert scored.asset_materialization.metadata["points_scored"].value > 0

        # a raw batch for that hour arrives after it was loaded: the late-hour sensor asks for its ingest
        # again, and automation rebuilds that hour (and only that one) down to the anomalies
        before = _count(db, "select count(*) from raw.metric_points where ts >= ? and ts < ?", [lo, hi])
        _deliver_late_point(new)
        (request,) = [r for r in late_raw_hours(dg.build_sensor_context(instance=instance, resources={"lake": resources["lake"]})) if isinstance(r, dg.RunRequest)]
        assert request.partition_key == key(new)
        load(new)
        assert _count(db, "select count(*) from raw.metric_points where ts >= ? and ts < ?", [lo, hi]) == before + 1
        requested = advance()
        requested |= advance()
        assert {f"dbt/fct_infra_metrics@{key(new)}", f"intelligence/anomalies@{key(new)}"} <= requested
        assert all(r.endswith((f"@{key(new)}", "@None")) for r in requested), requested

        # an hour older than the late window is left alone
        load(late)
        assert not any(r.endswith(f"@{key(late)}") for r in advance())
