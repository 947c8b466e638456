"""CloudWatch Metric Streams files (delivered by Firehose to S3) landed in the raw zone as OTLP/JSON.

Both output formats a metric stream can use:
- ``opentelemetry1.0``: a sequence of ``ExportMetricsServiceRequest`` protobuf messages, each prefixed by
  its length as a varint; decoded with opentelemetry-proto and converted with ``json_format`` to OTLP/JSON
  (one request per line, as AWS shaped it: metric names ``amazonaws.com/<Namespace>/<MetricName>``,
  Namespace / MetricName / Dimensions attributes, summary points);
- ``json``: one JSON record per metric and minute (``metric_stream_name, account_id, region, namespace,
  metric_name, dimensions, timestamp`` (ms, period start), ``value {max, min, sum, count, p99...}``,
  ``unit``), rebuilt with the same builders as polled data (:mod:`cms_dagster.collectors.shape`).

Files may be gzip'd or not. A file lands at ``source=metric-stream`` under the hour it was delivered (its
S3 LastModified), with a batch name made of that time and a hash of its source key, so landing a file
twice overwrites the same raw key. A file that cannot be decoded goes to the raw zone's ``quarantine/``
with a ``.reason.json``, never silently dropped.
"""

from __future__ import annotations

import datetime as dt
import gzip
import hashlib
import json
import os
from collections.abc import Iterable, Iterator, Sequence
from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import Any

import orjson

from cms_dagster import lake
from cms_dagster.collectors.shape import Series, build_requests, encode_lines, summary_point

SOURCE = "metric-stream"
PRODUCER = "ms"
_UTC = dt.timezone.utc


# --- decoding ----------------------------------------------------------------------------------------


class StreamDecodeError(ValueError):
    pass


def _gunzip(data: bytes) -> bytes:
    if data[:2] == b"\x1f\x8b":
        try:
            return gzip.decompress(data)
        except (OSError, EOFError) as e:
            raise StreamDecodeError(f"bad gzip: {e}") from e
    return data


def iter_length_prefixed(data: bytes) -> Iterator[bytes]:
    """The messages of a varint-length-prefixed stream."""
    i, n = 0, len(data)
    while i < n:
        length = shift = 0
        while True:
            if i >= n:
                raise StreamDecodeError("truncated varint length prefix")
            b = data[i]
            i += 1
            length |= (b & 0x7F) << shift
            if not b & 0x80:
                break
            shift += 7
            if shift > 63:
                raise StreamDecodeError("varint length prefix longer than 64 bits")
        if i + length > n:
            raise StreamDecodeError(f"record of {length} bytes runs past the end of the file")
        yield data[i : i + length]
        i += length


def decode_otel(data: bytes) -> list[dict[str, Any]]:
    """``opentelemetry1.0`` file content -> OTLP/JSON requests."""
    from google.protobuf import json_format
    from google.protobuf.message import DecodeError
    from opentelemetry.proto.collector.metrics.v1.metrics_service_pb2 import ExportMetricsServiceRequest

    out = []
    for raw in iter_length_prefixed(data):
        try:
            msg = ExportMetricsServiceRequest.FromString(raw)
        except DecodeError as e:
            raise StreamDecodeError(f"not an ExportMetricsServiceRequest: {e}") from e
        out.append(json_format.MessageToDict(msg))
    if not out:
        raise StreamDecodeError("no records")
    return out


def iter_json_records(data: bytes) -> Iterator[dict[str, Any]]:
    """Records of a ``json`` file (newline-delimited, or concatenated objects as Firehose may write them)."""
    text = data.decode("utf-8")
    dec = json.JSONDecoder()
    i, n = 0, len(text)
    while i < n:
        while i < n and text[i].isspace():
            i += 1
        if i >= n:
            return
        obj, i = dec.raw_decode(text, i)
        if not isinstance(obj, dict):
            raise ValueError("a record is not a JSON object")
        yield obj


_QUANTILE_KEYS = {"min": 0.0, "max": 1.0}


def _percentile(key: str) -> float | None:
    if key.startswith("p"):
        try:
            return float(key[1:]) / 100
        except ValueError:
            return None
    return None


