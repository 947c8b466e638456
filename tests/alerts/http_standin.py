"""A local HTTP server that records JSON posts and answers as told: stands in for Slack's Web API, a
webhook receiver and PagerDuty's Events API v2 (each speaks its real request/response shape)."""

from __future__ import annotations

import json
import threading
import urllib.parse
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from typing import Any


class HttpStandIn:
    def __init__(self, kind: str, fail: int = 0) -> None:
        self.kind = kind  # "slack" | "webhook" | "pagerduty"
        self.fail = fail  # answer this many requests with HTTP 500 first
        self.received: list[dict[str, Any]] = []
        self._server = ThreadingHTTPServer(("127.0.0.1", 0), self._handler())
        self._thread = threading.Thread(target=self._server.serve_forever, daemon=True)

    @property
    def url(self) -> str:
        host, port = self._server.server_address[:2]
        return f"http://{host}:{port}"

    def __enter__(self) -> HttpStandIn:
        self._thread.start()
        return self

    def __exit__(self, *exc: object) -> None:
        self._server.shutdown()
        self._server.server_close()

    def _handler(self):
        standin = self

        class Handler(BaseHTTPRequestHandler):
            def log_message(self, *args: object) -> None:
                pass

            def _answer(self, status: int, body: dict[str, Any]) -> None:
                raw = json.dumps(body).encode()
                self.send_response(status)
                self.send_header("content-type", "application/json")
                self.send_header("content-length", str(len(raw)))
                self.end_headers()
                self.wfile.write(raw)

            def do_POST(self) -> None:  # noqa: N802
                raw = self.rfile.read(int(self.headers.get("content-length") or 0))
                ctype = self.headers.get("content-type", "")
                if "json" in ctype:
                    body = json.loads(raw or b"{}")
                else:
                    body = {k: v[0] for k, v in urllib.parse.parse_qs(raw.decode()).items()}
                if standin.fail > 0:
                    standin.fail -= 1
                    return self._answer(500, {"error": "stand-in failure"})
                standin.received.append({"path": self.path, "headers": dict(self.headers), "body": body})
                if standin.kind == "slack":
                    if self.path != "/api/chat.postMessage":
                        return self._answer(404, {"ok": False, "error": "unknown_method"})
                    if self.headers.get("authorization") != "Bearer xoxb-test":
                        return self._answer(200, {"ok": False, "error": "invalid_auth"})
                    return self._answer(200, {"ok": True, "channel": body.get("channel"), "ts": "1700000000.000100"})
                if standin.kind == "pagerduty":
                    if self.path.rstrip("/") != "/v2/enqueue" or "routing_key" not in body or "event_action" not in body:
                        return self._answer(400, {"status": "invalid event", "message": "Event object is invalid"})
                    return self._answer(202, {"status": "success", "message": "Event processed", "dedup_key": body.get("dedup_key")})
                return self._answer(200, {"ok": True})

        return Handler
