"""Run the receiver with uvicorn: in the foreground (``cms ingest serve``) or in a background thread."""

from __future__ import annotations

import dataclasses
import json
import logging
import os
import socket
import threading
import time
from dataclasses import dataclass
from typing import Any

import uvicorn
from starlette.applications import Starlette

from cms_dagster.ingest.app import IngestConfig, create_app

log = logging.getLogger("cms.ingest")
# how `serve(workers=N)` hands the configuration to uvicorn's worker processes (internal, not a setting)
_WORKER_CONFIG_ENV = "_CMS_INGEST_WORKER_CONFIG"


def uvicorn_config(config: IngestConfig, host: str, port: int, *, access_log: bool = False, log_level: str = "info") -> uvicorn.Config:
    return uvicorn.Config(
        create_app(config),
        host=host,
        port=port,
        access_log=access_log,
        log_level=log_level,
        lifespan="on",
        timeout_graceful_shutdown=30,
        server_header=False,
    )


def serve(config: IngestConfig, host: str = "127.0.0.1", port: int = 4318, workers: int = 1, **kw: Any) -> None:
    """Serve until SIGINT/SIGTERM; pending batches are flushed before exit. ``workers`` > 1 runs that many
    receiver processes on the one port (each with its own instance id, like separate receivers)."""
    if workers <= 1:
        uvicorn.Server(uvicorn_config(config, host, port, **kw)).run()
        return
    os.environ[_WORKER_CONFIG_ENV] = json.dumps(dataclasses.asdict(config))
    uvicorn.run(
        "cms_dagster.ingest.server:worker_app",
        factory=True,
        host=host,
        port=port,
        workers=workers,
        access_log=kw.get("access_log", False),
        log_level=kw.get("log_level", "info"),
        lifespan="on",
        timeout_graceful_shutdown=30,
        server_header=False,
    )


def worker_app() -> Starlette:
    """The app of one uvicorn worker process started by :func:`serve` with ``workers`` > 1."""
    raw = os.environ.get(_WORKER_CONFIG_ENV)
    if not raw:
        raise RuntimeError("worker_app is started by `cms ingest serve --workers N`, not directly")
    return create_app(IngestConfig(**json.loads(raw)))


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
