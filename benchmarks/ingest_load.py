"""Load the OTLP/HTTP receiver on loopback and check that nothing acknowledged is lost.

    .venv/bin/python benchmarks/ingest_load.py                      # both modes, 8 clients x 1000 points, 30 s each
    .venv/bin/python benchmarks/ingest_load.py --mode steady --seconds 10
    .venv/bin/python benchmarks/ingest_load.py --mode crash --clients 4

Starts ``python -m cms_dagster.ingest serve`` on a free port with a temporary raw zone, runs N client threads
(kept-alive HTTP/1.1 connections, OTLP/JSON bodies of ``--points`` business datapoints, each request tagged
with a unique id in a resource attribute) for T seconds, then reads every raw batch back and compares the
points found with the points acknowledged. ``crash`` mode SIGKILLs the receiver half way through and
restarts it; clients keep retrying while it is down. Prints accepted datapoints/s, p50/p99 request
latency and found vs acknowledged. Aim: >= 50,000 datapoints/s on 2 cores, zero acknowledged points lost.
"""

from __future__ import annotations

import argparse
import gzip
import http.client
import os
import signal
import socket
import subprocess
import sys
import tempfile
import threading
import time
from dataclasses import dataclass, field
from pathlib import Path

import orjson

KEY = "bench-key-0123456789abcdef"
TEAM = "bench"
MARK = "REQ-000000000000000000"  # fixed-width placeholder replaced per request
ASSET_CLASSES = ("equities", "fixed_income", "derivatives", "fx", "commodities")


def build_template(points: int) -> bytes:
    """One ExportMetricsServiceRequest with ``points`` stage/batch/feed datapoints (series repeat, values vary)."""
    t0 = 1_795_212_060_000_000_000
    metrics: dict[str, dict] = {}

    def add(name: str, kind: str, unit: str, attrs: dict, t: int, value: float) -> None:
        m = metrics.setdefault(name, {"name": name, "unit": unit, kind: {"dataPoints": []}})
        if kind == "sum":
            m[kind].update(aggregationTemporality=1, isMonotonic=True)
        dp = {
            "attributes": [
                {"key": k, "value": {"intValue": str(v)} if isinstance(v, int) else {"stringValue": v}} for k, v in attrs.items()
            ],
            "startTimeUnixNano": str(t - 60_000_000_000),
            "timeUnixNano": str(t),
        }
        if kind == "sum":
            dp["asInt"] = str(int(value))
        else:
            dp["asDouble"] = value
        m[kind]["dataPoints"].append(dp)

    i = 0
    while i < points:
        s = i // 4
        ac = ASSET_CLASSES[s % 5]
        run = {"cms.asset_class": ac, "cms.job": f"job_{s % 7}", "cms.run_id": f"{ac}.job_{s % 7}.{s % 50}"}
        stage = {**run, "cms.stage": f"stage_{s % 5}", "cms.stage_type": "transformation", "cms.attempt": 1, "cms.retries": 0, "cms.status": "success"}
        t = t0 + i * 1_000_000_000
        kind_pick = i % 4
        if kind_pick == 0:
            add("cms.stage.run.duration", "gauge", "s", stage, t, 12.5 + i % 17)
        elif kind_pick == 1:
            add("cms.stage.run.records", "sum", "{record}", stage, t, 1000 + i)
        elif kind_pick == 2:
            add("cms.feed.latency", "gauge", "ms", {"cms.feed": f"feed-{s % 12}", "cms.provider": "bloomberg"}, t, 3.0 + (i % 11) / 10)
        else:
            add("cms.batch.run.records", "sum", "{record}", {**run, "cms.status": "success"}, t, 50_000 + i)
        i += 1
    req = {
        "resourceMetrics": [
            {
                "resource": {"attributes": [
                    {"key": "service.name", "value": {"stringValue": "bench-load"}},
                    {"key": "cms.environment", "value": {"stringValue": "dev"}},
                    {"key": "bench.request", "value": {"stringValue": MARK}},
                ]},
                "scopeMetrics": [{"scope": {"name": "cms-sdk"}, "metrics": list(metrics.values())}],
            }
        ]
    }
    return orjson.dumps(req)


@dataclass
class Tally:
    lock: threading.Lock = field(default_factory=threading.Lock)
    acked: dict[str, int] = field(default_factory=dict)  # request id -> points acknowledged
    latencies_ms: list[float] = field(default_factory=list)
    statuses: dict[str, int] = field(default_factory=dict)
    errors: int = 0


