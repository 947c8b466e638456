"""Delivery: batching, retries with backoff and Retry-After, no retry on 4xx, spool and replay."""

from __future__ import annotations

import json
import os
from pathlib import Path
from typing import List

from sdk_stub import StubEndpoint, make_client

from cms_sdk.exporter import retry_after_s


def record_sleeps(c) -> List[float]:  # type: ignore[no-untyped-def]
    waits: List[float] = []

    def fake(s: float) -> bool:
        waits.append(s)
        return False

    c._exporter.sleep = fake
    return waits


def test_points_reach_the_endpoint_as_otlp_json_with_the_configured_headers(endpoint: StubEndpoint) -> None:
    c = make_client(endpoint.url, api_key="secret-key-123")
    for i in range(5):
        c.gauge("g", float(i))
    assert c.flush(10)
    c.close()
    (req,) = endpoint.requests
    assert req["path"] == "/v1/metrics"
    assert req["headers"]["authorization"] == "Bearer secret-key-123"
    assert req["headers"]["content-type"] == "application/json"
    assert len(endpoint.points()) == 5
    assert c.stats()["exported_points"] == 5


def test_gzip_compression_when_configured(endpoint: StubEndpoint) -> None:
    c = make_client(endpoint.url, compression="gzip")
    c.counter("n", 1)
    c.close()
    assert endpoint.requests[0]["headers"]["content-encoding"] == "gzip"
    assert len(endpoint.points()) == 1


def test_large_volumes_are_split_into_batches_of_max_batch_size(endpoint: StubEndpoint) -> None:
    c = make_client(endpoint.url, max_batch_size=100, max_queue_size=10_000)
    for i in range(1000):
        c.counter("n", 1, time=1_800_000_000 + i)
    c.close()
    assert len(endpoint.points()) == 1000
    assert max(len(r["body"]["resourceMetrics"][0]["scopeMetrics"][0]["metrics"][0]["sum"]["dataPoints"]) for r in endpoint.requests) <= 100


def test_503_is_retried_with_retry_after_honoured_then_delivered(endpoint: StubEndpoint) -> None:
    endpoint.script = [(503, {"Retry-After": "7"}, b""), (429, {}, b""), (502, {}, b"")]
    c = make_client(endpoint.url, max_backoff_ms=30_000, initial_backoff_ms=500)
    waits = record_sleeps(c)
    c.gauge("g", 1.0)
    assert c.flush(10)
    c.close()
    assert len(endpoint.requests) == 4  # the same request, delivered on the 4th try
    assert waits[0] == 7.0  # Retry-After
    assert 0.5 <= waits[1] <= 1.0  # 500 ms x 2^1 x jitter in [0.5, 1]
    assert 1.0 <= waits[2] <= 2.0  # 500 ms x 2^2 x jitter
    s = c.stats()
    assert (s["retries"], s["failed_requests"], s["exported_points"], s["spooled_files"]) == (3, 3, 1, 0)


def test_a_400_is_not_retried_and_the_points_are_counted_as_rejected(endpoint: StubEndpoint) -> None:
    endpoint.script = [(400, {}, b'{"code":3,"message":"bad"}')]
    c = make_client(endpoint.url)
    waits = record_sleeps(c)
    c.gauge("g", 1.0)
    c.gauge("g", 2.0)
    c.close()
    assert len(endpoint.requests) == 1 and waits == []
    assert c.stats()["rejected"] == 2


def test_partial_success_is_counted_as_rejected(endpoint: StubEndpoint) -> None:
    endpoint.script = [(200, {}, b'{"partialSuccess":{"rejectedDataPoints":"1","errorMessage":"bad asset class"}}')]
    c = make_client(endpoint.url)
    c.gauge("g", 1.0)
    c.close()
    assert c.stats()["rejected"] == 1 and c.stats()["exported_points"] == 1


def test_413_splits_the_batch(endpoint: StubEndpoint) -> None:
    endpoint.script = [(413, {}, b"")]
    c = make_client(endpoint.url)
    for i in range(4):
        c.gauge("g", float(i), time=1_800_000_000 + i)
    c.close()
    sizes = [len(r["body"]["resourceMetrics"][0]["scopeMetrics"][0]["metrics"][0]["gauge"]["dataPoints"]) for r in endpoint.requests]
    assert sizes == [4, 2, 2]
    assert len(endpoint.points()) == 8  # the refused request is in the log too


