"""Property-based fuzzing of the receiver and the processing step (Hypothesis).

Random and mutated OTLP requests, sent as JSON or protobuf, plain or gzip'd, by teams that own or do
not own the service. For every request the invariants hold: the server stays up; the answer is
200/206/4xx/429/503 and every refusal says why; what was acknowledged is exactly what the new raw batch
holds, and processing accepts all of it (so it reaches ``raw.metric_points``); every point rejected at
the door is in quarantine with a reason; nothing else in the lake changes.

``make test`` runs a small budget (``--fuzz-examples``, default 120 per property); run longer with
``pytest tests/ingest/test_fuzz.py --fuzz-examples 5000``.
"""

from __future__ import annotations

import datetime as dt
import gzip
import json
import math
from typing import Any

import orjson
import pytest
from google.protobuf import json_format
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st
from ingest_helpers import AUTH, NoSyncZone
from opentelemetry.proto.collector.metrics.v1.metrics_service_pb2 import ExportMetricsServiceRequest

from cms_dagster.lake import Zone, parse_raw_key
from cms_dagster.otel.flatten import flatten_lines
from cms_dagster.otel.otlp import from_attributes

FX = {"authorization": "Bearer k-fx-feeds-0123456789"}
SERVICES = {"markets-batch": ("pricing-*",), "fx-feeds": ("fx-*",)}
T0 = 1_795_212_060_000_000_000
ANSWERS = {200, 206, 400, 401, 413, 415, 429, 503}
INGESTED = dt.datetime(2026, 1, 1, tzinfo=dt.timezone.utc)

# -- strategies ---------------------------------------------------------------------------------------

odd_scalar = st.one_of(
    st.none(), st.booleans(), st.integers(min_value=-(2**70), max_value=2**70), st.floats(allow_nan=True, allow_infinity=True),
    st.text(max_size=12), st.sampled_from(["NaN", "Infinity", "-1", "1e400", "9" * 30, "false", "true", "0x10", ""]),
)
any_value = st.recursive(
    st.one_of(
        st.builds(lambda v: {"stringValue": v}, st.one_of(st.text(max_size=12), odd_scalar)),
        st.builds(lambda v: {"intValue": v}, st.one_of(st.integers(-(2**64), 2**64).map(str), odd_scalar)),
        st.builds(lambda v: {"doubleValue": v}, odd_scalar),
        st.builds(lambda v: {"boolValue": v}, st.one_of(st.booleans(), odd_scalar)),
        st.builds(lambda v: {"bytesValue": v}, st.one_of(st.just("AQI="), odd_scalar)),
        st.just({}),
    ),
    lambda inner: st.one_of(
        st.builds(lambda vs: {"arrayValue": {"values": vs}}, st.lists(inner, max_size=3)),
        st.builds(lambda kvs: {"kvlistValue": {"values": kvs}}, st.lists(st.builds(lambda k, v: {"key": k, "value": v}, st.text(max_size=5), inner), max_size=3)),
    ),
    max_leaves=6,
)
cms_attr = st.sampled_from([
    ("cms.asset_class", {"stringValue": "equities"}), ("cms.asset_class", {"stringValue": "crypto"}),
    ("cms.job", {"stringValue": "eod_valuation"}), ("cms.run_id", {"stringValue": "r1"}),
    ("cms.status", {"stringValue": "success"}), ("cms.status", {"stringValue": "maybe"}),
    ("cms.feed", {"stringValue": "fx-spot"}), ("cms.attempt", {"intValue": "1"}), ("cms.attempt", {"stringValue": "1"}),
    ("cms.stage", {"stringValue": "load"}), ("cms.environment", {"intValue": 3}),
])
attributes = st.lists(
    st.one_of(cms_attr.map(lambda kv: {"key": kv[0], "value": kv[1]}), st.builds(lambda k, v: {"key": k, "value": v}, st.text(max_size=6), any_value)),
    max_size=5,
)
time_ns = st.one_of(st.integers(T0 - 10**12, T0 + 10**12).map(str), st.integers(T0, T0 + 10**6), odd_scalar)
number_point = st.fixed_dictionaries(
    {"attributes": attributes, "timeUnixNano": time_ns},
    optional={"startTimeUnixNano": time_ns, "asDouble": odd_scalar, "asInt": st.one_of(st.integers(-(2**64), 2**64).map(str), odd_scalar)},
)
summary_point = st.fixed_dictionaries(
    {"attributes": attributes, "timeUnixNano": time_ns, "count": st.one_of(st.integers(0, 10).map(str), odd_scalar), "sum": odd_scalar},
    optional={"quantileValues": st.lists(st.fixed_dictionaries({"quantile": st.sampled_from([0.0, 0.99, 1.0]), "value": odd_scalar}), max_size=3)},
)
histogram_point = st.fixed_dictionaries(
    {"attributes": attributes, "timeUnixNano": time_ns, "count": st.one_of(st.integers(0, 10).map(str), odd_scalar)},
    optional={"sum": odd_scalar, "bucketCounts": st.lists(st.one_of(st.integers(0, 5).map(str), odd_scalar), max_size=3),
              "explicitBounds": st.lists(odd_scalar, max_size=2), "min": odd_scalar, "max": odd_scalar},
)
metric_name = st.sampled_from([
    "cms.app.queue_depth", "cms.feed.latency", "cms.batch.run.finished", "cms.stage.run.duration", "cms.nope",
    "amazonaws.com/AWS/RDS/CPUUtilization", "", "custom.metric",
])


