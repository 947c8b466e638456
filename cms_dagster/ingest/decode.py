"""Decode an OTLP/HTTP metrics request body into the OTLP/JSON dict of the raw zone.

Pure functions: bytes and headers in, a dict (or a :class:`BodyError` that carries the HTTP status) out.
Bodies are bounded before and after decompression, so a gzip bomb stops at the limit.
"""

from __future__ import annotations

import zlib
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


def gunzip_limited(data: bytes, max_bytes: int) -> bytes:
    """Decompress gzip (one or more members) without ever producing more than ``max_bytes``."""
    out = bytearray()
    rest = data
    try:
        while rest:
            d = zlib.decompressobj(wbits=16 + zlib.MAX_WBITS)
            room = max_bytes - len(out)
            chunk = d.decompress(rest, room + 1)
            out += chunk
            if len(out) > max_bytes or d.unconsumed_tail:
                raise BodyError(413, f"decompressed body exceeds the limit of {max_bytes} bytes: send smaller batches")
            if not d.eof:
                raise BodyError(400, "truncated gzip body: the compressed stream ends early")
            rest = d.unused_data
            if rest.strip(b"\x00") == b"":  # trailing padding some writers add
                break
    except zlib.error as e:
        raise BodyError(400, f"body is not valid gzip ({e}): compress with gzip or drop Content-Encoding") from None
    return bytes(out)


def decode_json(data: bytes) -> dict[str, Any]:
    try:
        obj = orjson.loads(data)
    except orjson.JSONDecodeError as e:
        raise BodyError(400, f"body is not valid JSON ({e}): send an OTLP/JSON ExportMetricsServiceRequest") from None
    if not isinstance(obj, dict):
        raise BodyError(400, f"body is JSON {type(obj).__name__}, not an object: send an ExportMetricsServiceRequest")
    return obj


def decode_protobuf(data: bytes) -> dict[str, Any]:
    """Parse a protobuf ExportMetricsServiceRequest into its OTLP/JSON dict (int64 as strings, enums as ints)."""
    from google.protobuf.message import DecodeError
    from opentelemetry.proto.collector.metrics.v1.metrics_service_pb2 import ExportMetricsServiceRequest

    from cms_dagster.ingest.pbjson import request_to_dict

    msg = ExportMetricsServiceRequest()
    try:
        msg.ParseFromString(data)
    except (DecodeError, ValueError, RuntimeError) as e:
        raise BodyError(400, f"body is not a protobuf ExportMetricsServiceRequest ({e})") from None
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
    body: bytes, content_type: str | None, encoding: str | None, max_bytes: int
) -> tuple[dict[str, Any], str]:
    """The request as an OTLP/JSON dict, and its media type (the answer uses the same one)."""
    mt = media_type(content_type)
    enc = content_encoding(encoding)
    if len(body) > max_bytes:
        raise BodyError(413, f"body of {len(body)} bytes exceeds the limit of {max_bytes} bytes: send smaller batches")
    if enc == "gzip":
        body = gunzip_limited(body, max_bytes)
    req = decode_json(body) if mt == JSON else decode_protobuf(body)
    check_depth(req)
    return req, mt
