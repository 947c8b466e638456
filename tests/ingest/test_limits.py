"""The receiver's limits under abuse: header size, header and idle timeouts, connection limit, points per
request, and the memory budget (with the receiver's peak RSS measured under the loads that used to take
it to gigabytes)."""

from __future__ import annotations

import gzip
import http.client
import os
import socket
import struct
import subprocess
import sys
import threading
import time
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import orjson
import pytest
from ingest_helpers import AUTH, KEY, TEAM, batch_request, raw_keys

from cms_dagster.ingest.app import IngestConfig
from cms_dagster.ingest.budget import MemoryBudget
from cms_dagster.ingest.decode import BodyError
from cms_dagster.ingest.server import BackgroundServer, serve_in_background
from cms_dagster.lake import Zone

URL = "/v1/metrics"
RSS_BOUND_MB = 500


@pytest.fixture
def server(raw_dir: str) -> Iterator[BackgroundServer]:
    cfg = IngestConfig(
        raw_url=raw_dir, api_keys={KEY: TEAM}, flush_ms=20, max_header_bytes=8 << 10,
        header_timeout_s=0.5, idle_timeout_s=0.5, max_connections=10,
    )
    srv = serve_in_background(cfg)
    yield srv
    srv.stop()


def connect(srv: BackgroundServer) -> socket.socket:
    s = socket.create_connection((srv.host, srv.port), timeout=15)
    return s


def closed_by_server(s: socket.socket) -> bytes:
    """Read until the server closes the connection (or 15 s pass: the test then fails)."""
    got = b""
    while True:
        chunk = s.recv(65536)
        if not chunk:
            return got
        got += chunk


def post(srv: BackgroundServer, body: bytes, headers: dict[str, str] | None = None) -> http.client.HTTPResponse:
    c = http.client.HTTPConnection(srv.host, srv.port, timeout=30)
    c.request("POST", URL, body=body, headers={"content-type": "application/json", **AUTH, **(headers or {})})
    r = c.getresponse()
    r.read()
    return r


def test_an_oversized_header_is_refused_before_it_is_read(server: BackgroundServer) -> None:
    s = connect(server)
    s.sendall(b"POST /v1/metrics HTTP/1.1\r\nHost: x\r\nAuthorization: Bearer " + b"a" * (64 << 10))
    answer = closed_by_server(s)  # answered and closed although the header never ended
    assert answer.startswith(b"HTTP/1.1 400")
    with pytest.raises(OSError):  # the rest of a 50 MB header is not read
        for _ in range(200):
            s.sendall(b"a" * (256 << 10))


def test_a_half_sent_request_does_not_hold_its_connection(server: BackgroundServer) -> None:
    s = connect(server)
    s.sendall(b"POST /v1/metrics HTTP/1.1\r\nHost: x\r\n")
    assert closed_by_server(s) == b""
    silent = connect(server)  # a connection that never sends anything
    assert closed_by_server(silent) == b""


def test_a_stalled_body_is_cut_off(server: BackgroundServer) -> None:
    s = connect(server)
    s.sendall(f"POST /v1/metrics HTTP/1.1\r\nHost: x\r\nAuthorization: Bearer {KEY}\r\nContent-Type: application/json\r\n"
              "Content-Length: 1000\r\n\r\n{".encode())
    assert not closed_by_server(s).startswith(b"HTTP/1.1 200")


def test_idle_connections_past_the_limit_never_lock_out_a_real_client(server: BackgroundServer, raw_dir: str) -> None:
    idle = [connect(server) for _ in range(30)]  # three times the limit, all silent
    r = post(server, orjson.dumps(batch_request(2, run="real")))
    assert r.status == 200
    assert len(raw_keys(Zone(raw_dir))) == 1
    for s in idle:
        s.close()


def test_too_many_points_in_one_request_get_413(make_client: Any) -> None:
    client = make_client(max_points=100)
    r = client.post(URL, content=orjson.dumps(batch_request(101)), headers={"content-type": "application/json", **AUTH})
    assert r.status_code == 413 and "101 data points" in r.json()["message"]
    r = client.post(URL, content=protobuf_gauge(101), headers={"content-type": "application/x-protobuf", **AUTH})
    assert r.status_code == 413


def test_past_the_memory_budget_a_request_gets_429_with_retry_after(make_client: Any) -> None:
    client = make_client(max_inflight_bytes=1 << 20, retry_after_s=2)
    busy = client.app.state.receiver.budget.reserve()  # another request holds the whole budget
    busy.grow(1 << 20)
    r = client.post(URL, content=orjson.dumps(batch_request(5)), headers={"content-type": "application/json", **AUTH})
    assert r.status_code == 429 and r.headers["retry-after"] == "2" and "budget" in r.json()["message"]
    busy.release()
    r = client.post(URL, content=orjson.dumps(batch_request(5)), headers={"content-type": "application/json", **AUTH})
    assert r.status_code == 200


