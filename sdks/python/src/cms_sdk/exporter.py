"""Background export: a bounded queue, a daemon worker thread, retries with backoff, the spool.

The caller's thread only appends point tuples to a deque (never blocks; a full queue drops and counts).
The worker encodes and POSTs OTLP/JSON every ``export_interval_ms`` or as soon as ``max_batch_size``
points wait. Retryable answers (429, 5xx, connection errors, timeouts) are retried with exponential
backoff and jitter, honouring ``Retry-After``; other 4xx are not retried. What cannot be delivered is
spooled to disk and replayed, oldest first, once the endpoint answers again.
"""

from __future__ import annotations

import collections
import email.utils
import gzip
import http.client
import json
import logging
import os
import random
import ssl
import threading
import time
import weakref
from dataclasses import dataclass, field
from typing import Any, Callable, Deque, Dict, List, Optional, Sequence
from urllib.parse import urlsplit

from cms_sdk._version import __version__
from cms_sdk.config import Config
from cms_sdk.otlp import Point, count_points, dumps, encode_request
from cms_sdk.spool import Spool

log = logging.getLogger("cms_sdk")

RETRYABLE = frozenset({429, 502, 503, 504})
SELF_METRICS_INTERVAL_S = 10.0
RESCAN_SPOOL_S = 30.0


@dataclass
class Response:
    status: Optional[int]  # None: no answer (connection error, timeout)
    headers: Dict[str, str] = field(default_factory=dict)
    body: bytes = b""
    error: str = ""


class HttpTransport:
    """POSTs bodies to the metrics URL over one kept-alive ``http.client`` connection (stdlib only)."""

    def __init__(self, url: str, headers: Dict[str, str], timeout_s: float, compression: str = "none") -> None:
        u = urlsplit(url)
        if u.scheme not in ("http", "https") or not u.hostname:
            raise ValueError(f"endpoint {url!r} is not an http(s) URL")
        self.url = url
        self._https = u.scheme == "https"
        self._host = u.hostname
        self._port = u.port or (443 if self._https else 80)
        self._path = (u.path or "/") + (f"?{u.query}" if u.query else "")
        self._timeout = timeout_s
        self._gzip = compression == "gzip"
        self._headers = {"Content-Type": "application/json", "User-Agent": f"cms-sdk-python/{__version__}", **headers}
        if self._gzip:
            self._headers["Content-Encoding"] = "gzip"
        self._conn: Optional[http.client.HTTPConnection] = None

    def _connect(self) -> http.client.HTTPConnection:
        if self._https:
            return http.client.HTTPSConnection(self._host, self._port, timeout=self._timeout, context=ssl.create_default_context())
        return http.client.HTTPConnection(self._host, self._port, timeout=self._timeout)

    def reset(self) -> None:
        if self._conn is not None:
            try:
                self._conn.close()
            except Exception:
                pass
        self._conn = None

    def post(self, body: bytes) -> Response:
        data = gzip.compress(body, compresslevel=5) if self._gzip else body
        for attempt in (0, 1):
            reused = self._conn is not None
            conn = self._conn or self._connect()
            self._conn = conn
            try:
                conn.request("POST", self._path, body=data, headers=self._headers)
                r = conn.getresponse()
                payload = r.read()
                headers = {k.lower(): v for k, v in r.getheaders()}
                if r.will_close:
                    self.reset()
                return Response(r.status, headers, payload)
            except (http.client.RemoteDisconnected, ConnectionResetError, BrokenPipeError) as e:
                self.reset()
                if reused and attempt == 0:  # a kept-alive connection the server had closed: one fresh try
                    continue
                return Response(None, error=f"{type(e).__name__}: {e}")
            except (OSError, http.client.HTTPException) as e:
                self.reset()
                return Response(None, error=f"{type(e).__name__}: {e}" if str(e) else type(e).__name__)
        return Response(None, error="connection closed")


def retry_after_s(headers: Dict[str, str], now: Optional[float] = None) -> Optional[float]:
    """``Retry-After`` as seconds (delta-seconds or an HTTP date), or None."""
    v = (headers.get("retry-after") or "").strip()
    if not v:
        return None
    try:
        return max(0.0, float(v))
    except ValueError:
        pass
    try:
        when = email.utils.parsedate_to_datetime(v)
    except (TypeError, ValueError):
        return None
    if when is None:
        return None
    return max(0.0, when.timestamp() - (time.time() if now is None else now))


class _RateLimitedLog:
    def __init__(self, every_s: float = 10.0) -> None:
        self.every = every_s
        self.last: Dict[str, float] = {}

    def warning(self, kind: str, msg: str, *args: Any) -> None:
        now = time.monotonic()
        if now - self.last.get(kind, -1e9) >= self.every:
            self.last[kind] = now
            log.warning(msg, *args)


