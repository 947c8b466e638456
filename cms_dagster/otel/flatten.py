"""Flatten OTLP/JSON metric requests into one row per data point (the processed zone's Parquet points).

Fast path: per distinct (resource, metric, attribute set) the JSON encodings, promoted columns, entity id
and the SHA-256 prefix of the point id are computed once; per point only the time and values are read.
Constant columns are built from a per-series table with ``take``.
"""

from __future__ import annotations

import datetime as dt
import math
from collections.abc import Iterable, Iterator
from dataclasses import dataclass, field
from typing import Any

import orjson
import pyarrow as pa

from cms_dagster.otel import conventions
from cms_dagster.otel.ids import canonical, series_hasher
from cms_dagster.otel.otlp import from_attributes
from cms_dagster.otel.schema import POINTS_SCHEMA

_SERIES_COLUMNS = [
    "metric_name",
    "metric_kind",
    "unit",
    "entity_id",
    "service_name",
    "environment",
    "account_id",
    "region",
    "asset_class",
    "job",
    "run_id",
    "stage",
    "feed",
    "status",
    "attributes",
    "resource_attributes",
]
MAX_NS = 2**63  # int64 nanoseconds, the OTLP field's range

_PROMOTED = {
    "asset_class": "cms.asset_class",
    "job": "cms.job",
    "run_id": "cms.run_id",
    "stage": "cms.stage",
    "feed": "cms.feed",
    "status": "cms.status",
}


@dataclass
class Rejected:
    """A line or data point that could not be accepted, with why."""

    line: int
    reason: str
    payload: Any


@dataclass
class Flattened:
    table: pa.Table
    rejected: list[Rejected] = field(default_factory=list)
    lines: int = 0

    @property
    def points(self) -> int:
        return self.table.num_rows


class _Builder:
    def __init__(self, source: str | None = None) -> None:
        self.source = source
        self.series: dict[tuple, int] = {}
        self.series_rows: list[tuple] = []
        self.series_hash: list[Any] = []
        self.series_ok: list[str | None] = []
        self.idx: list[int] = []
        self.pid: list[str] = []
        self.ts: list[int] = []
        self.start: list[int | None] = []
        self.value: list[float | None] = []
        self.sum: list[float | None] = []
        self.count: list[float | None] = []
        self.min: list[float | None] = []
        self.max: list[float | None] = []
        self.p99: list[float | None] = []

    def series_index(
        self, res_key: bytes, res: dict, res_json: str, name: str, kind: str, unit: str, attrs_raw: list
    ) -> int:
        akey = orjson.dumps(attrs_raw)
        key = (res_key, name, kind, unit, akey)
        i = self.series.get(key)
        if i is not None:
            return i
        attrs = from_attributes(attrs_raw)
        env = attrs.get("cms.environment") or res.get("cms.environment")
        row = (
            name,
            kind,
            unit,
            conventions.entity_id(name, attrs, res),
            _str_or_none(res.get("service.name")),
            _str_or_none(env),
            _str_or_none(res.get("cloud.account.id")),
            _str_or_none(res.get("cloud.region")),
            *(_str_or_none(attrs.get(a)) for a in _PROMOTED.values()),
            canonical(attrs).decode(),
            res_json,
        )
        i = len(self.series_rows)
        self.series[key] = i
        self.series_rows.append(row)
        self.series_hash.append(series_hasher(res, name, attrs, self.source))
        reason = conventions.reserved_name(name, self.source) if self.source else None
        self.series_ok.append(reason or conventions.validate_point(name, kind, attrs, None))
        return i

    def table(self, source: str, raw_key: str, ingested_at: dt.datetime, day: dt.date, hour: int) -> pa.Table:
        n = len(self.idx)
        idx = pa.array(self.idx, pa.int32())
        cols: dict[str, pa.Array] = {}
        for j, name in enumerate(_SERIES_COLUMNS):
            cols[name] = pa.array([r[j] for r in self.series_rows], pa.string()).take(idx)
        cols["point_id"] = pa.array(self.pid, pa.string())
        cols["ts"] = (
            pa.array(self.ts, pa.int64())
            .cast(pa.timestamp("ns", tz="UTC"))
            .cast(pa.timestamp("us", tz="UTC"), safe=False)
        )
        cols["start_ts"] = (
            pa.array(self.start, pa.int64())
            .cast(pa.timestamp("ns", tz="UTC"))
            .cast(pa.timestamp("us", tz="UTC"), safe=False)
        )
        for name in ("value", "sum", "count", "min", "max", "p99"):
            cols[name] = pa.array(getattr(self, name), pa.float64())
        cols["source"] = pa.repeat(source, n).cast(pa.string()) if n else pa.array([], pa.string())
        cols["raw_key"] = pa.repeat(raw_key, n).cast(pa.string()) if n else pa.array([], pa.string())
        cols["ingested_at"] = pa.array([ingested_at] * n, pa.timestamp("us", tz="UTC"))
        cols["dt"] = pa.array([day] * n, pa.date32())
        cols["hour"] = pa.array([hour] * n, pa.int32())
        table = pa.table([cols[f.name] for f in POINTS_SCHEMA], schema=POINTS_SCHEMA)
        last = {p: i for i, p in enumerate(self.pid)}
        if len(last) < n:  # one id several times in this batch: the last in the batch (and request) wins
            table = table.take(pa.array(sorted(last.values()), pa.int64()))
        return table


def _str_or_none(v: Any) -> str | None:
    if v is None:
        return None
    return v if isinstance(v, str) else str(v)


def _num(p: dict) -> float | None:
    if "asDouble" in p:
        return float(p["asDouble"])
    if "asInt" in p:
        return float(int(p["asInt"]))
    return None


