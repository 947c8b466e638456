"""The OTLP/HTTP metrics receiver as a Starlette app: ``POST /v1/metrics``, ``GET /health``, ``GET /stats``.

Each request is authenticated (bearer key per team), bounded, decoded (JSON or protobuf, optionally
gzip), checked point by point against the semantic conventions, and answered 200 only once its accepted
points are durably in the raw zone (see :mod:`cms_dagster.ingest.writer`). Rejected points are answered
with OTLP ``partialSuccess`` and quarantined with their reason. The app keeps no state beyond its
in-flight buffer, so any number of receivers can run behind a load balancer.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import os
from collections.abc import AsyncIterator
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass, field
from typing import Any

import orjson
from starlette.applications import Starlette
from starlette.requests import ClientDisconnect, Request
from starlette.responses import JSONResponse, Response
from starlette.routing import Route

from cms_dagster.ingest.auth import ApiKeys, Ownership
from cms_dagster.ingest.budget import MemoryBudget
from cms_dagster.ingest.decode import JSON, PROTOBUF, BodyError, decode_body
from cms_dagster.ingest.stats import Stats
from cms_dagster.ingest.validate import Checked, check_request
from cms_dagster.ingest.writer import Committer, LakeWriteError, new_instance_id
from cms_dagster.lake import Zone

log = logging.getLogger("cms.ingest")

METRICS_PATH = "/v1/metrics"
INLINE_DECODE_BYTES = 1 << 20  # larger bodies are decoded in a worker thread
# google.rpc.Code values used in error bodies
_RPC_CODE = {400: 3, 401: 16, 404: 5, 405: 12, 413: 8, 415: 3, 429: 8, 500: 13, 503: 14}


@dataclass(frozen=True)
class IngestConfig:
    """How one receiver runs; :func:`cms_dagster.ingest.cli` builds it from flags and settings."""

    raw_url: str
    api_keys: dict[str, str] = field(repr=False)  # {key: team}
    services: dict[str, tuple[str, ...]] = field(default_factory=dict)  # {team: service.name globs it owns}
    max_body_bytes: int = 16 << 20
    max_points: int = 50_000  # data points in one request (413 past it)
    max_inflight_bytes: int = 64 << 20  # request bodies in flight: read, inflated, waiting to decode (429 past it)
    flush_ms: int = 50
    flush_bytes: int = 8 << 20
    max_pending_bytes: int = 64 << 20
    max_pending_requests: int = 4096
    max_header_bytes: int = 16 << 10  # request line + headers (400 and close past it)
    header_timeout_s: float = 10.0  # from a request's first byte (or the connection opening) to its last header
    idle_timeout_s: float = 30.0  # silence while a request body is being received
    keep_alive_s: float = 5.0  # an idle kept-alive connection is closed after this
    max_connections: int = 1000  # open connections per receiver process
    retry_after_s: int = 1
    instance_id: str = ""
    probe_on_start: bool = True
    report_s: float = 60.0  # how often throughput, queue and rejects are logged


def _status_body(code: int, message: str, media: str) -> tuple[bytes, str]:
    """A google.rpc.Status in the request's encoding, as OTLP/HTTP asks for failures."""
    rpc = _RPC_CODE.get(code, 2)
    if media == PROTOBUF:
        msg = message.encode()
        return bytes([0x08, rpc, 0x12]) + _varint(len(msg)) + msg, PROTOBUF
    return orjson.dumps({"code": rpc, "message": message}), JSON


def _varint(n: int) -> bytes:
    out = bytearray()
    while True:
        b = n & 0x7F
        n >>= 7
        if n:
            out.append(b | 0x80)
        else:
            out.append(b)
            return bytes(out)


def _export_response(checked: Checked, media: str) -> Response:
    rejected = checked.rejected
    msg = checked.error_message() if checked.rejections else ""
    if media == PROTOBUF:
        from opentelemetry.proto.collector.metrics.v1.metrics_service_pb2 import ExportMetricsServiceResponse

        r = ExportMetricsServiceResponse()
        if checked.rejections:
            r.partial_success.rejected_data_points = rejected
            r.partial_success.error_message = msg
        return Response(r.SerializeToString(), media_type=PROTOBUF)
    body: dict[str, Any] = {}
    if checked.rejections:
        body = {"partialSuccess": {"rejectedDataPoints": str(rejected), "errorMessage": msg}}
    return Response(orjson.dumps(body), media_type=JSON)


def _media_of(request: Request) -> str:
    ct = (request.headers.get("content-type") or "").lower()
    return PROTOBUF if "protobuf" in ct else JSON