@st.composite
def metric(draw: Any) -> dict[str, Any]:
    kind = draw(st.sampled_from(["gauge", "sum", "summary", "histogram", "exponentialHistogram", None]))
    m: dict[str, Any] = {"name": draw(metric_name), "unit": draw(st.sampled_from(["1", "ms", "", "{run}"]))}
    if kind is None:
        return m
    pts = {"summary": summary_point, "histogram": histogram_point}.get(kind, number_point)
    m[kind] = {"dataPoints": draw(st.lists(pts, max_size=4))}
    if kind == "sum":
        m[kind]["aggregationTemporality"] = 1
    return m


@st.composite
def otlp_request(draw: Any) -> dict[str, Any]:
    rms = []
    for _ in range(draw(st.integers(0, 2))):
        service = draw(st.sampled_from(["pricing-batch", "fx-spot", "unclaimed", None, 7]))
        res_attrs = [] if service is None else [{"key": "service.name", "value": {"stringValue": service} if isinstance(service, str) else {"intValue": service}}]
        res_attrs += draw(st.lists(st.builds(lambda k, v: {"key": k, "value": v}, st.sampled_from(["cms.environment", "x", "cms.ingest.team"]), any_value), max_size=2))
        rms.append({"resource": {"attributes": res_attrs}, "scopeMetrics": [{"scope": {"name": "fuzz"}, "metrics": draw(st.lists(metric(), max_size=3))}]})
    return {"resourceMetrics": rms}


def _paths(node: Any, path: tuple = ()) -> list[tuple]:
    out = [path]
    if isinstance(node, dict):
        for k, v in node.items():
            out += _paths(v, (*path, k))
    elif isinstance(node, list):
        for i, v in enumerate(node):
            out += _paths(v, (*path, i))
    return out


@st.composite
def mutated(draw: Any) -> dict[str, Any]:
    """A request with one to three nodes replaced by odd values (structure broken anywhere)."""
    req = draw(otlp_request())
    for _ in range(draw(st.integers(1, 3))):
        paths = _paths(req)[1:]
        if not paths:
            break
        path = draw(st.sampled_from(paths))
        parent = req
        for p in path[:-1]:
            parent = parent[p]
        parent[path[-1]] = draw(st.one_of(odd_scalar, st.just([]), st.just({}), any_value))
    return req


