"""The receiver over HTTP: auth, encodings, partial success and quarantine, limits, backpressure, durability."""

from __future__ import annotations

import gzip
import json
import threading
import time
from typing import Any

import orjson
import pytest
from google.protobuf import json_format
from ingest_helpers import (
    AUTH,
    KEY,
    TEAM,
    BlockingZone,
    FailingZone,
    batch_request,
    flatten_zone,
    raw_keys,
    raw_lines,
)
from opentelemetry.proto.collector.metrics.v1.metrics_service_pb2 import (
    ExportMetricsServiceRequest,
    ExportMetricsServiceResponse,
)

from cms_dagster.lake import Zone, parse_raw_key
from cms_dagster.otel.ids import point_id

URL = "/v1/metrics"


def post_json(client: Any, body: Any, headers: dict | None = None) -> Any:
    data = body if isinstance(body, bytes) else orjson.dumps(body)
    return client.post(URL, content=data, headers={"content-type": "application/json", **AUTH, **(headers or {})})


def test_requests_without_a_valid_api_key_get_401(client: Any, zone: Zone) -> None:
    r = client.post(URL, json=batch_request())
    assert r.status_code == 401 and "Bearer" in r.json()["message"]
    assert r.headers["www-authenticate"].startswith("Bearer")
    r = client.post(URL, json=batch_request(), headers={"authorization": "Bearer wrong-key-0000"})
    assert r.status_code == 401
    assert raw_keys(zone) == []


def test_json_request_is_acknowledged_once_durable_and_flattens_to_the_same_points(client: Any, zone: Zone) -> None:
    req = batch_request(5, run="json")
    r = post_json(client, req)
    assert r.status_code == 200 and r.json() == {}
    (key,) = raw_keys(zone)  # present the moment the answer arrives
    meta = parse_raw_key(key)
    assert meta["source"] == "sdk" and "-ingest-" in meta["batch"]
    rows = flatten_zone(zone)
    sent = [
        point_id({"service.name": "pricing-batch", "cms.environment": "dev", "cms.ingest.team": TEAM}, "cms.batch.run.finished",
                 {"cms.asset_class": "derivatives", "cms.job": "eod_valuation", "cms.run_id": f"json-{i}", "cms.status": "success"},
                 int(dp["timeUnixNano"]), source="sdk")
        for i, dp in enumerate(req["resourceMetrics"][0]["scopeMetrics"][0]["metrics"][0]["sum"]["dataPoints"])
    ]
    assert sorted(r["point_id"] for r in rows) == sorted(sent)  # an SDK point's id includes the sending team
    assert json.loads(rows[0]["resource_attributes"])["cms.ingest.team"] == TEAM


def test_protobuf_and_gzip_requests_are_accepted_and_answered_in_kind(client: Any, zone: Zone) -> None:
    pb = json_format.Parse(json.dumps(batch_request(4, run="pb")), ExportMetricsServiceRequest()).SerializeToString()
    r = client.post(URL, content=gzip.compress(pb), headers={"content-type": "application/x-protobuf", "content-encoding": "gzip", **AUTH})
    assert r.status_code == 200 and r.headers["content-type"] == "application/x-protobuf"
    resp = ExportMetricsServiceResponse()
    resp.ParseFromString(r.content)
    assert not resp.HasField("partial_success")
    r = post_json(client, gzip.compress(orjson.dumps(batch_request(2, run="gz"))), {"content-encoding": "gzip"})
    assert r.status_code == 200
    assert sorted(row["run_id"] for row in flatten_zone(zone)) == ["gz-0", "gz-1", "pb-0", "pb-1", "pb-2", "pb-3"]


def test_rejected_points_get_partial_success_and_go_to_quarantine_with_the_reason(client: Any, zone: Zone) -> None:
    r = post_json(client, batch_request(3, run="ps", bad=2))
    body = r.json()
    assert r.status_code == 200
    assert body["partialSuccess"]["rejectedDataPoints"] == "2"
    assert "crypto" in body["partialSuccess"]["errorMessage"]
    assert len(flatten_zone(zone)) == 3
    rejected = [k for k in zone.list("quarantine/") if k.endswith(".rejected.jsonl")]
    (rk,) = rejected
    assert rk.startswith("quarantine/otel/metrics/source=sdk/dt=") and rk.endswith(".received.rejected.jsonl")
    lines = [json.loads(x) for x in zone.get(rk).splitlines()]
    assert [x["line"] for x in lines] == [1, 1] and all("crypto" in x["reason"] for x in lines)
    assert lines[0]["payload"]["team"] == TEAM and lines[0]["payload"]["metric"] == "cms.batch.run.finished"
    summary = json.loads(zone.get(rk.replace(".rejected.jsonl", ".reason.json")))
    assert summary["rejected_points"] == 2 and summary["source_key"] == raw_keys(zone)[0]