class Receiver:
    """State of one receiver process: keys, committer, stats."""

    def __init__(self, config: IngestConfig, zone: Zone | None = None) -> None:
        self.config = config
        self.keys = ApiKeys(config.api_keys)
        self.ownership = Ownership({t: tuple(g) for t, g in config.services.items()})
        self.budget = MemoryBudget(config.max_inflight_bytes)
        # big bodies are decoded one at a time off the event loop: decoded objects take ~20x the body, so
        # the receiver's memory is bounded by one request, and one thread reuses one malloc arena
        self.decoder = ThreadPoolExecutor(max_workers=1, thread_name_prefix="cms-ingest-decode")
        self.stats = Stats(config.instance_id or new_instance_id())
        self.committer = Committer(
            zone or Zone(config.raw_url),
            self.stats,
            flush_s=config.flush_ms / 1000,
            flush_bytes=config.flush_bytes,
            unhealthy_s=max(1.0, float(config.retry_after_s)),
        )

    def _fail(self, request: Request, code: int, message: str, retry_after: int | None = None) -> Response:
        self.stats.responses[code] += 1
        body, media = _status_body(code, message, _media_of(request))
        headers = {"Retry-After": str(retry_after)} if retry_after is not None else None
        if code == 401:
            headers = {"WWW-Authenticate": 'Bearer realm="cms-ingest"'}
        return Response(body, status_code=code, media_type=media, headers=headers)

    async def _read_body(self, request: Request, grow: Any) -> bytes:
        limit = self.config.max_body_bytes
        cl = request.headers.get("content-length")
        if cl is not None:
            try:
                declared = int(cl)
            except ValueError:
                raise BodyError(400, f"Content-Length {cl[:40]!r} is not a number") from None
            if declared > limit:
                raise BodyError(413, f"body of {declared} bytes exceeds the limit of {limit} bytes: send smaller batches")
        body = bytearray()  # one growing buffer: a list of chunks joined at the end holds the body twice
        async for chunk in request.stream():
            if len(body) + len(chunk) > limit:
                raise BodyError(413, f"body exceeds the limit of {limit} bytes: send smaller batches")
            grow(len(chunk))
            body += chunk
        return bytes(body) if len(body) <= INLINE_DECODE_BYTES else body  # type: ignore[return-value]

    def _decode_and_check(self, body: bytes, ctype: str, cenc: str, team: str, grow: Any) -> tuple[str, Checked, bytes | None]:
        """Decode, check and re-encode one request (in a worker thread for big bodies): the decoded
        objects do not outlive this call, only the encoded line does."""
        req, media = decode_body(body, ctype, cenc, self.config.max_body_bytes, self.config.max_points, grow)
        checked = check_request(req, team, self.ownership)
        try:
            line = orjson.dumps(checked.request) if checked.request is not None else None
        except (TypeError, orjson.JSONEncodeError) as e:  # defensive: depth was checked at decode
            raise BodyError(400, f"request cannot be stored as OTLP/JSON ({e})") from None
        checked.request = None
        return media, checked, line

    async def export(self, request: Request) -> Response:
        self.stats.requests += 1
        team = self.keys.team_for(request.headers.get("authorization"))
        if team is None:
            return self._fail(request, 401, "missing or unknown API key: send 'Authorization: Bearer <key>' with your team's key")
        c = self.committer
        if not c.healthy:
            return self._fail(
                request, 503, "the raw zone is not accepting writes right now: retry later", self.config.retry_after_s
            )
        if (
            c.pending_bytes >= self.config.max_pending_bytes
            or c.pending_requests >= self.config.max_pending_requests
        ):
            return self._fail(request, 429, "receiver is busy: retry after the indicated delay", self.config.retry_after_s)
        received = c.now()
        ctype = request.headers.get("content-type") or ""
        cenc = request.headers.get("content-encoding") or ""
        body = b""
        reservation = self.budget.reserve()
        try:
            body = await self._read_body(request, reservation.grow)
            self.stats.received_bytes += len(body)
            big = len(body) > INLINE_DECODE_BYTES or ("gzip" in cenc.lower() and len(body) > INLINE_DECODE_BYTES // 8)
            if big:  # keep the event loop responsive while a big body is decoded
                media, checked, line = await asyncio.get_running_loop().run_in_executor(
                    self.decoder, self._decode_and_check, body, ctype, cenc, team, reservation.grow
                )
            else:
                media, checked, line = self._decode_and_check(body, ctype, cenc, team, reservation.grow)
        except ClientDisconnect:
            self.stats.responses[499] += 1
            return Response(status_code=400)
        except BodyError as e:
            if e.status == 400:
                c.submit_malformed(received, e.message, body, team, ctype, cenc)
            retry = self.config.retry_after_s if e.status == 429 else None
            return self._fail(request, e.status, e.message, retry)
        finally:
            reservation.release()
            body = b""
        if line is None and not checked.rejections:  # an empty request: nothing to store
            self.stats.responses[200] += 1
            return _export_response(checked, media)
        waiter = c.submit(received, line, checked.accepted, checked.rejections, team)
        try:
            await waiter
        except LakeWriteError:
            return self._fail(
                request, 503, "the raw zone did not take the batch (nothing was stored): retry later",
                self.config.retry_after_s,
            )
        self.stats.acked(checked.accepted)
        self.stats.rejected_points += checked.rejected
        self.stats.responses[200] += 1
        return _export_response(checked, media)

    def _authenticated(self, request: Request) -> bool:
        return self.keys.team_for(request.headers.get("authorization")) is not None

    async def health(self, request: Request) -> Response:
        """Liveness for anyone (a load balancer has no key); details only with a team's key."""
        c = self.committer
        ok = c.healthy
        if ok and not c.zone.is_s3:
            root = c.zone.url
            while root and not os.path.exists(root):
                root = os.path.dirname(root)
            ok = bool(root) and os.access(root, os.W_OK)
        body: dict[str, Any] = {"status": "ok" if ok else "unhealthy"}
        if self._authenticated(request):
            body.update(
                {
                    "instance_id": self.stats.instance_id,
                    "raw_zone": c.zone.url,
                    "lake_writable": ok,
                    "last_flush_error": self.stats.last_flush_error,
                    "queue": {"requests": c.pending_requests, "bytes": c.pending_bytes},
                }
            )
        return JSONResponse(body, status_code=200 if ok else 503)

    async def stats_endpoint(self, request: Request) -> Response:
        """The receiver's figures, for a team's key only (they name the lake and its last error)."""
        if not self._authenticated(request):
            return self._fail(request, 401, "missing or unknown API key: /stats needs 'Authorization: Bearer <key>'")
        c = self.committer
        body = self.stats.as_dict(c.pending_requests, c.pending_bytes)
        body["decoding"] = {"bytes": self.budget.used, "budget": self.budget.limit, "refused": self.budget.refused}
        return Response(orjson.dumps(body, option=orjson.OPT_INDENT_2), media_type=JSON)


async def _report(receiver: Receiver, every_s: float) -> None:
    """Log throughput, queue and rejects every ``every_s`` seconds while there is traffic."""
    last = -1
    while True:
        await asyncio.sleep(every_s)
        st = receiver.stats
        if st.requests == last:
            continue
        last = st.requests
        c = receiver.committer
        fl = st.as_dict(c.pending_requests, c.pending_bytes)
        log.info(
            "ingest %s: %d requests, %.0f points/s (last 10 s), %d accepted, %d rejected, queue %d requests / %d bytes, "
            "flush p99 %s ms, %d flush errors",
            st.instance_id, st.requests, fl["accepted_points_per_s"], st.accepted_points, st.rejected_points,
            c.pending_requests, c.pending_bytes, fl["flush_latency_ms"]["p99"], st.flush_errors,
        )


def create_app(config: IngestConfig, zone: Zone | None = None) -> Starlette:
    """The receiver app for ``config`` (serve it with uvicorn; tests use it directly). ``zone`` replaces
    the raw zone built from ``config.raw_url`` (tests inject failing or slow lakes)."""
    if not config.api_keys:
        raise ValueError(
            "no ingest API keys configured: set CMS_INGEST_API_KEYS=team:key,... or CMS_INGEST_API_KEYS_FILE"
        )
    receiver = Receiver(config, zone)

    @contextlib.asynccontextmanager
    async def lifespan(app: Starlette) -> AsyncIterator[None]:
        if config.probe_on_start:
            try:
                receiver.committer.probe()
            except Exception as e:
                raise RuntimeError(f"raw zone {config.raw_url} is not writable ({e}): fix CMS_RAW_URL or its permissions") from e
        await receiver.committer.start()
        reporter = asyncio.create_task(_report(receiver, config.report_s), name="cms-ingest-report")
        log.info(
            "cms ingest %s ready: raw zone %s, %d team(s), flush every %d ms",
            receiver.stats.instance_id, config.raw_url, len(receiver.keys.teams), config.flush_ms,
        )
        undeclared = [t for t in receiver.keys.teams if t not in config.services]
        if undeclared and config.services:
            log.warning(
                "team(s) %s declare no services: they may write only services no team claims "
                "(add 'services: [...]' to their keys file entry)", ", ".join(undeclared),
            )
        try:
            yield
        finally:
            reporter.cancel()
            await receiver.committer.close()
            receiver.decoder.shutdown(wait=False)

    app = Starlette(
        routes=[
            Route(METRICS_PATH, receiver.export, methods=["POST"]),
            Route(METRICS_PATH + "/", receiver.export, methods=["POST"]),  # exporters that add a slash: no 307
            Route("/health", receiver.health, methods=["GET"]),
            Route("/stats", receiver.stats_endpoint, methods=["GET"]),
        ],
        lifespan=lifespan,
    )
    app.router.redirect_slashes = False  # a redirect would make an exporter resend (or drop) the body
    app.state.receiver = receiver
    install_access_log_filter()
    return app


class _NoQueryString(logging.Filter):
    """Drops query strings from uvicorn's access log lines (a client may put a key in ``?api_key=``)."""

    def filter(self, record: logging.LogRecord) -> bool:
        args = record.args
        if isinstance(args, tuple) and len(args) >= 3 and isinstance(args[2], str) and "?" in args[2]:
            record.args = (*args[:2], args[2].split("?", 1)[0], *args[3:])
        return True


def install_access_log_filter() -> None:
    """Install :class:`_NoQueryString` on uvicorn's access logger (once per process)."""
    access = logging.getLogger("uvicorn.access")
    if not any(isinstance(f, _NoQueryString) for f in access.filters):
        access.addFilter(_NoQueryString())