def client_loop(cid: int, port: int, template: bytes, points: int, stop: threading.Event, tally: Tally) -> None:
    seq = 0
    conn: http.client.HTTPConnection | None = None
    headers = {"Content-Type": "application/json", "Authorization": f"Bearer {KEY}"}
    while not stop.is_set():
        rid = f"R{cid:03d}{seq:018d}"[: len(MARK)].ljust(len(MARK), "0")
        seq += 1
        body = template.replace(MARK.encode(), rid.encode(), 1)
        t0 = time.perf_counter()
        try:
            if conn is None:
                conn = http.client.HTTPConnection("127.0.0.1", port, timeout=30)
            conn.request("POST", "/v1/metrics", body=body, headers=headers)
            r = conn.getresponse()
            payload = r.read()
            status = r.status
            retry_after = r.getheader("Retry-After")
        except (OSError, http.client.HTTPException):
            if conn is not None:
                conn.close()
            conn = None
            with tally.lock:
                tally.errors += 1
            time.sleep(0.05)  # receiver down: retry shortly
            continue
        ms = (time.perf_counter() - t0) * 1000
        with tally.lock:
            tally.statuses[str(status)] = tally.statuses.get(str(status), 0) + 1
            if status == 200:
                rejected = int(orjson.loads(payload).get("partialSuccess", {}).get("rejectedDataPoints", 0) or 0)
                tally.acked[rid] = points - rejected
                tally.latencies_ms.append(ms)
        if status in (429, 503):
            time.sleep(float(retry_after or 1))
    if conn is not None:
        conn.close()


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def start_receiver(raw_dir: str, port: int, flush_ms: int, workers: int = 1) -> subprocess.Popen:
    env = {**os.environ, "CMS_INGEST_API_KEYS": f"{TEAM}:{KEY}", "CMS_RAW_URL": raw_dir}
    proc = subprocess.Popen(
        [sys.executable, "-m", "cms_dagster.ingest", "serve", "--port", str(port), "--flush-ms", str(flush_ms), "--workers", str(workers),
         "--log-level", "warning"],
        env=env,
        start_new_session=True,  # its own process group, so SIGKILL takes every worker down
    )
    deadline = time.monotonic() + 60
    while time.monotonic() < deadline:
        if proc.poll() is not None:
            raise SystemExit(f"receiver exited with {proc.returncode}")
        try:
            c = http.client.HTTPConnection("127.0.0.1", port, timeout=1)
            c.request("GET", "/health")
            if c.getresponse().status == 200:
                return proc
        except OSError:
            pass
        time.sleep(0.05)
    raise SystemExit("receiver did not become healthy within 60 s")


def cpu_seconds(pid: int) -> float:
    """User + system CPU time of a process and its direct children (Linux /proc), 0 when unavailable."""
    total = 0.0
    for stat in Path("/proc").glob("[0-9]*/stat"):
        try:
            fields = stat.read_text().rsplit(")", 1)[1].split()
        except (OSError, IndexError):
            continue
        if stat.parent.name == str(pid) or fields[1] == str(pid):
            total += (int(fields[11]) + int(fields[12])) / os.sysconf("SC_CLK_TCK")
    return total


def receiver_stats(port: int) -> dict:
    try:
        c = http.client.HTTPConnection("127.0.0.1", port, timeout=5)
        c.request("GET", "/stats", headers={"Authorization": f"Bearer {KEY}"})
        return orjson.loads(c.getresponse().read())
    except (OSError, http.client.HTTPException, orjson.JSONDecodeError):
        return {}


def count_raw(raw_dir: str) -> dict[str, int]:
    """Points per request id in every raw batch (duplicates summed)."""
    found: dict[str, int] = {}
    for path in sorted(Path(raw_dir, "otel", "metrics").rglob("*.jsonl.gz")):
        for line in gzip.decompress(path.read_bytes()).splitlines():
            if not line.strip():
                continue
            req = orjson.loads(line)
            for rm in req["resourceMetrics"]:
                rid = next(
                    (a["value"].get("stringValue") for a in rm["resource"]["attributes"] if a["key"] == "bench.request"), None
                )
                n = sum(
                    len(m[k]["dataPoints"])
                    for sm in rm["scopeMetrics"]
                    for m in sm["metrics"]
                    for k in ("gauge", "sum")
                    if k in m
                )
                found[rid] = found.get(rid, 0) + n
    return found


def pct(values: list[float], q: float) -> float:
    if not values:
        return float("nan")
    s = sorted(values)
    return s[min(len(s) - 1, int(q * len(s)))]


