"""Decode an OTLP/HTTP metrics request body into the OTLP/JSON dict of the raw zone.

Pure functions: bytes and headers in, a dict (or a :class:`BodyError` that carries the HTTP status) out.
Bodies are bounded before and after decompression, so a gzip bomb stops at the limit.
"""

from __future__ import annotations

import zlib
from collections.abc import Callable
from dataclasses import dataclass
from typing import Any

import orjson

JSON = "application/json"
PROTOBUF = "application/x-protobuf"
_MEDIA_TYPES = {"application/json": JSON, "application/x-protobuf": PROTOBUF, "application/protobuf": PROTOBUF}
_ENCODINGS = ("gzip", "identity", "")


@dataclass
class BodyError(Exception):
    """A request body that cannot be accepted: ``status`` is the HTTP answer, ``message`` says why and what to do."""

    status: int
    message: str

    def __str__(self) -> str:
        return self.message


def media_type(content_type: str | None) -> str:
    """The OTLP encoding named by a Content-Type header (parameters such as charset ignored)."""
    base = (content_type or "").split(";", 1)[0].strip().lower()
    mt = _MEDIA_TYPES.get(base)
    if mt is None:
        raise BodyError(
            415,
            f"unsupported Content-Type {content_type!r}: send OTLP metrics as application/json "
            "or application/x-protobuf",
        )
    return mt


def content_encoding(header: str | None) -> str:
    enc = (header or "").strip().lower()
    if enc not in _ENCODINGS:
        raise BodyError(415, f"unsupported Content-Encoding {header!r}: send gzip or an uncompressed body")
    return "gzip" if enc == "gzip" else ""


Grow = Callable[[int], None]
_STEP = 1 << 20  # inflate in steps of this many bytes, so the memory budget sees the body grow


def _no_grow(n: int) -> None:
    return None


def gunzip_limited(data: bytes, max_bytes: int, grow: Grow = _no_grow) -> bytes:
    """Decompress gzip (one or more members) without ever producing more than ``max_bytes``; ``grow``
    is told of every step of output (the memory budget may refuse it with a 429 :class:`BodyError`)."""
    out = bytearray()
    rest = data
    try:
        while rest:
            d = zlib.decompressobj(wbits=16 + zlib.MAX_WBITS)
            buf = rest
            while True:
                chunk = d.decompress(buf, min(max_bytes - len(out) + 1, _STEP))
                if len(out) + len(chunk) > max_bytes:
                    raise BodyError(413, f"decompressed body exceeds the limit of {max_bytes} bytes: send smaller batches")
                grow(len(chunk))
                out += chunk
                buf = d.unconsumed_tail
                if d.eof or (not buf and len(chunk) < _STEP):
                    break
            if not d.eof:
                raise BodyError(400, "truncated gzip body: the compressed stream ends early")
            rest = d.unused_data
            if rest.strip(b"\x00") == b"":  # trailing padding some writers add
                break
    except zlib.error as e:
        raise BodyError(400, f"body is not valid gzip ({e}): compress with gzip or drop Content-Encoding") from None
    return bytes(out)


def json_points(obj: dict[str, Any]) -> int:
    """Data points in a decoded OTLP/JSON request (anything malformed counts as none: validation says why)."""
    n = 0
    rms = obj.get("resourceMetrics")
    for rm in rms if isinstance(rms, list) else ():
        sms = rm.get("scopeMetrics") if isinstance(rm, dict) else None
        for sm in sms if isinstance(sms, list) else ():
            ms = sm.get("metrics") if isinstance(sm, dict) else None
            for m in ms if isinstance(ms, list) else ():
                if isinstance(m, dict):
                    for v in m.values():
                        if isinstance(v, dict):
                            dps = v.get("dataPoints")
                            if isinstance(dps, list):
                                n += len(dps)
    return n


def _too_many(n: int, max_points: int) -> BodyError:
    return BodyError(413, f"request has {n} data points, more than the limit of {max_points}: send smaller batches")


def decode_json(data: bytes, max_points: int = 0) -> dict[str, Any]:
    try:
        obj = orjson.loads(data)
    except orjson.JSONDecodeError as e:
        raise BodyError(400, f"body is not valid JSON ({e}): send an OTLP/JSON ExportMetricsServiceRequest") from None
    if not isinstance(obj, dict):
        raise BodyError(400, f"body is JSON {type(obj).__name__}, not an object: send an ExportMetricsServiceRequest")
    if max_points:
        n = json_points(obj)
        if n > max_points:
            raise _too_many(n, max_points)
    return obj


def decode_protobuf(data: bytes, max_points: int = 0) -> dict[str, Any]:
    """Parse a protobuf ExportMetricsServiceRequest into its OTLP/JSON dict (int64 as strings, enums as ints).

    Protobuf is dense (a point can take 20 bytes on the wire and 3-4 KiB as a dict), so the points are
    counted, and refused past ``max_points``, before the request is converted."""
    from google.protobuf.message import DecodeError
    from opentelemetry.proto.collector.metrics.v1.metrics_service_pb2 import ExportMetricsServiceRequest

    from cms_dagster.ingest.pbjson import request_to_dict

    msg = ExportMetricsServiceRequest()
    try:
        msg.ParseFromString(data)
    except (DecodeError, ValueError, RuntimeError) as e:
        raise BodyError(400, f"body is not a protobuf ExportMetricsServiceRequest ({e})") from None
    n = 0
    for rm in msg.resource_metrics:
        for sm in rm.scope_metrics:
            for m in sm.metrics:
                kind = m.WhichOneof("data")
                if kind:
                    n += len(getattr(m, kind).data_points)
    if max_points and n > max_points:
        raise _too_many(n, max_points)
    try:
        return request_to_dict(msg)
    except Exception as e:  # defensive: any conversion failure is the body's fault
        raise BodyError(400, f"protobuf request cannot be converted to OTLP/JSON ({e})") from None


MAX_DEPTH = 254  # nesting levels of a decoded request (objects and arrays): orjson encodes no deeper


def check_depth(obj: dict[str, Any]) -> None:
    """Refuse a request nested deeper than :data:`MAX_DEPTH` levels (400), before anything else sees it.

    A request that deep is never valid OTLP, and it could not be written to the raw zone or quarantine.
    The check re-encodes the request (fast, C), which fails exactly when the nesting is too deep."""
    try:
        orjson.dumps(obj)
    except orjson.JSONEncodeError as e:
        if "ecursion" in str(e):
            raise BodyError(400, f"request is nested deeper than {MAX_DEPTH} levels: flatten attribute values") from None
        raise BodyError(400, f"request cannot be stored as OTLP/JSON ({e})") from None


def decode_body(
    body: bytes,
    content_type: str | None,
    encoding: str | None,
    max_bytes: int,
    max_points: int = 0,
    grow: Grow = _no_grow,
) -> tuple[dict[str, Any], str]:
    """The request as an OTLP/JSON dict, and its media type (the answer uses the same one).

    ``max_points`` (0 = no limit) bounds the data points of one request (413 past it); ``grow`` is told
    of every step of gzip inflation (see :class:`cms_dagster.ingest.budget.MemoryBudget`)."""
    mt = media_type(content_type)
    enc = content_encoding(encoding)
    if len(body) > max_bytes:
        raise BodyError(413, f"body of {len(body)} bytes exceeds the limit of {max_bytes} bytes: send smaller batches")
    if enc == "gzip":
        body = gunzip_limited(body, max_bytes, grow)
    req = decode_json(body, max_points) if mt == JSON else decode_protobuf(body, max_points)
    check_depth(req)
    return req, mt
