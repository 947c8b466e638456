"""A scriptable stub OTLP/HTTP endpoint and a client factory for the SDK tests."""

from __future__ import annotations

import gzip
import json
import threading
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from typing import Any, Dict, List, Optional, Tuple


class StubEndpoint:
    """An OTLP/HTTP endpoint on a free loopback port that answers from a script (default: 200 ``{}``)."""

    def __init__(self, port: int = 0) -> None:
        self.script: List[Tuple[int, Dict[str, str], bytes]] = []
        self.requests: List[Dict[str, Any]] = []
        self.lock = threading.Lock()
        self.port = port
        self._server: Optional[ThreadingHTTPServer] = None
        self.start()

    @property
    def url(self) -> str:
        return f"http://127.0.0.1:{self.port}"

    def start(self) -> None:
        stub = self

        class Handler(BaseHTTPRequestHandler):
            protocol_version = "HTTP/1.1"

            def log_message(self, *args: Any) -> None:
                pass

            def do_POST(self) -> None:
                raw = self.rfile.read(int(self.headers.get("Content-Length") or 0))
                body = gzip.decompress(raw) if self.headers.get("Content-Encoding") == "gzip" else raw
                with stub.lock:
                    stub.requests.append(
                        {"path": self.path, "headers": {k.lower(): v for k, v in self.headers.items()}, "body": json.loads(body)}
                    )
                    status, headers, payload = stub.script.pop(0) if stub.script else (200, {}, b"{}")
                self.send_response(status)
                for k, v in headers.items():
                    self.send_header(k, v)
                self.send_header("Content-Type", "application/json")
                self.send_header("Content-Length", str(len(payload)))
                self.end_headers()
                self.wfile.write(payload)

        ThreadingHTTPServer.allow_reuse_address = True
        self._server = ThreadingHTTPServer(("127.0.0.1", self.port), Handler)
        self._server.daemon_threads = True
        self.port = self._server.server_address[1]
        threading.Thread(target=self._server.serve_forever, daemon=True).start()

    def stop(self) -> None:
        if self._server is not None:
            self._server.shutdown()
            self._server.server_close()
            self._server = None

    def points(self) -> List[Dict[str, Any]]:
        """Every data point received, with its metric name."""
        out = []
        with self.lock:
            for r in self.requests:
                for rm in r["body"]["resourceMetrics"]:
                    for sm in rm["scopeMetrics"]:
                        for m in sm["metrics"]:
                            kind = "sum" if "sum" in m else "gauge"
                            out += [{"metric": m["name"], **dp} for dp in m[kind]["dataPoints"]]
        return out


def make_client(endpoint_url: str, spool_dir: str = "off", **kw: Any) -> Any:
    from cms_sdk import CmsClient

    opts: Dict[str, Any] = dict(
        endpoint=endpoint_url,
        service_name="test-svc",
        environment="dev",
        environ={},
        spool_dir=spool_dir,
        export_interval_ms=50,
        initial_backoff_ms=10,
        max_backoff_ms=200,
    )
    opts.update(kw)
    return CmsClient(**opts)