def test_partial_success_in_protobuf(client: Any) -> None:
    pb = json_format.Parse(json.dumps(batch_request(1, bad=1)), ExportMetricsServiceRequest()).SerializeToString()
    r = client.post(URL, content=pb, headers={"content-type": "application/x-protobuf", **AUTH})
    resp = ExportMetricsServiceResponse()
    resp.ParseFromString(r.content)
    assert resp.partial_success.rejected_data_points == 1 and "crypto" in resp.partial_success.error_message


def test_a_malformed_body_gets_400_with_a_clear_message_and_is_quarantined(client: Any, zone: Zone) -> None:
    r = post_json(client, b'{"resourceMetrics": [')
    assert r.status_code == 400 and "not valid JSON" in r.json()["message"]
    post_json(client, batch_request(1))  # the next flush carries the quarantine record
    (rk,) = [k for k in zone.list("quarantine/") if k.endswith(".rejected.jsonl")]
    rec = json.loads(zone.get(rk).splitlines()[0])
    assert rec["line"] == 0 and "not valid JSON" in rec["reason"] and rec["payload"]["team"] == TEAM
    r = client.post(URL, content=b"{}", headers={"content-type": "text/csv", **AUTH})
    assert r.status_code == 415


def test_oversized_bodies_get_413(make_client: Any) -> None:
    client = make_client(max_body_bytes=10_000)
    big = orjson.dumps(batch_request(200))
    assert post_json(client, big).status_code == 413
    bomb = gzip.compress(b" " * 5_000_000)  # small on the wire, huge once inflated
    r = post_json(client, bomb, {"content-encoding": "gzip"})
    assert r.status_code == 413 and "decompressed" in r.json()["message"]


def test_backpressure_answers_429_with_retry_after_and_the_waiting_batch_still_lands(make_client: Any, raw_dir: str) -> None:
    lake = BlockingZone(raw_dir)
    client = make_client(zone=lake, max_pending_requests=1, retry_after_s=3)
    answers: list[Any] = []
    t = threading.Thread(target=lambda: answers.append(post_json(client, batch_request(2, run="held"))))
    t.start()
    assert lake.entered.wait(10)  # the first batch is being written (held)
    assert answers == []  # ... and is not acknowledged before it is durable
    r = post_json(client, batch_request(1, run="turned-away"))
    assert r.status_code == 429 and r.headers["retry-after"] == "3"
    lake.release.set()
    t.join(10)
    assert answers[0].status_code == 200
    assert sorted(row["run_id"] for row in flatten_zone(Zone(raw_dir))) == ["held-0", "held-1"]


def test_a_failing_lake_answers_503_with_retry_after_and_recovers(make_client: Any, raw_dir: str) -> None:
    lake = FailingZone(raw_dir)
    client = make_client(zone=lake, retry_after_s=1)
    lake.failing.set()
    r = post_json(client, batch_request(1, run="lost"))
    assert r.status_code == 503 and r.headers["retry-after"] == "1"
    assert client.get("/health").status_code == 503
    lake.failing.clear()
    receiver = client.app.state.receiver
    receiver.committer._unhealthy_until = 0  # the back-off period is over
    assert post_json(client, batch_request(1, run="kept")).status_code == 200
    assert [row["run_id"] for row in flatten_zone(Zone(raw_dir))] == ["kept-0"]
    assert client.get("/stats", headers=AUTH).json()["flush_errors"] == 1


