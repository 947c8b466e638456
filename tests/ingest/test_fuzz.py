"""A seeded fuzzer: malformed bodies never crash the receiver, and nothing acknowledged is lost."""

from __future__ import annotations

import copy
import gzip
import json
import random
from typing import Any

import orjson
from google.protobuf import json_format
from ingest_helpers import AUTH, NoSyncZone, batch_request, flatten_zone, raw_lines, raw_run_ids
from opentelemetry.proto.collector.metrics.v1.metrics_service_pb2 import ExportMetricsServiceRequest

from cms_dagster.lake import Zone

SEED = 20261127
CASES = 500
ODD_VALUES: list[Any] = [
    None, "", "x", -1, 0, 2**63, 2**70, -(2**70), 1.5, "NaN", "Infinity", "-1", "1e400", [], {}, [1, "a"],
    {"a": {"b": []}}, True, False, "é\u0000\ud7ff", "9" * 400, {"stringValue": 5}, {"intValue": "x"},
    {"kvlistValue": {"values": [{"key": "k"}]}}, {"arrayValue": {"values": "nope"}}, {"doubleValue": "x"},
    {"boolValue": "yes"}, {"bytesValue": 5}, [[[]]], {"key": 5, "value": {}}, 1e308, -0.0, "2e20",
]


def _paths(node: Any, path: tuple = ()) -> list[tuple]:
    out = [path]
    if isinstance(node, dict):
        for k, v in node.items():
            out += _paths(v, (*path, k))
    elif isinstance(node, list):
        for i, v in enumerate(node):
            out += _paths(v, (*path, i))
    return out


def mutate(req: dict, rng: random.Random) -> dict:
    """Replace, delete or duplicate one to four nodes of a valid request."""
    for _ in range(rng.randint(1, 4)):
        if len(_paths(req)) > 1:
            req = _mutate_once(req, rng)
    return req


def _mutate_once(req: dict, rng: random.Random) -> dict:
    req = copy.deepcopy(req)
    path = rng.choice(_paths(req)[1:])
    parent = req
    for p in path[:-1]:
        parent = parent[p]
    last = path[-1]
    action = rng.random()
    if action < 0.15 and isinstance(parent, dict):
        del parent[last]
    elif action < 0.25 and isinstance(parent, list):
        parent.append(copy.deepcopy(parent[last]))
    else:
        parent[last] = copy.deepcopy(rng.choice(ODD_VALUES))
    return req


def body_for(rng: random.Random, i: int) -> tuple[bytes, dict[str, str], str]:
    """(body, headers, kind) for fuzz case ``i``."""
    valid = batch_request(rng.randint(1, 4), run=f"fz{i}", bad=rng.choice([0, 0, 1]))
    j = {"content-type": "application/json"}
    pbh = {"content-type": "application/x-protobuf"}
    r = rng.random()
    if r < 0.35:
        return json.dumps(mutate(valid, rng)).encode(), j, "mutated-json"
    if r < 0.45:
        text = json.dumps(mutate(valid, rng), allow_nan=True)
        cut = rng.randint(0, len(text))
        return text[:cut].encode(), j, "truncated-json"
    if r < 0.55:
        return bytes(rng.getrandbits(8) for _ in range(rng.randint(0, 300))), pbh, "random-protobuf"
    if r < 0.65:
        pb = bytearray(json_format.Parse(json.dumps(valid), ExportMetricsServiceRequest()).SerializeToString())
        for _ in range(rng.randint(1, 5)):
            pb[rng.randrange(len(pb))] = rng.getrandbits(8)
        return bytes(pb), pbh, "flipped-protobuf"
    if r < 0.72:
        gz = gzip.compress(orjson.dumps(valid))
        return gz[: rng.randint(0, len(gz) - 1)], {**j, "content-encoding": "gzip"}, "truncated-gzip"
    if r < 0.74:
        return gzip.compress(b"[" * 200_000), {**j, "content-encoding": "gzip"}, "deep-gzip"
    if r < 0.76:
        return gzip.compress(b"0" * (3 << 20)), {**j, "content-encoding": "gzip"}, "gzip-bomb"
    if r < 0.80:
        return orjson.dumps(valid), {"content-type": rng.choice(["text/plain", "application/xml", "", "application/json+x"])}, "content-type"
    if r < 0.83:
        return orjson.dumps(valid), {**j, "content-encoding": rng.choice(["br", "deflate", "zstd"])}, "encoding"
    if r < 0.86:
        return b"[" * 5000 + b"]" * 5000, j, "deep-json"
    return orjson.dumps(valid), j, "valid"


def test_fuzzed_bodies_never_crash_the_receiver_and_acknowledged_points_all_land(make_client: Any, raw_dir: str) -> None:
    # TestClient re-raises any unhandled server error; fsync is skipped to keep the run short
    client = make_client(zone=NoSyncZone(raw_dir), flush_ms=2, max_body_bytes=1 << 20)
    rng = random.Random(SEED)
    statuses: dict[str, set[int]] = {}
    acked_valid: list[str] = []
    for i in range(CASES):
        body, headers, kind = body_for(rng, i)
        r = client.post("/v1/metrics", content=body, headers={**headers, **AUTH})
        statuses.setdefault(kind, set()).add(r.status_code)
        assert r.status_code in (200, 400, 413, 415), f"case {i} ({kind}): {r.status_code} {r.text[:200]}"
        if r.status_code != 200:  # every refusal says why (a google.rpc.Status in the request's encoding)
            if r.headers["content-type"] == "application/json":
                assert r.json()["message"]
            else:
                assert r.content[2:] and r.content[0] == 0x08
        if kind == "valid" and r.status_code == 200:
            acked_valid.append(f"fz{i}")
    zone = Zone(raw_dir)
    stats = client.get("/stats", headers=AUTH).json()
    assert client.get("/health").json()["status"] == "ok"
    # everything accepted is exactly what is in the raw zone, and the processing step accepts all of it
    rows = flatten_zone(zone)
    assert stats["accepted_points"] == sum(1 for _ in raw_run_ids(zone))
    assert len(rows) == len({r["point_id"] for r in rows}) <= stats["accepted_points"]  # copies of one point: one row
    found = {str(rid).rsplit("-", 1)[0] for rid in raw_run_ids(zone) if rid}
    assert set(acked_valid) <= found
    assert len(raw_lines(zone)) >= len(acked_valid)
    # the fuzzer reached the interesting answers
    seen = set().union(*statuses.values())
    assert {200, 400, 413, 415} <= seen, statuses