def _protobuf(req: dict[str, Any]) -> bytes | None:
    try:
        return json_format.ParseDict(req, ExportMetricsServiceRequest()).SerializeToString()
    except (json_format.ParseError, ValueError, TypeError, OverflowError):
        return None


@st.composite
def valid_request(draw: Any) -> dict[str, Any]:
    """A request the markets-batch team may send whole (so acknowledged points are common)."""
    pts = [
        {"attributes": [{"key": "cms.feed", "value": {"stringValue": draw(st.sampled_from(["a", "b"]))}}],
         "timeUnixNano": str(draw(st.integers(T0, T0 + 10**12))), "asDouble": draw(st.floats(-1e9, 1e9))}
        for _ in range(draw(st.integers(1, 5)))
    ]
    m = {"name": "cms.app.queue_depth", "unit": "1", "gauge": {"dataPoints": pts}}
    res = {"attributes": [{"key": "service.name", "value": {"stringValue": "pricing-batch"}}]}
    return {"resourceMetrics": [{"resource": res, "scopeMetrics": [{"metrics": [m]}]}]}


@st.composite
def http_request(draw: Any) -> tuple[bytes, dict[str, str]]:
    source = draw(st.sampled_from(["valid", "random", "mutated"]))
    req = draw({"valid": valid_request(), "random": otlp_request(), "mutated": mutated()}[source])
    encoding = draw(st.sampled_from(["json", "json", "protobuf", "raw-bytes", "truncated"]))
    headers = {"content-type": "application/json"}
    body: bytes
    if encoding == "protobuf" and (pb := _protobuf(req)) is not None:
        headers = {"content-type": "application/x-protobuf"}
        body = pb
    elif encoding == "raw-bytes":
        headers = {"content-type": draw(st.sampled_from(["application/json", "application/x-protobuf"]))}
        body = draw(st.binary(max_size=200))
    else:
        body = json.dumps(req, allow_nan=True).encode()
        if encoding == "truncated":
            body = body[: draw(st.integers(0, len(body)))]
    if draw(st.booleans()):
        body = gzip.compress(body)
        if draw(st.integers(0, 9)) == 0:
            body = body[: draw(st.integers(0, len(body)))]
        headers["content-encoding"] = "gzip"
    auth = AUTH if source == "valid" else draw(st.sampled_from([AUTH, FX]))
    return body, {**headers, **auth}


# -- invariants ---------------------------------------------------------------------------------------


def _points(req: dict[str, Any]) -> int:
    return sum(
        len(m[k]["dataPoints"]) for rm in req["resourceMetrics"] for sm in rm["scopeMetrics"] for m in sm["metrics"]
        for k in ("gauge", "sum", "summary", "histogram") if k in m
    )


def _quarantine_records(zone: Zone, keys: set[str]) -> list[dict[str, Any]]:
    out = []
    for k in sorted(keys):
        if k.endswith(".rejected.jsonl"):
            out += [orjson.loads(line) for line in zone.get(k).splitlines()]
    return out


def _check_answer(r: Any) -> tuple[int, int]:
    """(accepted, rejected) from an answer; asserts it is one of the promised ones, with a reason."""
    assert r.status_code in ANSWERS, (r.status_code, r.text[:300])
    if r.status_code != 200:
        if r.headers["content-type"] == "application/json":
            assert r.json()["message"]
        else:
            assert r.content[0] == 0x08 and len(r.content) > 4
        if r.status_code in (429, 503):
            assert r.headers["retry-after"]
        return 0, 0
    if r.headers["content-type"] == "application/json":
        ps = r.json().get("partialSuccess") or {}
        rejected, message = int(ps.get("rejectedDataPoints") or 0), ps.get("errorMessage", "")
    else:
        from opentelemetry.proto.collector.metrics.v1.metrics_service_pb2 import ExportMetricsServiceResponse

        resp = ExportMetricsServiceResponse()
        resp.ParseFromString(r.content)
        rejected, message = resp.partial_success.rejected_data_points, resp.partial_success.error_message
    if rejected:
        assert message
    return -1, rejected