def test_a_request_alone_always_fits_the_budget() -> None:
    b = MemoryBudget(100)
    alone = b.reserve()
    alone.grow(500)  # bigger than the budget, but nothing else is decoding
    other = b.reserve()
    with pytest.raises(BodyError) as e:
        other.grow(1)
    assert e.value.status == 429
    alone.release()
    other.grow(50)
    assert b.used == 50


# -- the receiver's peak memory under the loads of issue reports ------------------------------------


def _varint(n: int) -> bytes:
    out = bytearray()
    while True:
        b, n = n & 0x7F, n >> 7
        out.append(b | (0x80 if n else 0))
        if not n:
            return bytes(out)


def _field(num: int, payload: bytes) -> bytes:
    return _varint(num << 3 | 2) + _varint(len(payload)) + payload


def protobuf_gauge(points: int) -> bytes:
    """An ExportMetricsServiceRequest of one gauge with ``points`` minimal points, encoded by hand
    (fast: the same 18-byte point repeated)."""
    dp = b"\x19" + struct.pack("<Q", 1_795_212_060_000_000_000) + b"\x21" + struct.pack("<d", 1.0)
    gauge = _field(1, dp) * points
    metric = _field(1, b"cms.app.queue_depth") + _field(5, gauge)
    resource = _field(1, _field(1, b"service.name") + _field(2, _field(1, b"bench")))
    rm = _field(1, resource) + _field(2, _field(2, metric))
    return _field(1, rm)


def _peak_rss_mb(pid: int) -> float:
    for line in Path(f"/proc/{pid}/status").read_text().splitlines():
        if line.startswith("VmHWM:"):
            return int(line.split()[1]) / 1024
    raise AssertionError("no VmHWM in /proc: not Linux?")


@pytest.mark.slow
def test_the_receivers_memory_stays_bounded_under_huge_concurrent_requests(tmp_path: Path) -> None:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        port = s.getsockname()[1]
    env = {**os.environ, "CMS_INGEST_API_KEYS": f"{TEAM}:{KEY}", "CMS_RAW_URL": str(tmp_path / "raw")}
    proc = subprocess.Popen(
        [sys.executable, "-m", "cms_dagster.ingest", "serve", "--port", str(port), "--log-level", "warning"], env=env
    )
    try:
        deadline = time.monotonic() + 60
        while True:
            try:
                c = http.client.HTTPConnection("127.0.0.1", port, timeout=2)
                c.request("GET", "/health")
                if c.getresponse().status == 200:
                    break
            except OSError:
                pass
            assert time.monotonic() < deadline and proc.poll() is None, "receiver did not start"
            time.sleep(0.1)
        idle_mb = _peak_rss_mb(proc.pid)
        big_json = orjson.dumps(batch_request(30_000, run="big"))  # about 12 MB
        gz = gzip.compress(big_json)
        pb = gzip.compress(protobuf_gauge(780_000))  # 780k points in about 3 MB of gzip
        loads = [(big_json, {})] * 8 + [(gz, {"content-encoding": "gzip"})] * 8
        loads += [(pb, {"content-type": "application/x-protobuf", "content-encoding": "gzip"})]
        statuses: list[tuple[int, str | None]] = []  # every answer, retries included
        final: list[int] = []

        def send(body: bytes, headers: dict[str, str], attempts: int = 30) -> None:
            """Send like an OTLP exporter: retry a 429 after its Retry-After."""
            for _ in range(attempts):
                c = http.client.HTTPConnection("127.0.0.1", port, timeout=120)
                c.request("POST", URL, body=body, headers={"content-type": "application/json", **AUTH, **headers})
                r = c.getresponse()
                r.read()
                c.close()
                statuses.append((r.status, r.getheader("Retry-After")))
                if r.status != 429:
                    break
                time.sleep(float(r.getheader("Retry-After") or 1))
            final.append(r.status)

        threads = [threading.Thread(target=send, args=load) for load in loads]
        for t in threads:
            t.start()
        for t in threads:
            t.join(300)
        peak = _peak_rss_mb(proc.pid)
    finally:
        proc.terminate()
        proc.wait(60)
    print(f"receiver peak RSS {peak:.0f} MB (idle {idle_mb:.0f} MB), {len(statuses)} answers, final {sorted(final)}")
    assert {s for s, _ in statuses} <= {200, 413, 429}, statuses
    assert all(ra for s, ra in statuses if s == 429)  # every 429 says when to come back
    assert sorted(final) == [200] * 16 + [413]  # all JSON lands in the end; the 780k-point protobuf never
    assert len(raw_keys(Zone(str(tmp_path / "raw")))) >= 1
    assert peak < RSS_BOUND_MB, f"receiver peak RSS {peak:.0f} MB (idle {idle_mb:.0f} MB)"
