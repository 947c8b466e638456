"""Run the receiver with uvicorn: in the foreground (``cms ingest serve``) or in a background thread."""

from __future__ import annotations

import asyncio
import dataclasses
import json
import logging
import os
import shutil
import socket
import tempfile
import threading
import time
from dataclasses import dataclass
from typing import Any

import h11
import uvicorn
from starlette.applications import Starlette
from uvicorn.protocols.http.h11_impl import H11Protocol

from cms_dagster.ingest.app import IngestConfig, create_app

log = logging.getLogger("cms.ingest")
# names the private file through which `serve(workers=N)` hands its configuration to uvicorn's worker
# processes (internal, not a setting): the keys are in the file, never in the environment
_WORKER_CONFIG_ENV = "_CMS_INGEST_WORKER_CONFIG"


class GuardedH11Protocol(H11Protocol):
    """uvicorn's h11 protocol with the connection limits of :class:`IngestConfig` (docs/security.md):

    - headers must be complete within ``header_timeout_s`` of a request's first byte (or of the
      connection opening): a half-sent or never-sent request does not hold a connection;
    - a body must keep arriving: ``idle_timeout_s`` without a byte while the body is read closes it;
    - at most ``max_connections`` connections: past it, the connection that has waited longest for its
      request headers is closed to make room (or, if every connection is busy, the new one is refused).

    The header size limit is h11's ``max_incomplete_event_size`` (uvicorn's
    ``h11_max_incomplete_event_size``), answered 400 and closed as soon as it is exceeded.
    """

    header_timeout_s: float = 10.0
    idle_timeout_s: float = 30.0
    max_connections: int = 1000

    def connection_made(self, transport: asyncio.Transport) -> None:  # type: ignore[override]
        self._header_timer: asyncio.TimerHandle | None = None
        self._idle_timer: asyncio.TimerHandle | None = None
        self._waiting_since = time.monotonic()
        super().connection_made(transport)
        if len(self.connections) > self.max_connections and not self._make_room():
            log.warning("connection limit of %d reached: refusing a new connection", self.max_connections)
            transport.close()
            return
        self._arm_header_timer()

    def _make_room(self) -> bool:
        waiting = [
            c for c in self.connections
            if c is not self and isinstance(c, GuardedH11Protocol) and c.conn.their_state is h11.IDLE
            and (c.cycle is None or c.cycle.response_complete)
        ]
        if not waiting:
            return False
        oldest = min(waiting, key=lambda c: c._waiting_since)
        oldest._close("connection limit reached: closed the connection that waited longest for a request")
        return True

    def connection_lost(self, exc: Exception | None) -> None:
        self._cancel_timers()
        super().connection_lost(exc)

    def data_received(self, data: bytes) -> None:
        super().data_received(data)
        if self.transport.is_closing():
            self._cancel_timers()
            return
        state = self.conn.their_state
        if state is h11.IDLE:
            if self._header_timer is None:
                self._waiting_since = time.monotonic()
                self._arm_header_timer()
        elif self._header_timer is not None:
            self._header_timer.cancel()
            self._header_timer = None
        if self._idle_timer is not None:
            self._idle_timer.cancel()
            self._idle_timer = None
        if state is h11.SEND_BODY:
            self._idle_timer = self.loop.call_later(self.idle_timeout_s, self._close, "request body stalled")

    def on_response_complete(self) -> None:
        super().on_response_complete()
        self._waiting_since = time.monotonic()

    def _arm_header_timer(self) -> None:
        self._header_timer = self.loop.call_later(self.header_timeout_s, self._close, "request headers not received in time")

    def _cancel_timers(self) -> None:
        for t in (self._header_timer, self._idle_timer):
            if t is not None:
                t.cancel()
        self._header_timer = self._idle_timer = None

    def _close(self, why: str) -> None:
        self._cancel_timers()
        if not self.transport.is_closing():
            log.debug("closing a connection: %s", why)
            self.transport.close()


def guarded_protocol(config: IngestConfig) -> type[GuardedH11Protocol]:
    """A protocol class with ``config``'s connection limits (one per server in this process)."""
    cls = type("CmsIngestH11Protocol", (GuardedH11Protocol,), {})
    _set_limits(cls, config)
    return cls


def _set_limits(cls: type[GuardedH11Protocol], config: IngestConfig) -> None:
    cls.header_timeout_s = config.header_timeout_s
    cls.idle_timeout_s = config.idle_timeout_s
    cls.max_connections = config.max_connections