@pytest.mark.slow
def test_any_request_is_answered_as_promised_and_what_is_acknowledged_all_reaches_the_warehouse(
    make_client: Any, raw_dir: str, fuzz_examples: int
) -> None:
    # TestClient re-raises any unhandled server error; fsync is skipped to keep the run short
    client = make_client(
        zone=NoSyncZone(raw_dir), flush_ms=1, max_body_bytes=256 << 10, max_points=200,
        api_keys={AUTH["authorization"][7:]: "markets-batch", FX["authorization"][7:]: "fx-feeds"}, services=SERVICES,
    )
    zone = Zone(raw_dir)
    seen: set[int] = set()
    landed: list[int] = []

    @settings(max_examples=fuzz_examples, deadline=None, database=None, suppress_health_check=list(HealthCheck))
    @given(case=http_request())
    def one(case: tuple[bytes, dict[str, str]]) -> None:
        body, headers = case
        before = {k: len(zone.get(k)) for k in zone.list("")}
        accepted_before = client.get("/stats", headers=AUTH).json()["accepted_points"]
        r = client.post("/v1/metrics", content=body, headers=headers)
        seen.add(r.status_code)
        acked, rejected = _check_answer(r)
        after = set(zone.list(""))
        assert set(before) <= after  # nothing removed ...
        assert all(len(zone.get(k)) == n for k, n in before.items())  # ... or rewritten
        new = after - set(before)
        accepted = client.get("/stats", headers=AUTH).json()["accepted_points"] - accepted_before
        raw = [k for k in new if k.startswith("otel/") and k.endswith(".jsonl.gz")]
        if acked and accepted:
            (key,) = raw
            lines = gzip.decompress(zone.get(key)).splitlines()
            assert len(lines) == 1 and _points(orjson.loads(lines[0])) == accepted
            meta = parse_raw_key(key)
            flat = flatten_lines(lines, source="sdk", raw_key=key, ingested_at=INGESTED, day=meta["dt"], hour=meta["hour"])
            landed.append(accepted)
            assert not flat.rejected, flat.rejected[:2]  # processing takes all of it: it reaches raw.metric_points
            assert flat.points == len({*flat.table.column("point_id").to_pylist()}) >= 1
            for row in flat.table.to_pylist():
                res = json.loads(row["resource_attributes"])
                service = res.get("service.name")
                team = res["cms.ingest.team"]
                assert service in (None, "unclaimed") or service.startswith(SERVICES[team][0][:-1])  # ownership held
                assert not row["metric_name"].startswith("amazonaws.com/")
                assert row["value"] is None or math.isfinite(row["value"])
        else:
            assert raw == [] and accepted == 0
        if rejected:
            records = _quarantine_records(zone, set(new))
            assert records and all(rec["reason"] for rec in records)

    one()
    assert {200, 400} <= seen and landed, (seen, len(landed))  # the fuzzer reached both sides


@settings(deadline=None, database=None)
@given(value=any_value)
def test_attribute_values_are_decoded_or_refused_never_misread(value: dict[str, Any]) -> None:
    """One decoder for the receiver and processing: it either refuses a value with a reason, or returns
    something the warehouse's JSON column can hold (no 65-bit integers, no strings taken for booleans)."""
    try:
        decoded = from_attributes([{"key": "k", "value": value}])
    except (ValueError, TypeError, KeyError) as e:
        assert str(e)
        return
    orjson.dumps(decoded)  # encodable as the attributes column
    if "boolValue" in value:
        assert isinstance(decoded["k"], bool) and decoded["k"] is value["boolValue"]