def _finite(*vals: float | None) -> bool:
    return all(v is None or math.isfinite(v) for v in vals)


def _add_request(b: _Builder, req: dict, line_no: int, rejected: list[Rejected]) -> None:
    rms = req.get("resourceMetrics")
    if not isinstance(rms, list):
        raise ValueError("not an ExportMetricsServiceRequest: no 'resourceMetrics' list")
    for rm in rms:
        res_raw = (rm.get("resource") or {}).get("attributes") or []
        res = from_attributes(res_raw)
        res_json = canonical(res).decode()
        res_key = res_json.encode()
        for sm in rm.get("scopeMetrics") or []:
            for m in sm.get("metrics") or []:
                name = m.get("name") or ""
                unit = m.get("unit") or ""
                if not isinstance(name, str) or not isinstance(unit, str):
                    rejected.append(Rejected(line_no, "metric name and unit must be strings", m))
                    continue
                if "gauge" in m:
                    kind, body = "gauge", m["gauge"]
                elif "sum" in m:
                    kind, body = "sum", m["sum"]
                elif "summary" in m:
                    kind, body = "summary", m["summary"]
                elif "histogram" in m:
                    kind, body = "histogram", m["histogram"]
                else:
                    rejected.append(
                        Rejected(
                            line_no,
                            f"metric {name!r} has no supported data (gauge, sum, summary, histogram)",
                            m,
                        )
                    )
                    continue
                for p in body.get("dataPoints") or []:
                    try:
                        i = b.series_index(
                            res_key, res, res_json, name, kind, unit, p.get("attributes") or []
                        )
                    except (ValueError, TypeError, KeyError) as e:
                        rejected.append(Rejected(line_no, f"bad attributes: {e}", p))
                        continue
                    reason = b.series_ok[i]
                    if reason:
                        rejected.append(Rejected(line_no, reason, {"metric": name, "point": p}))
                        continue
                    t = p.get("timeUnixNano")
                    if not t or int(t) <= 0:
                        rejected.append(
                            Rejected(line_no, "data point has no timeUnixNano", {"metric": name, "point": p})
                        )
                        continue
                    t = int(t)
                    st = int(p.get("startTimeUnixNano") or 0) or None
                    if t >= MAX_NS or (st is not None and not 0 < st < MAX_NS):
                        rejected.append(Rejected(line_no, "timeUnixNano/startTimeUnixNano out of range", {"metric": name, "point": p}))
                        continue
                    if kind in ("gauge", "sum"):
                        v = _num(p)
                        if v is None:
                            rejected.append(
                                Rejected(
                                    line_no,
                                    "number point has neither asDouble nor asInt",
                                    {"metric": name, "point": p},
                                )
                            )
                            continue
                        s = c = mn = mx = p99 = None
                    else:
                        c = float(p.get("count") or 0)
                        s = float(p.get("sum") or 0.0)
                        mn = mx = p99 = None
                        if kind == "summary":
                            for q in p.get("quantileValues") or []:
                                qq = float(q.get("quantile") or 0.0)
                                if qq == 0.0:
                                    mn = float(q.get("value") or 0.0)
                                elif qq == 1.0:
                                    mx = float(q.get("value") or 0.0)
                                elif abs(qq - 0.99) < 1e-9:
                                    p99 = float(q.get("value") or 0.0)
                        else:
                            mn = float(p["min"]) if "min" in p else None
                            mx = float(p["max"]) if "max" in p else None
                        v = s / c if c else None
                    if not _finite(v, s, c, mn, mx, p99):
                        rejected.append(
                            Rejected(line_no, "value is not finite", {"metric": name, "point": p})
                        )
                        continue
                    h = b.series_hash[i].copy()
                    h.update(str(t).encode())
                    b.idx.append(i)
                    b.pid.append(h.hexdigest()[:32])
                    b.ts.append(t)
                    b.start.append(st)
                    b.value.append(v)
                    b.sum.append(s)
                    b.count.append(c)
                    b.min.append(mn)
                    b.max.append(mx)
                    b.p99.append(p99)


def flatten_lines(
    lines: Iterable[bytes],
    *,
    source: str,
    raw_key: str,
    ingested_at: dt.datetime,
    day: dt.date,
    hour: int,
) -> Flattened:
    """Flatten OTLP/JSON lines; lines and points that break the contract come back in ``rejected``."""
    b = _Builder(source)
    rejected: list[Rejected] = []
    n = 0
    for n, line in enumerate(lines, start=1):
        if not line.strip():
            continue
        try:
            req = orjson.loads(line)
            if not isinstance(req, dict):
                raise ValueError("line is not a JSON object")
        except (orjson.JSONDecodeError, ValueError) as e:
            rejected.append(Rejected(n, f"malformed JSON: {e}", line.decode("utf-8", "replace")[:10000]))
            continue
        before = len(b.idx)
        try:
            _add_request(b, req, n, rejected)
        except (ValueError, TypeError, AttributeError, KeyError) as e:
            # undo the partial line so that a line is either loaded or quarantined whole
            _truncate(b, before)
            rejected.append(Rejected(n, f"not a valid OTLP metrics request: {e}", req))
    return Flattened(b.table(source, raw_key, ingested_at, day, hour), rejected, n)


def _truncate(b: _Builder, n: int) -> None:
    for name in ("idx", "pid", "ts", "start", "value", "sum", "count", "min", "max", "p99"):
        del getattr(b, name)[n:]


def iter_points(table: pa.Table) -> Iterator[dict[str, Any]]:
    """Rows as dicts (for tests and small tables)."""
    yield from table.to_pylist()
