"""Helpers for the receiver tests: requests to send, and reading back what landed in the raw zone."""

from __future__ import annotations

import datetime as dt
import gzip
import threading
from typing import Any

import orjson

from cms_dagster.lake import Zone, parse_raw_key
from cms_dagster.otel import otlp
from cms_dagster.otel.flatten import flatten_lines

KEY = "k-markets-0123456789"
TEAM = "markets-batch"
AUTH = {"authorization": f"Bearer {KEY}"}
T0 = 1_795_212_060_000_000_000  # 2026-11-20T22:01:00Z


def batch_request(n: int = 3, run: str = "r1", t0: int = T0, bad: int = 0) -> dict[str, Any]:
    """``n`` valid cms.batch.run.finished points (+ ``bad`` with an unknown asset class)."""
    good = [
        otlp.number_point(
            {"cms.asset_class": "derivatives", "cms.job": "eod_valuation", "cms.run_id": f"{run}-{i}", "cms.status": "success"},
            t0 + i,
            1,
            start_ns=t0,
        )
        for i in range(n)
    ]
    wrong = [
        otlp.number_point(
            {"cms.asset_class": "crypto", "cms.job": "x", "cms.run_id": f"{run}-bad-{i}", "cms.status": "success"}, t0 + i, 1
        )
        for i in range(bad)
    ]
    return otlp.request(
        {"service.name": "pricing-batch", "cms.environment": "dev"},
        [otlp.sum_("cms.batch.run.finished", "{run}", good + wrong)],
    )


def raw_keys(zone: Zone) -> list[str]:
    return [k for k in zone.list("otel/metrics/") if k.endswith(".jsonl.gz")]


def raw_lines(zone: Zone) -> list[dict[str, Any]]:
    out = []
    for k in raw_keys(zone):
        for line in gzip.decompress(zone.get(k)).splitlines():
            if line.strip():
                out.append(orjson.loads(line))
    return out


def raw_run_ids(zone: Zone) -> list[str]:
    """``cms.run_id`` of every point in the raw zone (duplicates kept)."""
    ids = []
    for req in raw_lines(zone):
        for rm in req["resourceMetrics"]:
            for sm in rm["scopeMetrics"]:
                for m in sm["metrics"]:
                    for dp in next(m[k] for k in ("sum", "gauge", "summary", "histogram") if k in m)["dataPoints"]:
                        attrs = otlp.from_attributes(dp.get("attributes") or [])
                        ids.append(attrs.get("cms.run_id"))
    return ids


def flatten_zone(zone: Zone) -> list[dict[str, Any]]:
    """Every raw batch flattened as the processing step does (raises if any line or point is rejected)."""
    rows = []
    for k in raw_keys(zone):
        meta = parse_raw_key(k)
        f = flatten_lines(
            gzip.decompress(zone.get(k)).splitlines(),
            source=meta["source"],
            raw_key=k,
            ingested_at=dt.datetime.now(dt.timezone.utc),
            day=meta["dt"],
            hour=meta["hour"],
        )
        assert not f.rejected, f"flattening rejected part of {k}: {f.rejected[:3]}"
        rows += f.table.to_pylist()
    return rows


class BlockingZone(Zone):
    """A local zone whose writes wait until ``release`` is set (to hold a flush in flight)."""

    def __init__(self, url: str) -> None:
        super().__init__(url)
        object.__setattr__(self, "release", threading.Event())
        object.__setattr__(self, "entered", threading.Event())

    def put(self, key: str, data: bytes) -> None:
        if not key.startswith("checkpoints/"):
            self.entered.set()  # type: ignore[attr-defined]
            self.release.wait(30)  # type: ignore[attr-defined]
        super().put(key, data)


class FailingZone(Zone):
    """A zone whose raw writes fail while ``failing`` is set."""

    def __init__(self, url: str) -> None:
        super().__init__(url)
        object.__setattr__(self, "failing", threading.Event())

    def put(self, key: str, data: bytes) -> None:
        if self.failing.is_set() and not key.startswith("checkpoints/"):  # type: ignore[attr-defined]
            raise OSError("simulated: the lake is unreachable")
        super().put(key, data)


class NoSyncZone(Zone):
    """A local zone that skips fsync (for tests that check logic, not crash durability, and need speed)."""

    def put(self, key: str, data: bytes) -> None:
        p = self.path(key)
        p.parent.mkdir(parents=True, exist_ok=True)
        tmp = p.with_name(".tmp-" + p.name)
        tmp.write_bytes(data)
        tmp.replace(p)
