"""A late raw hour is loaded again: raw batches that land in an hour after it was processed are noticed by
the ``late_raw_hours`` sensor, which asks for that hour's ingest run (declarative automation takes it from
the points down: tests/integration/test_automation.py)."""

from __future__ import annotations

import datetime as dt
from pathlib import Path

import dagster as dg
import duckdb
import orjson
import pytest

from cms_dagster.defs.automation import LATE_DAYS
from cms_dagster.defs.collection.raw_zone import raw_otel_metrics
from cms_dagster.defs.warehouse.points import late_raw_hours, metric_points, processed_points
from cms_dagster.lake import Lake, gzip_bytes, raw_key
from cms_dagster.lake.processing import unprocessed_batches
from cms_dagster.otel import otlp
from cms_dagster.resources import build_resources
from cms_dagster.settings import load as load_settings

INGEST = [raw_otel_metrics, processed_points, metric_points]


def _key(hour: dt.datetime) -> str:
    return hour.strftime("%Y-%m-%d-%H:%M")


def _deliver(lake: Lake, hour: dt.datetime, minute: int, value: float) -> str:
    """One SDK batch with one point at ``hour`` + ``minute``; its raw key."""
    t = hour + dt.timedelta(minutes=minute)
    req = otlp.request(
        {"service.name": "pricing", "cms.environment": "demo"},
        [otlp.gauge("cms.app.queue_depth", "1", [otlp.number_point({}, int(t.timestamp() * 1e9), value)])],
    )
    key = raw_key("sdk", hour, f"{t:%Y%m%dT%H%M%SZ}-ingest-late-{minute}")
    lake.raw.put(key, gzip_bytes(orjson.dumps(req) + b"\n"))
    return key


def _points(cms_home: Path, hour: dt.datetime) -> int:
    con = duckdb.connect(str(cms_home / "warehouse.duckdb"), read_only=True)
    try:
        lo, hi = hour.replace(tzinfo=None), (hour + dt.timedelta(hours=1)).replace(tzinfo=None)
        return con.execute(
            "SELECT count(*) FROM raw.metric_points WHERE ts >= ? AND ts < ?", [lo, hi]
        ).fetchone()[0]
    finally:
        con.close()


def _tick(instance: dg.DagsterInstance) -> list[dg.RunRequest]:
    context = dg.build_sensor_context(instance=instance, resources={"lake": build_resources()["lake"]})
    return [r for r in late_raw_hours(context) if isinstance(r, dg.RunRequest)]


def _load(instance: dg.DagsterInstance, partition: str) -> None:
    """What the hourly_ingest job does for one hour (the schedule's run, or the sensor's)."""
    res = dg.materialize(INGEST, resources=build_resources(), partition_key=partition, instance=instance)
    assert res.success


@pytest.mark.slow
def test_raw_batches_arriving_after_an_hour_was_loaded_get_that_hour_loaded_again(cms_home: Path) -> None:
    lake = Lake.from_settings(load_settings())
    now = dt.datetime.now(dt.timezone.utc).replace(minute=0, second=0, microsecond=0)
    hour, old, unloaded = now - dt.timedelta(hours=3), now - dt.timedelta(days=LATE_DAYS, hours=2), now - dt.timedelta(hours=2)
    with dg.instance_for_test() as instance:
        for h in (hour, old):
            _deliver(lake, h, 5, 1.0)
            _load(instance, _key(h))
        assert _tick(instance) == []
        assert _points(cms_home, hour) == 1

        # a batch for the loaded hour arrives late, and an unreadable one; one for an hour older than the
        # late window, and one for an hour not loaded yet (the schedule's to load, not this sensor's)
        late = _deliver(lake, hour, 40, 2.0)
        unreadable = raw_key("sdk", hour, f"{hour:%Y%m%dT%H}5000Z-ingest-late-x")
        lake.raw.put(unreadable, b"this is not gzip")
        _deliver(lake, old, 40, 2.0)
        _deliver(lake, unloaded, 40, 2.0)
        assert unprocessed_batches(lake, hour.date(), hour.hour) == sorted([late, unreadable])
        (request,) = _tick(instance)
        assert request.partition_key == _key(hour)
        assert request.tags["cms/late_batches"] == "2"

        _load(instance, request.partition_key)
        assert _points(cms_home, hour) == 2
        # the unreadable batch was set aside whole: it is not asked for again
        assert any(k.endswith("ingest-late-x.processed.jsonl.gz") for k in lake.raw.list("quarantine/"))
        assert unprocessed_batches(lake, hour.date(), hour.hour) == []
        assert _tick(instance) == []