def test_spool_when_the_endpoint_is_down_and_replay_when_it_is_back(tmp_path: Path) -> None:
    ep = StubEndpoint()
    port = ep.port
    ep.stop()  # receiver down: connection refused
    c = make_client(f"http://127.0.0.1:{port}", spool_dir=str(tmp_path), max_retries=2)
    record_sleeps(c)
    c.gauge("g", 1.0, time=1_800_000_000)
    assert c.flush(10)
    c.gauge("g", 2.0, time=1_800_000_060)  # endpoint known down: straight to the spool, no waiting
    assert c.flush(10)
    s = c.stats()
    assert s["spooled_files"] == 2 and s["endpoint_down"] is True
    assert len(list(tmp_path.glob("*.json"))) == 2

    ep2 = StubEndpoint(port)  # receiver back on the same port
    try:
        c._exporter._next_probe = 0  # the backoff schedule says: probe now
        c.gauge("g", 3.0, time=1_800_000_120)
        assert c.flush(10)
        c.close()
        values = sorted(p["asDouble"] for p in ep2.points())
        assert values == [1.0, 2.0, 3.0]
        assert list(tmp_path.glob("*.json")) == []
        assert c.stats()["replayed_files"] == 2 and c.stats()["endpoint_down"] is False
    finally:
        ep2.stop()


def test_files_spooled_by_an_earlier_process_are_replayed(endpoint: StubEndpoint, tmp_path: Path) -> None:
    body = {"resourceMetrics": [{"resource": {}, "scopeMetrics": [{"metrics": [
        {"name": "cms.app.old", "unit": "1", "gauge": {"dataPoints": [{"timeUnixNano": "1", "asDouble": 9.0}]}}]}]}]}
    (tmp_path / "00000000000000000001-1-000001.json").write_text(json.dumps(body))
    c = make_client(endpoint.url, spool_dir=str(tmp_path))
    c.gauge("new", 1.0)
    assert c.flush(10)  # a successful export triggers the replay
    c.close()
    assert sorted(p["metric"] for p in endpoint.points()) == ["cms.app.new", "cms.app.old"]
    assert not list(tmp_path.glob("*.json"))


def test_a_spooled_request_refused_for_good_is_moved_aside(endpoint: StubEndpoint, tmp_path: Path) -> None:
    (tmp_path / "00000000000000000001-1-000001.json").write_text('{"resourceMetrics": []}')
    endpoint.script = [(200, {}, b"{}"), (401, {}, b"")]
    c = make_client(endpoint.url, spool_dir=str(tmp_path))
    c.gauge("new", 1.0)
    assert c.flush(10)
    c.close()
    assert [p.name for p in tmp_path.iterdir()] == ["00000000000000000001-1-000001.json.rejected"]


def test_close_spools_what_could_not_be_delivered(tmp_path: Path) -> None:
    ep = StubEndpoint()
    ep.script = [(503, {}, b"")] * 20
    c = make_client(ep.url, spool_dir=str(tmp_path), max_retries=100)
    c.gauge("g", 1.0)
    c.close(timeout=5)
    ep.stop()
    (f,) = tmp_path.glob("*.json")
    assert json.loads(f.read_text())["resourceMetrics"][0]["scopeMetrics"][0]["metrics"][0]["name"] == "cms.app.g"


def test_a_full_spool_drops_and_counts(tmp_path: Path) -> None:
    ep = StubEndpoint()
    port = ep.port
    ep.stop()
    c = make_client(f"http://127.0.0.1:{port}", spool_dir=str(tmp_path), spool_max_bytes=10, max_retries=0)
    c.gauge("g", 1.0)
    c.close()
    assert c.stats()["dropped"] == 1 and not list(tmp_path.glob("*.json"))


def test_retry_after_accepts_seconds_and_http_dates() -> None:
    assert retry_after_s({"retry-after": "3"}) == 3.0
    assert retry_after_s({"retry-after": "Fri, 20 Nov 2026 10:00:10 GMT"}, now=1795168800.0) == 10.0
    assert retry_after_s({}) is None and retry_after_s({"retry-after": "soon"}) is None


def test_self_metrics_when_enabled(endpoint: StubEndpoint) -> None:
    c = make_client(endpoint.url, self_metrics=True)
    c._exporter._emit_self_metrics()
    c.close()
    assert {p["metric"] for p in endpoint.points()} == {
        "cms.app.sdk.queue_size", "cms.app.sdk.dropped", "cms.app.sdk.export_latency", "cms.app.sdk.call_overhead",
    }


def test_a_forked_child_does_not_resend_the_parents_queue(endpoint: StubEndpoint) -> None:
    c = make_client(endpoint.url, export_interval_ms=60_000)
    c.gauge("parent", 1.0)
    pid = os.fork()
    if pid == 0:  # child
        try:
            c.gauge("child", 1.0)
            c.close()
        finally:
            os._exit(0)
    os.waitpid(pid, 0)
    c.close()
    assert sorted(p["metric"] for p in endpoint.points()) == ["cms.app.child", "cms.app.parent"]