def decode_json(data: bytes) -> list[dict[str, Any]]:
    """``json`` file content -> OTLP/JSON requests (one per account, region and stream)."""
    groups: dict[tuple[str, str, str], dict[tuple, Series]] = {}
    for r in iter_json_records(data):
        try:
            account, region, stream = str(r["account_id"]), r["region"], r.get("metric_stream_name", "")
            ns, name, dims = r["namespace"], r["metric_name"], r.get("dimensions") or {}
            t = int(r["timestamp"]) // 1000
            v = r["value"]
            quantiles = {q: float(val) for k, val in v.items() if (q := _percentile(k)) is not None}
            p = summary_point(
                ns, name, dims, t, t + 60, float(v["count"]), float(v["sum"]), float(v["min"]), float(v["max"]), quantiles or None
            )
        except (KeyError, TypeError, ValueError) as e:
            raise StreamDecodeError(f"not a Metric Streams JSON record ({e}): {str(r)[:200]}") from e
        series = groups.setdefault((account, region, stream), {})
        key = (ns, name, tuple(sorted(dims.items())))
        s = series.get(key)
        if s is None:
            s = series[key] = Series(ns, name, r.get("unit") or "None", tuple(sorted((k, str(x)) for k, x in dims.items())))
        s.points.append(p)
    if not groups:
        raise StreamDecodeError("no records")
    out = []
    for (account, region, stream), series in sorted(groups.items()):
        arn = f"arn:aws:cloudwatch:{region}:{account}:metric-stream/{stream}" if stream else None
        out += build_requests(account, region, list(series.values()), exporter_arn=arn)
    return out


def decode_stream_file(data: bytes, fmt: str | None = None) -> tuple[str, list[dict[str, Any]]]:
    """(format, OTLP/JSON requests) of a Firehose file; ``fmt`` is ``json``, ``opentelemetry1.0`` or None."""
    body = _gunzip(data)
    if fmt in (None, "json") and body.lstrip()[:1] == b"{":
        try:
            return "json", decode_json(body)
        except (UnicodeDecodeError, ValueError) as e:
            if fmt == "json":
                raise StreamDecodeError(f"not Metric Streams JSON: {e}") from e
    if fmt in (None, "opentelemetry1.0"):
        return "opentelemetry1.0", decode_otel(body)
    raise StreamDecodeError(f"unknown Metric Streams output format {fmt!r}: use json or opentelemetry1.0")


# --- where the files are -----------------------------------------------------------------------------


@dataclass(frozen=True)
class StreamObject:
    key: str  # relative to the streams URL
    last_modified: dt.datetime
    size: int

    @property
    def cursor(self) -> tuple[str, str]:
        return (self.last_modified.isoformat(), self.key)


def _split_s3(url: str) -> tuple[str, str]:
    bucket, _, prefix = url[len("s3://") :].partition("/")
    return bucket, prefix.strip("/")


def list_stream_objects(url: str, *, s3: Any = None) -> list[StreamObject]:
    """Every file under ``url`` (``s3://bucket/prefix`` or a local directory), oldest first."""
    out: list[StreamObject] = []
    if url.startswith("s3://"):
        bucket, prefix = _split_s3(url)
        s3 = s3 or _s3()
        strip = len(prefix) + 1 if prefix else 0
        for page in s3.get_paginator("list_objects_v2").paginate(Bucket=bucket, Prefix=f"{prefix}/" if prefix else ""):
            for o in page.get("Contents", []):
                if o["Key"].endswith("/"):
                    continue
                out.append(StreamObject(o["Key"][strip:], o["LastModified"].astimezone(_UTC), int(o["Size"])))
    else:
        root = Path(url)
        if root.exists():
            for dirpath, _, files in os.walk(root):
                for fn in files:
                    if fn.startswith("."):
                        continue
                    p = Path(dirpath, fn)
                    st = p.stat()
                    out.append(
                        StreamObject(p.relative_to(root).as_posix(), dt.datetime.fromtimestamp(int(st.st_mtime), _UTC), st.st_size)
                    )
    return sorted(out, key=lambda o: o.cursor)


def read_stream_object(url: str, key: str, *, s3: Any = None) -> bytes:
    if url.startswith("s3://"):
        bucket, prefix = _split_s3(url)
        s3 = s3 or _s3()
        return s3.get_object(Bucket=bucket, Key=f"{prefix}/{key}" if prefix else key)["Body"].read()
    return (Path(url) / key).read_bytes()


def _s3() -> Any:
    from cms_dagster.lake import aws

    return aws.client("s3")


def new_objects(objects: Sequence[StreamObject], cursor: str | None) -> list[StreamObject]:
    """Objects after a cursor (from :func:`advance_cursor`): newer LastModified, or the same and unseen."""
    if not cursor:
        return list(objects)
    c = json.loads(cursor)
    t, seen = c.get("t", ""), set(c.get("keys", []))
    return [o for o in objects if o.last_modified.isoformat() > t or (o.last_modified.isoformat() == t and o.key not in seen)]


