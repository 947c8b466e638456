"""End to end: the Python SDK talks to a live receiver (uvicorn) and its points are found in the raw zone;
retry, spool and replay across a receiver stop/restart; a SIGKILL'd receiver loses nothing it acknowledged."""

from __future__ import annotations

import json
import os
import signal
import socket
import subprocess
import sys
import time
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import httpx
import pytest
from cms_sdk import CmsClient
from ingest_helpers import AUTH, KEY, TEAM, batch_request, flatten_zone, raw_run_ids

from cms_dagster.ingest.app import IngestConfig
from cms_dagster.ingest.server import serve_in_background
from cms_dagster.lake import Zone


def start_receiver(raw_dir: str, port: int = 0) -> Any:
    return serve_in_background(IngestConfig(raw_url=raw_dir, api_keys={KEY: TEAM}, flush_ms=20), port=port)


@pytest.fixture
def receiver(raw_dir: str) -> Iterator[Any]:
    srv = start_receiver(raw_dir)
    yield srv
    srv.stop()


def sdk_client(url: str, spool: Path, **kw: Any) -> CmsClient:
    opts: dict[str, Any] = dict(
        endpoint=url, api_key=KEY, service_name="pricing-batch", environment="staging", environ={},
        spool_dir=str(spool), export_interval_ms=50, initial_backoff_ms=10, max_backoff_ms=100, max_retries=2,
    )
    opts.update(kw)
    return CmsClient(**opts)


def wait_until(cond: Any, timeout: float = 20.0) -> bool:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if cond():
            return True
        time.sleep(0.02)
    return cond()


def test_sdk_points_reach_the_raw_zone_through_a_live_receiver(receiver: Any, raw_dir: str, tmp_path: Path) -> None:
    c = sdk_client(receiver.url, tmp_path / "spool")
    with c.run("derivatives", "eod_valuation", run_id="derivatives.eod_valuation.e2e", scheduled_start="2026-11-20T22:00:00Z") as run:
        with run.stage("validation", type="validation", depends_on=["ingest"]) as st:
            st.records(1000)
        run.records(1000).bytes(4096)
    c.feed("bloomberg-bpipe", provider="bloomberg").heartbeat(up=True, latency_ms=12.5, messages=480)
    c.gauge("open_orders", 42, {"desk": "rates"})
    c.counter("trades", 3)
    assert c.flush(15)
    c.close()
    rows = flatten_zone(Zone(raw_dir))
    names = sorted(r["metric_name"] for r in rows)
    assert names == sorted([
        "cms.batch.run.started", "cms.batch.run.finished", "cms.batch.run.duration", "cms.batch.run.records",
        "cms.batch.run.bytes", "cms.stage.run.started", "cms.stage.run.finished", "cms.stage.run.duration",
        "cms.stage.run.records", "cms.feed.up", "cms.feed.latency", "cms.feed.messages", "cms.app.open_orders",
        "cms.app.trades",
    ])
    ents = {r["entity_id"] for r in rows}
    assert {"job:derivatives.eod_valuation", "stage:derivatives.eod_valuation.validation", "feed:bloomberg-bpipe",
            "app:pricing-batch"} <= ents
    res = json.loads(rows[0]["resource_attributes"])
    assert res["cms.ingest.team"] == TEAM and res["telemetry.sdk.language"] == "python" and res["cms.environment"] == "staging"
    s = c.stats()
    assert s["exported_points"] == 14 and s["rejected"] == 0 and s["dropped"] == 0


def test_sdk_spools_while_the_receiver_is_stopped_and_replays_after_restart(raw_dir: str, tmp_path: Path) -> None:
    srv = start_receiver(raw_dir)
    port = srv.port
    spool = tmp_path / "spool"
    c = sdk_client(srv.url, spool)
    try:
        c.gauge("phase", 1.0)
        assert c.flush(15)
        srv.stop()  # the receiver goes away
        c.gauge("phase", 2.0)
        assert c.flush(15)
        assert c.stats()["spooled_files"] >= 1 and list(spool.glob("*.json"))
        srv = start_receiver(raw_dir, port=port)  # ... and comes back on the same address
        c.gauge("phase", 3.0)
        assert wait_until(lambda: c.flush(5) and c.stats()["spool_pending"] == 0 and not c.stats()["endpoint_down"])
    finally:
        c.close()
        srv.stop()
    values = sorted(r["value"] for r in flatten_zone(Zone(raw_dir)) if r["metric_name"] == "cms.app.phase")
    assert values == [1.0, 2.0, 3.0]
    assert not list(spool.glob("*.json")) and c.stats()["replayed_files"] >= 1