def run_mode(mode: str, clients: int, points: int, seconds: float, flush_ms: int, workers: int = 1) -> bool:
    raw_dir = tempfile.mkdtemp(prefix=f"cms-ingest-load-{mode}-")
    port = free_port()
    template = build_template(points)
    proc = start_receiver(raw_dir, port, flush_ms, workers)
    tally = Tally()
    stop = threading.Event()
    threads = [threading.Thread(target=client_loop, args=(i, port, template, points, stop, tally), daemon=True) for i in range(clients)]
    t_start = time.monotonic()
    for t in threads:
        t.start()
    downtime = 0.0
    cpu_before = cpu_seconds(proc.pid)
    own_before = time.process_time()
    if mode == "crash":
        time.sleep(seconds / 2)
        k0 = time.monotonic()
        cpu_killed = cpu_seconds(proc.pid) - cpu_before
        os.killpg(proc.pid, signal.SIGKILL)
        proc.wait()
        print(f"  SIGKILL sent to the receiver after {seconds / 2:.0f} s; restarting it", flush=True)
        proc = start_receiver(raw_dir, port, flush_ms, workers)
        downtime = time.monotonic() - k0
        cpu_before = cpu_seconds(proc.pid) - cpu_killed
        time.sleep(max(0.0, seconds - (time.monotonic() - t_start)))
    else:
        time.sleep(seconds)
    stats = receiver_stats(port)
    receiver_cpu = cpu_seconds(proc.pid) - cpu_before
    clients_cpu = time.process_time() - own_before
    stop.set()
    for t in threads:
        t.join(60)
    elapsed = time.monotonic() - t_start
    proc.send_signal(signal.SIGTERM)
    proc.wait(60)

    acked_points = sum(tally.acked.values())
    found = count_raw(raw_dir)
    found_acked = sum(min(found.get(rid, 0), n) for rid, n in tally.acked.items())
    lost = acked_points - found_acked
    print(f"mode={mode}: {clients} clients x {points} datapoints/request for {elapsed:.1f} s, {workers} receiver"
          f" process(es) (raw zone {raw_dir})")
    print(f"  accepted datapoints/s : {acked_points / elapsed:,.0f}")
    print(f"  requests              : {sum(tally.statuses.values())} answered {tally.statuses}, {tally.errors} connection errors")
    print(f"  request latency       : p50 {pct(tally.latencies_ms, 0.5):.1f} ms, p99 {pct(tally.latencies_ms, 0.99):.1f} ms")
    if acked_points:
        print(f"  CPU used              : receiver {receiver_cpu:.1f} s ({receiver_cpu / elapsed:.2f} cores, "
              f"{receiver_cpu / acked_points * 1e6:.1f} us/datapoint = {acked_points / max(receiver_cpu, 1e-9):,.0f} datapoints/s "
              f"per busy core), load clients {clients_cpu:.1f} s; machine load average {os.getloadavg()[0]:.1f}")
    if mode == "crash":
        print(f"  receiver down for     : {downtime:.1f} s (SIGKILL -> healthy again)")
    print(f"  acknowledged points   : {acked_points:,}")
    print(f"  found in raw zone     : {sum(found.values()):,} (of which acknowledged: {found_acked:,}; the rest were"
          " written but unanswered when the receiver died, or duplicates)")
    print(f"  acknowledged but lost : {lost:,}")
    if stats:
        print(f"  receiver /stats       : flushes {stats.get('flushes')}, flush p50/p99 "
              f"{stats.get('flush_latency_ms', {}).get('p50') or 0:.1f}/{stats.get('flush_latency_ms', {}).get('p99') or 0:.1f} ms, "
              f"files {stats.get('files_written')}")
    return lost == 0


def main(argv: list[str] | None = None) -> int:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--clients", type=int, default=8)
    ap.add_argument("--points", type=int, default=1000, help="datapoints per request")
    ap.add_argument("--seconds", type=float, default=30.0)
    ap.add_argument("--mode", choices=["both", "steady", "crash"], default="both")
    ap.add_argument("--flush-ms", type=int, default=50, help="the receiver's group-commit window")
    ap.add_argument("--workers", type=int, default=1, help="receiver processes (cms ingest serve --workers)")
    args = ap.parse_args(argv)
    print(f"cpu cores: {os.cpu_count()}, load average before: {os.getloadavg()[0]:.1f}")
    modes = ["steady", "crash"] if args.mode == "both" else [args.mode]
    ok = all([run_mode(m, args.clients, args.points, args.seconds, args.flush_ms, args.workers) for m in modes])
    print("zero acknowledged points lost" if ok else "ACKNOWLEDGED POINTS WERE LOST")
    return 0 if ok else 1


if __name__ == "__main__":
    sys.exit(main())