def _limits(config: IngestConfig, *, for_workers: bool = False) -> dict[str, Any]:
    """uvicorn settings shared by one and many workers. Worker processes get the importable
    :class:`GuardedH11Protocol` (a class made here could not be sent to them) and set its limits
    themselves in :func:`worker_app`."""
    return {
        "http": GuardedH11Protocol if for_workers else guarded_protocol(config),
        "h11_max_incomplete_event_size": config.max_header_bytes,
        "timeout_keep_alive": int(max(1, config.keep_alive_s)),
        "lifespan": "on",
        "timeout_graceful_shutdown": 30,
        "server_header": False,
    }


def uvicorn_config(config: IngestConfig, host: str, port: int, *, access_log: bool = False, log_level: str = "info") -> uvicorn.Config:
    return uvicorn.Config(create_app(config), host=host, port=port, access_log=access_log, log_level=log_level, **_limits(config))


def serve(config: IngestConfig, host: str = "127.0.0.1", port: int = 4318, workers: int = 1, **kw: Any) -> None:
    """Serve until SIGINT/SIGTERM; pending batches are flushed before exit. ``workers`` > 1 runs that many
    receiver processes on the one port (each with its own instance id, like separate receivers)."""
    if workers <= 1:
        uvicorn.Server(uvicorn_config(config, host, port, **kw)).run()
        return
    # The workers read the configuration from a file only this user can read, named in their
    # environment; the keys themselves never enter any process's environment (/proc/<pid>/environ).
    private = tempfile.mkdtemp(prefix="cms-ingest-")  # mode 0700
    path = os.path.join(private, "config.json")
    fd = os.open(path, os.O_WRONLY | os.O_CREAT | os.O_EXCL, 0o600)
    with os.fdopen(fd, "w") as f:
        json.dump(dataclasses.asdict(config), f)
    os.environ[_WORKER_CONFIG_ENV] = path
    try:
        uvicorn.run(
            "cms_dagster.ingest.server:worker_app",
            factory=True,
            host=host,
            port=port,
            workers=workers,
            access_log=kw.get("access_log", False),
            log_level=kw.get("log_level", "info"),
            **_limits(config, for_workers=True),
        )
    finally:
        os.environ.pop(_WORKER_CONFIG_ENV, None)
        shutil.rmtree(private, ignore_errors=True)


def worker_app() -> Starlette:
    """The app of one uvicorn worker process started by :func:`serve` with ``workers`` > 1."""
    path = os.environ.get(_WORKER_CONFIG_ENV)
    if not path or not os.path.isfile(path):
        raise RuntimeError("worker_app is started by `cms ingest serve --workers N`, not directly")
    with open(path) as f:
        raw = json.load(f)
    raw["services"] = {t: tuple(g) for t, g in (raw.get("services") or {}).items()}
    config = IngestConfig(**raw)
    _set_limits(GuardedH11Protocol, config)  # this process's connections (see _limits)
    return create_app(config)


@dataclass
class BackgroundServer:
    """A receiver running in a daemon thread of this process; ``stop()`` drains and stops it."""

    server: uvicorn.Server
    thread: threading.Thread
    host: str
    port: int

    @property
    def url(self) -> str:
        return f"http://{self.host}:{self.port}"

    @property
    def app(self) -> Any:
        return self.server.config.app

    def stop(self, timeout: float = 30.0) -> None:
        self.server.should_exit = True
        self.thread.join(timeout)
        if self.thread.is_alive():
            raise RuntimeError(f"ingest receiver on {self.url} did not stop within {timeout} s")


def serve_in_background(
    config: IngestConfig, host: str = "127.0.0.1", port: int = 0, *, start_timeout: float = 15.0, log_level: str = "warning"
) -> BackgroundServer:
    """Start a receiver on ``host:port`` (0 = a free port) in a thread; returns once it accepts requests."""
    sock = socket.socket(socket.AF_INET, socket.SOCK_STREAM)
    sock.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
    sock.bind((host, port))
    bound_port = sock.getsockname()[1]
    server = uvicorn.Server(uvicorn_config(config, host, bound_port, log_level=log_level))
    errors: list[BaseException] = []

    def run() -> None:
        try:
            server.run(sockets=[sock])
        except BaseException as e:  # surfaced by the start wait below
            errors.append(e)
        finally:
            sock.close()

    t = threading.Thread(target=run, name=f"cms-ingest-{bound_port}", daemon=True)
    t.start()
    deadline = time.monotonic() + start_timeout
    while not server.started:
        if errors or not t.is_alive():
            raise RuntimeError(f"ingest receiver failed to start: {errors[0] if errors else 'exited'}")
        if time.monotonic() > deadline:
            server.should_exit = True
            raise RuntimeError(f"ingest receiver did not start within {start_timeout} s")
        time.sleep(0.01)
    return BackgroundServer(server, t, host, bound_port)