def test_the_sdk_honours_backpressure_from_the_receiver(raw_dir: str, tmp_path: Path) -> None:
    srv = serve_in_background(IngestConfig(raw_url=raw_dir, api_keys={KEY: TEAM}, flush_ms=20, max_pending_requests=0, retry_after_s=1))
    c = sdk_client(srv.url, tmp_path / "spool", max_retries=1, max_backoff_ms=5000)
    waits: list[float] = []
    c._exporter.sleep = lambda s: waits.append(s) or False  # record instead of sleeping
    try:
        c.gauge("busy", 1.0)
        assert c.flush(15)
    finally:
        c.close()
        srv.stop()
    assert waits == [1.0]  # the receiver's Retry-After
    assert c.stats()["spooled_files"] == 1 and c.stats()["retries"] == 1


def test_malformed_http_does_not_take_the_receiver_down(receiver: Any) -> None:
    for garbage in (b"\x00\xff" * 50, b"POST /v1/metrics HTTP/1.1\r\nContent-Length: -5\r\n\r\n", b"GET / HTTP/9.9\r\n\r\n"):
        with socket.create_connection((receiver.host, receiver.port), timeout=5) as s:
            s.sendall(garbage)
            try:
                s.recv(1024)
            except OSError:
                pass
    r = httpx.post(f"{receiver.url}/v1/metrics", json=batch_request(1), headers=AUTH, timeout=10)
    assert r.status_code == 200 and httpx.get(f"{receiver.url}/health").json()["status"] == "ok"


def _free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def _spawn(raw_dir: str, port: int) -> subprocess.Popen:
    env = {**os.environ, "CMS_INGEST_API_KEYS": f"{TEAM}:{KEY}", "CMS_RAW_URL": raw_dir}
    p = subprocess.Popen(
        [sys.executable, "-m", "cms_dagster.ingest", "serve", "--port", str(port), "--flush-ms", "20", "--log-level", "warning"],
        env=env, stdout=subprocess.DEVNULL, stderr=subprocess.PIPE,
    )
    ok = wait_until(lambda: _healthy(port) or p.poll() is not None, 30)
    assert ok and p.poll() is None, f"receiver did not start: {p.stderr.read().decode() if p.stderr else ''}"
    return p


def _healthy(port: int) -> bool:
    try:
        return httpx.get(f"http://127.0.0.1:{port}/health", timeout=1).status_code == 200
    except httpx.HTTPError:
        return False


@pytest.mark.slow
def test_a_sigkilled_receiver_loses_nothing_it_acknowledged(raw_dir: str) -> None:
    port = _free_port()
    proc = _spawn(raw_dir, port)
    acked: list[str] = []
    try:
        with httpx.Client(base_url=f"http://127.0.0.1:{port}", headers=AUTH, timeout=10) as http:
            for i in range(40):
                if i == 20:
                    proc.send_signal(signal.SIGKILL)  # mid-stream, no chance to flush
                    proc.wait()
                    proc = _spawn(raw_dir, port)
                try:
                    r = http.post("/v1/metrics", json=batch_request(5, run=f"k{i}"))
                except httpx.TransportError:
                    continue
                if r.status_code == 200:
                    acked += [f"k{i}-{j}" for j in range(5)]
    finally:
        proc.send_signal(signal.SIGTERM)
        proc.wait(30)
    found = set(raw_run_ids(Zone(raw_dir)))
    assert len(acked) >= 150 and set(acked) <= found


def test_the_demo_helper_runs_a_receiver_the_sdk_can_use(raw_dir: str, tmp_path: Path) -> None:
    from cms_dagster.ingest.demo import serve_in_background as demo_serve

    srv = demo_serve(raw_dir, api_keys={"demo-key-0123456789": "demo"})
    c = sdk_client(srv.url, tmp_path / "spool", api_key="demo-key-0123456789", max_queue_size=50_000, max_batch_size=5000)
    for i in range(2000):  # a simulator replaying history with explicit timestamps
        c.counter("replayed", 1, {"i": i % 10}, time=1_795_212_000 + i)
    c.close(30)
    srv.stop()
    assert c.stats()["exported_points"] == 2000 and c.stats()["dropped"] == 0
    assert len(flatten_zone(Zone(raw_dir))) == 2000