class Exporter:
    """Owns the queue and the worker thread; see the module docstring."""

    def __init__(
        self,
        config: Config,
        resource: List[Dict[str, Any]],
        transport: Any,
        clock: Callable[[], int],
        start: bool = True,
    ) -> None:
        self.config = config
        self.resource = resource
        self.transport = transport
        self.clock = clock
        self.queue: Deque[Point] = collections.deque()
        self.capacity = config.max_queue_size
        self.batch = config.max_batch_size
        self.spool = Spool(config.spool_path, config.spool_max_bytes) if config.spool_path else None
        self._rl = _RateLimitedLog()
        self._rand = random.Random()
        # counters
        self.enqueued = 0
        self.dropped = 0
        self.exported_points = 0
        self.export_requests = 0
        self.failed_requests = 0
        self.retries = 0
        self.rejected = 0
        self.spooled_files = 0
        self.spooled_points = 0
        self.replayed_files = 0
        self.spool_pending = 0
        self.internal_errors = 0
        self.last_error = ""
        self._lat_ms: Deque[float] = collections.deque(maxlen=1024)
        self._lat_total = 0.0
        self._lat_count = 0
        self._lat_max = 0.0
        # worker state
        self._down = False
        self._probe_n = 0
        self._next_probe = 0.0
        self._closing = False
        self._wake = threading.Event()
        self._stop = threading.Event()
        self._waiters: List[threading.Event] = []
        self._waiters_lock = threading.Lock()
        self._thread: Optional[threading.Thread] = None
        self._forked = False
        # how the worker waits between retries; returns True when interrupted by close() (tests swap it)
        self.sleep: Callable[[float], bool] = lambda s: self._stop.wait(s)
        self.self_metrics_source: Optional[Callable[[], Dict[str, float]]] = None
        if self.spool is not None:
            self.spool_pending = len(self.spool.files())
        if start:
            self.start()
            _register_fork_handler(self)

    # -- caller side (must stay cheap and never raise) -------------------------------------------
    def enqueue(self, points: Sequence[Point]) -> None:
        if self._forked:
            self._after_fork()
        q = self.queue
        n = len(points)
        room = self.capacity - len(q)
        if room < n:
            if room <= 0:
                self.dropped += n
                return
            self.dropped += n - room
            points = points[:room]
            n = room
        q.extend(points)
        self.enqueued += n
        if len(q) >= self.batch and not self._wake.is_set():
            self._wake.set()

    # -- lifecycle ---------------------------------------------------------------------------------
    @property
    def running(self) -> bool:
        return self._thread is not None and self._thread.is_alive()

    def start(self) -> None:
        if self.running:
            return
        self._stop.clear()
        self._closing = False
        self._thread = threading.Thread(target=self._run, name="cms-sdk-exporter", daemon=True)
        self._thread.start()

    def flush(self, timeout: float = 5.0) -> bool:
        """Export everything queued now; True when done within ``timeout`` seconds."""
        if not self.running:
            self._export_queue(full_only=False)
            return not self.queue
        ev = threading.Event()
        with self._waiters_lock:
            self._waiters.append(ev)
        self._wake.set()
        return ev.wait(timeout)

    def close(self, timeout: float = 5.0) -> None:
        """Flush, stop the worker, and spool whatever could not be delivered."""
        self._closing = True
        if self.running:
            self._stop.set()
            self._wake.set()
            assert self._thread is not None
            self._thread.join(timeout)
        if self.queue and not self.running:
            self._export_queue(full_only=False)
        if self.queue:  # the worker is stuck on the network: keep the rest on disk
            points = []
            while self.queue:
                try:
                    points.append(self.queue.popleft())
                except IndexError:
                    break
            if points:
                self._to_spool(dumps(encode_request(self.resource, points)), len(points))

    def _after_fork(self) -> None:
        """In a forked child: forget the parent's queue and connection, run a worker of our own."""
        self._forked = False
        self.queue.clear()
        self._wake = threading.Event()
        self._stop = threading.Event()
        self._waiters = []
        self._waiters_lock = threading.Lock()
        reset = getattr(self.transport, "reset", None)
        if reset:
            reset()
        if self._thread is not None:
            self._thread = None
            self.start()

    # -- worker ------------------------------------------------------------------------------------
    def _run(self) -> None:
        interval = self.config.export_interval_ms / 1000.0
        next_tick = time.monotonic() + interval
        next_self = time.monotonic() + SELF_METRICS_INTERVAL_S
        next_rescan = time.monotonic() + RESCAN_SPOOL_S
        while True:
            now = time.monotonic()
            timeout = max(0.0, next_tick - now)
            if self._down:
                timeout = min(timeout, max(0.0, self._next_probe - now))
            self._wake.wait(timeout)
            self._wake.clear()
            closing = self._stop.is_set()
            with self._waiters_lock:
                waiters, self._waiters = self._waiters, []
            now = time.monotonic()
            tick = now >= next_tick
            if tick:
                next_tick = now + interval
            try:
                if self.config.self_metrics and now >= next_self:
                    next_self = now + SELF_METRICS_INTERVAL_S
                    self._emit_self_metrics()
                if self.spool is not None:
                    if now >= next_rescan:
                        next_rescan = now + RESCAN_SPOOL_S
                        self.spool_pending = len(self.spool.files())
                    if self._down and now >= self._next_probe and not closing:
                        self._replay()  # probe with the oldest spooled request first
                    elif not self._down and tick and self.spool_pending:
                        self._replay()
                if tick or waiters or closing or len(self.queue) >= self.batch:
                    self._export_queue(full_only=not (tick or waiters or closing))
            except Exception as e:  # never let the worker die
                self._internal_error(e)
            for w in waiters:
                w.set()
            if closing:
                return

    def _internal_error(self, e: BaseException) -> None:
        self.internal_errors += 1
        self.last_error = f"{type(e).__name__}: {e}"
        log.exception("cms-sdk internal error (counted, not raised): %s", e)

    def _emit_self_metrics(self) -> None:
        src = self.self_metrics_source
        extra = src() if src else {}
        t = self.clock()
        values = {
            ("cms.app.sdk.queue_size", "{point}"): float(len(self.queue)),
            ("cms.app.sdk.dropped", "{point}"): float(self.dropped),
            ("cms.app.sdk.export_latency", "ms"): float(self._lat_ms[-1]) if self._lat_ms else 0.0,
            ("cms.app.sdk.call_overhead", "us"): float(extra.get("avg_call_overhead_us", 0.0)),
        }
        self.enqueue([Point(n, u, "gauge", (), t, None, v, True) for (n, u), v in values.items()])

    def _export_queue(self, full_only: bool) -> None:
        q = self.queue
        while q:
            if full_only and len(q) < self.batch:
                return
            points: List[Point] = []
            try:
                for _ in range(self.batch):
                    points.append(q.popleft())
            except IndexError:
                pass
            if points:
                self._export(points)

    def _export(self, points: List[Point]) -> None:
        try:
            body = dumps(encode_request(self.resource, points))
        except (TypeError, ValueError) as e:
            self._internal_error(e)
            self.dropped += len(points)
            return
        if self._down:
            self._to_spool(body, len(points))
            return
        self._deliver(body, points)

    def _post(self, body: bytes) -> Response:
        t0 = time.perf_counter()
        r = self.transport.post(body)
        ms = (time.perf_counter() - t0) * 1000.0
        self.export_requests += 1
        self._lat_ms.append(ms)
        self._lat_total += ms
        self._lat_count += 1
        if ms > self._lat_max:
            self._lat_max = ms
        return r

    def _backoff(self, n: int) -> float:
        c = self.config
        base = min(c.max_backoff_ms, c.initial_backoff_ms * (2 ** min(n, 30))) / 1000.0
        return base * self._rand.uniform(0.5, 1.0)

    def _deliver(self, body: bytes, points: List[Point]) -> None:
        n = len(points)
        attempt = 0
        wait = 0.0
        while True:
            r = self._post(body)
            s = r.status
            if s is not None and 200 <= s < 300:
                self.exported_points += n
                self._partial(r)
                if self.spool_pending and not self._closing:
                    self._replay()
                return
            self.failed_requests += 1
            if s == 413:
                if n > 1:
                    half = n // 2
                    self._export(points[:half])
                    self._export(points[half:])
                else:
                    self.rejected += 1
                    self._rl.warning("413", "cms-sdk: a single point is larger than the endpoint accepts (413); dropped")
                return
            if s is not None and s < 500 and s not in RETRYABLE:
                self.rejected += n
                self.last_error = f"HTTP {s}: {r.body[:200]!r}"
                hint = " (check OTEL_EXPORTER_OTLP_HEADERS: the API key)" if s in (401, 403) else ""
                self._rl.warning(f"http{s}", "cms-sdk: endpoint refused %d point(s) with HTTP %d%s: %s", n, s, hint, r.body[:500])
                return
            self.last_error = f"HTTP {s}" if s is not None else r.error
            ra = retry_after_s(r.headers)
            if attempt >= self.config.max_retries or self._closing:
                wait = ra if ra is not None else self._backoff(0)
                break
            wait = ra if ra is not None else self._backoff(attempt)
            if wait > self.config.max_backoff_ms / 1000.0:
                break
            if self.sleep(wait):  # shutting down: spool instead of waiting
                break
            attempt += 1
            self.retries += 1
        self._rl.warning("down", "cms-sdk: endpoint %s unavailable (%s); spooling", getattr(self.transport, "url", ""), self.last_error)
        self._to_spool(body, n)
        if self.spool is not None:
            self._down = True
            self._probe_n = 0
            self._next_probe = time.monotonic() + min(wait, self.config.max_backoff_ms / 1000.0)

    def _partial(self, r: Response) -> None:
        if not r.body or not r.body.lstrip().startswith(b"{"):
            return
        try:
            ps = json.loads(r.body).get("partialSuccess") or {}
            rejected = int(ps.get("rejectedDataPoints") or 0)
        except (ValueError, AttributeError, TypeError):
            return
        if rejected > 0:
            self.rejected += rejected
            self._rl.warning("partial", "cms-sdk: endpoint rejected %d point(s): %s", rejected, ps.get("errorMessage", ""))

    def _to_spool(self, body: bytes, npoints: int) -> None:
        if self.spool is None:
            self.dropped += npoints
            return
        try:
            path = self.spool.write(body)
        except OSError as e:
            self._internal_error(e)
            path = None
        if path is None:
            self.dropped += npoints
            self._rl.warning("spoolfull", "cms-sdk: spool %s is full or unwritable; %d point(s) dropped", self.spool.dir, npoints)
            return
        self.spooled_files += 1
        self.spooled_points += npoints
        self.spool_pending += 1

    def _replay(self) -> None:
        """Send spooled files oldest first until one fails; leaves *down* mode on the first success."""
        assert self.spool is not None
        files = self.spool.files()
        self.spool_pending = len(files)
        if not files:
            self._down = False
            return
        for path in files:
            body = self.spool.read(path)
            if body is None:
                self.spool_pending = max(0, self.spool_pending - 1)
                continue
            r = self._post(body)
            s = r.status
            if s is not None and 200 <= s < 300:
                self.spool.done(path)
                self.replayed_files += 1
                self.spool_pending = max(0, self.spool_pending - 1)
                self._down = False
                self._probe_n = 0
                self._partial(r)
                try:
                    self.exported_points += count_points(json.loads(body))
                except ValueError:
                    pass
                continue
            self.failed_requests += 1
            if s is not None and s < 500 and s not in RETRYABLE:
                self.spool.reject(path)
                self.spool_pending = max(0, self.spool_pending - 1)
                self.last_error = f"HTTP {s} on a spooled request (moved aside as {path.name}.rejected)"
                continue
            self.last_error = f"HTTP {s}" if s is not None else r.error
            ra = retry_after_s(r.headers)
            self._down = True
            self._probe_n += 1
            self._next_probe = time.monotonic() + (ra if ra is not None else self._backoff(self._probe_n))
            return

    # -- figures -----------------------------------------------------------------------------------
    def stats(self) -> Dict[str, Any]:
        lat = sorted(self._lat_ms)
        return {
            "queue_size": len(self.queue),
            "queue_capacity": self.capacity,
            "enqueued": self.enqueued,
            "dropped": self.dropped,
            "exported_points": self.exported_points,
            "export_requests": self.export_requests,
            "failed_requests": self.failed_requests,
            "retries": self.retries,
            "rejected": self.rejected,
            "spooled_files": self.spooled_files,
            "spooled_points": self.spooled_points,
            "replayed_files": self.replayed_files,
            "spool_pending": self.spool_pending,
            "endpoint_down": self._down,
            "last_export_latency_ms": round(self._lat_ms[-1], 3) if self._lat_ms else 0.0,
            "avg_export_latency_ms": round(self._lat_total / self._lat_count, 3) if self._lat_count else 0.0,
            "max_export_latency_ms": round(self._lat_max, 3),
            "p50_export_latency_ms": round(lat[len(lat) // 2], 3) if lat else 0.0,
            "p99_export_latency_ms": round(lat[min(len(lat) - 1, int(len(lat) * 0.99))], 3) if lat else 0.0,
            "internal_errors": self.internal_errors,
            "last_error": self.last_error,
        }


_exporters: weakref.WeakSet[Exporter] = weakref.WeakSet()
_fork_hook_installed = False


def _register_fork_handler(exp: Exporter) -> None:
    global _fork_hook_installed
    _exporters.add(exp)
    if not _fork_hook_installed and hasattr(os, "register_at_fork"):
        os.register_at_fork(after_in_child=_mark_forked)
        _fork_hook_installed = True


def _mark_forked() -> None:
    for exp in list(_exporters):
        exp._forked = True
