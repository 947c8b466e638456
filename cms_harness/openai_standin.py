"""A local stand-in for the OpenAI Chat Completions API, for tests and benchmarks (no account, no internet).

It speaks the real protocol over HTTP on 127.0.0.1: ``POST /v1/chat/completions`` with a bearer key, the
request checked as OpenAI checks it (model, messages, ``response_format`` of type ``json_schema``), and an
answer in the API's shape (``choices[0].message.content``, ``finish_reason``, ``usage``). What it answers
is up to the caller: ``answer(request) -> dict`` builds the JSON content, and ``script`` queues one-off
behaviours served in order before that (an HTTP error, a delay past the client's timeout, raw content, a
refusal, a cut answer). Every request it received is kept in ``requests``.

    with OpenAiStandIn(answer=lambda req: {"summary": "..."}) as api:
        client = openai.OpenAI(api_key="test", base_url=api.base_url)
"""

from __future__ import annotations

import json
import threading
import time
from collections.abc import Callable
from dataclasses import dataclass
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from typing import Any

__all__ = ["OpenAiStandIn", "Step"]


@dataclass(frozen=True)
class Step:
    """One scripted behaviour: ``status`` (with an error ``message``), ``delay`` seconds before answering,
    ``content`` sent as is, ``refusal`` text, or ``finish_reason`` (e.g. "length")."""

    status: int = 200
    message: str = ""
    delay: float = 0.0
    content: str | None = None
    refusal: str | None = None
    finish_reason: str = "stop"


class OpenAiStandIn:
    def __init__(
        self,
        answer: Callable[[dict[str, Any]], dict[str, Any]] | None = None,
        *,
        api_key: str = "test-key",
        script: list[Step] | None = None,
    ) -> None:
        self.answer = answer or (lambda request: {})
        self.api_key = api_key
        self.script: list[Step] = list(script or [])
        self.requests: list[dict[str, Any]] = []
        self._lock = threading.Lock()
        self._server = ThreadingHTTPServer(("127.0.0.1", 0), self._handler())
        self._server.daemon_threads = True
        self._thread = threading.Thread(target=self._server.serve_forever, daemon=True)

    @property
    def base_url(self) -> str:
        host, port = self._server.server_address[:2]
        return f"http://{host}:{port}/v1"

    def start(self) -> OpenAiStandIn:
        self._thread.start()
        return self

    def stop(self) -> None:
        self._server.shutdown()
        self._server.server_close()

    def __enter__(self) -> OpenAiStandIn:
        return self.start()

    def __exit__(self, *exc: object) -> None:
        self.stop()

    def _next_step(self) -> Step | None:
        with self._lock:
            return self.script.pop(0) if self.script else None

    def _handler(self) -> type[BaseHTTPRequestHandler]:
        standin = self

        class Handler(BaseHTTPRequestHandler):
            def log_message(self, *args: object) -> None:  # keep test output clean
                pass

            def _send(self, status: int, body: dict[str, Any]) -> None:
                raw = json.dumps(body).encode()
                try:
                    self.send_response(status)
                    self.send_header("content-type", "application/json")
                    self.send_header("content-length", str(len(raw)))
                    self.end_headers()
                    self.wfile.write(raw)
                except (BrokenPipeError, ConnectionResetError):  # the client gave up (its timeout)
                    pass

            def _error(self, status: int, message: str, kind: str = "invalid_request_error") -> None:
                self._send(status, {"error": {"message": message, "type": kind, "param": None, "code": None}})

            def do_POST(self) -> None:  # noqa: N802 (http.server's name)
                length = int(self.headers.get("content-length") or 0)
                raw = self.rfile.read(length)
                if self.path.rstrip("/") != "/v1/chat/completions":
                    return self._error(404, f"Invalid URL (POST {self.path})")
                if self.headers.get("authorization") != f"Bearer {standin.api_key}":
                    return self._error(401, "Incorrect API key provided.", "invalid_api_key")
                try:
                    request = json.loads(raw)
                except ValueError:
                    return self._error(400, "We could not parse the JSON body of your request.")
                with standin._lock:
                    standin.requests.append(request)
                if not request.get("model") or not isinstance(request.get("messages"), list):
                    return self._error(400, "you must provide a model parameter and messages")
                fmt = request.get("response_format") or {}
                if fmt.get("type") == "json_schema" and not (fmt.get("json_schema") or {}).get("schema"):
                    return self._error(400, "response_format.json_schema.schema is required")
                step = standin._next_step() or Step()
                if step.delay:
                    time.sleep(step.delay)
                if step.status != 200:
                    kind = "server_error" if step.status >= 500 else "invalid_request_error"
                    return self._error(step.status, step.message or f"stand-in error {step.status}", kind)
                if step.refusal is not None:
                    content, refusal = None, step.refusal
                elif step.content is not None:
                    content, refusal = step.content, None
                else:
                    content, refusal = json.dumps(standin.answer(request)), None
                prompt = sum(len(str(m.get("content", ""))) for m in request["messages"]) // 4 + 1
                completion = len(content or refusal or "") // 4 + 1
                self._send(
                    200,
                    {
                        "id": f"chatcmpl-standin-{len(standin.requests)}",
                        "object": "chat.completion",
                        "created": int(time.time()),
                        "model": request["model"],
                        "choices": [
                            {
                                "index": 0,
                                "message": {"role": "assistant", "content": content, "refusal": refusal},
                                "finish_reason": step.finish_reason,
                                "logprobs": None,
                            }
                        ],
                        "usage": {
                            "prompt_tokens": prompt,
                            "completion_tokens": completion,
                            "total_tokens": prompt + completion,
                        },
                    },
                )

        return Handler