def test_health_and_stats_report_the_receiver(client: Any) -> None:
    h = client.get("/health", headers=AUTH)
    assert h.status_code == 200 and h.json()["status"] == "ok" and h.json()["lake_writable"] is True
    post_json(client, batch_request(3, bad=1))
    post_json(client, b"garbage")
    s = client.get("/stats", headers=AUTH).json()
    assert s["accepted_points"] == 3 and s["rejected_points"] == 1
    assert s["responses"] == {"200": 1, "400": 1} and s["requests"] == 2
    assert s["queue"]["requests"] == 0 and s["flushes"] >= 1
    assert s["flush_latency_ms"]["p50"] is not None


def test_an_empty_request_is_acknowledged_without_writing(client: Any, zone: Zone) -> None:
    assert post_json(client, {"resourceMetrics": []}).status_code == 200
    assert raw_keys(zone) == []


def test_two_receivers_on_one_lake_never_collide(make_client: Any, zone: Zone) -> None:
    a, b = make_client(), make_client()
    threads = [
        threading.Thread(target=lambda c=c, i=i: post_json(c, batch_request(2, run=f"rx{i}")))
        for i, c in enumerate([a, b, a, b])
    ]
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    keys = raw_keys(zone)
    assert len({parse_raw_key(k)["batch"].split("-ingest-")[1].rsplit("-", 1)[0] for k in keys}) == 2  # two instances
    assert sorted(raw_lines_run_ids(zone)) == sorted(f"rx{i}-{j}" for i in range(4) for j in range(2))


def raw_lines_run_ids(zone: Zone) -> list[str]:
    return [row["run_id"] for row in flatten_zone(zone)]


def test_requests_arriving_during_a_flush_share_the_next_batch_file(make_client: Any, raw_dir: str) -> None:
    lake = BlockingZone(raw_dir)
    client = make_client(zone=lake)
    first = threading.Thread(target=lambda: post_json(client, batch_request(1, run="first")))
    first.start()
    assert lake.entered.wait(10)  # the first flush is being written
    rest = [threading.Thread(target=lambda i=i: post_json(client, batch_request(1, run=f"g{i}"))) for i in range(7)]
    for t in rest:
        t.start()
    committer = client.app.state.receiver.committer
    deadline = time.monotonic() + 20
    while committer.pending_requests < 8 and time.monotonic() < deadline:  # 1 in flight + 7 waiting
        time.sleep(0.01)
    lake.release.set()
    for t in [first, *rest]:
        t.join(10)
    zone = Zone(raw_dir)
    assert len(raw_lines(zone)) == 8  # one line per request ...
    assert len(raw_keys(zone)) == 2  # ... in two files: the held flush and the next one


def test_the_keys_file_is_honoured(make_client: Any) -> None:
    client = make_client(api_keys={"k-file-team-0123456": "from-file"})
    assert post_json(client, batch_request(1), {"authorization": "Bearer k-file-team-0123456"}).status_code == 200
    assert post_json(client, batch_request(1), {"authorization": f"Bearer {KEY}"}).status_code == 401


@pytest.mark.slow
def test_big_bodies_are_decoded_off_the_event_loop_and_land(make_client: Any, zone: Zone) -> None:
    client = make_client()
    r = post_json(client, batch_request(6000, run="big"))  # ~2.5 MB of JSON
    assert r.status_code == 200
    assert len(flatten_zone(zone)) == 6000


@pytest.mark.slow
def test_writes_to_an_s3_raw_zone(make_client: Any, monkeypatch: Any) -> None:
    import boto3
    from moto import mock_aws

    monkeypatch.setenv("AWS_DEFAULT_REGION", "us-east-1")
    monkeypatch.setenv("AWS_ACCESS_KEY_ID", "testing")
    monkeypatch.setenv("AWS_SECRET_ACCESS_KEY", "testing")
    monkeypatch.delenv("AWS_ENDPOINT_URL", raising=False)
    with mock_aws():
        boto3.client("s3").create_bucket(Bucket="cms-raw")
        client = make_client(raw_url="s3://cms-raw/raw")
        r = post_json(client, batch_request(3, run="s3", bad=1))
        assert r.status_code == 200 and r.json()["partialSuccess"]["rejectedDataPoints"] == "1"
        s3zone = Zone("s3://cms-raw/raw")
        assert sorted(row["run_id"] for row in flatten_zone(s3zone)) == ["s3-0", "s3-1", "s3-2"]
        assert any(k.endswith(".rejected.jsonl") for k in s3zone.list("quarantine/"))
        assert client.get("/health").json()["status"] == "ok"