def advance_cursor(cursor: str | None, landed: Iterable[StreamObject]) -> str | None:
    """The cursor after landing ``landed``: the newest LastModified and the keys seen at that instant."""
    c = json.loads(cursor) if cursor else {"t": "", "keys": []}
    t, keys = c["t"], set(c["keys"])
    for o in landed:
        ot = o.last_modified.isoformat()
        if ot > t:
            t, keys = ot, {o.key}
        elif ot == t:
            keys.add(o.key)
    return json.dumps({"t": t, "keys": sorted(keys)}) if t else cursor


# --- landing -----------------------------------------------------------------------------------------


@dataclass
class LandSummary:
    files: int = 0
    formats: dict[str, int] = field(default_factory=dict)
    requests: int = 0
    points: int = 0
    bytes: int = 0
    raw_keys: list[str] = field(default_factory=list)
    quarantined: list[str] = field(default_factory=list)

    def as_dict(self) -> dict[str, Any]:
        return asdict(self)


def raw_key_for(url: str, obj: StreamObject) -> str:
    suffix = hashlib.sha256(f"{url.rstrip('/')}/{obj.key}".encode()).hexdigest()[:16]
    return lake.raw_key(SOURCE, obj.last_modified, lake.batch_name(obj.last_modified, PRODUCER, suffix))


def land(url: str, raw: lake.Zone, objects: Iterable[StreamObject], *, s3: Any = None, fmt: str | None = None) -> LandSummary:
    """Decode each file and write it to the raw zone (one batch per file); undecodable files to quarantine."""
    out = LandSummary()
    for obj in objects:
        data = read_stream_object(url, obj.key, s3=s3)
        key = raw_key_for(url, obj)
        try:
            kind, requests = decode_stream_file(data, fmt)
        except StreamDecodeError as e:
            qkey = lake.quarantine_key_for(key, "undecodable")
            raw.put(qkey, data)
            raw.put(
                lake.quarantine_key_for(key, "reason.json"),
                orjson.dumps({"batch": lake.parse_raw_key(key)["batch"], "source_key": obj.key, "reason": str(e)}),
            )
            out.quarantined.append(qkey)
            continue
        body = lake.gzip_bytes(encode_lines(requests))
        raw.put(key, body)
        out.files += 1
        out.formats[kind] = out.formats.get(kind, 0) + 1
        out.requests += len(requests)
        out.points += sum(
            len((m.get("summary") or m.get("gauge") or m.get("sum") or m.get("histogram") or {}).get("dataPoints") or [])
            for r in requests
            for rm in r.get("resourceMetrics") or []
            for sm in rm.get("scopeMetrics") or []
            for m in sm.get("metrics") or []
        )
        out.bytes += len(body)
        out.raw_keys.append(key)
    return out


# --- incremental landing with a checkpoint in the raw zone -------------------------------------------

CHECKPOINT_PREFIX = lake.layout.METRIC_STREAMS_CHECKPOINTS


def checkpoint_key(url: str) -> str:
    return f"{CHECKPOINT_PREFIX}/{hashlib.sha256(url.rstrip('/').encode()).hexdigest()[:16]}.json"


def landed_cursor(raw: lake.Zone, url: str) -> str | None:
    key = checkpoint_key(url)
    if not raw.exists(key):
        return None
    return json.dumps(json.loads(raw.get(key))["cursor"])


def pending(url: str, raw: lake.Zone, *, s3: Any = None) -> list[StreamObject]:
    """Files under ``url`` not landed yet (by the landing checkpoint), oldest first."""
    return new_objects(list_stream_objects(url, s3=s3), landed_cursor(raw, url))


def land_new(
    url: str, raw: lake.Zone, *, max_files: int = 1000, chunk: int = 100, s3: Any = None, fmt: str | None = None
) -> LandSummary:
    """Land the files not landed yet, oldest first, advancing the checkpoint after each chunk of files.

    The checkpoint moves only past files that are written (or quarantined), so a failed run leaves the
    rest for the next; landing a file again overwrites the same raw key.
    """
    todo = pending(url, raw, s3=s3)[:max_files]
    total = LandSummary()
    cursor = landed_cursor(raw, url)
    for i in range(0, len(todo), chunk):
        part = todo[i : i + chunk]
        got = land(url, raw, part, s3=s3, fmt=fmt)
        cursor = advance_cursor(cursor, part)
        raw.put(checkpoint_key(url), orjson.dumps({"url": url, "cursor": json.loads(cursor or "{}")}))
        total.files += got.files
        for k, v in got.formats.items():
            total.formats[k] = total.formats.get(k, 0) + v
        total.requests += got.requests
        total.points += got.points
        total.bytes += got.bytes
        total.raw_keys += got.raw_keys
        total.quarantined += got.quarantined
    return total
