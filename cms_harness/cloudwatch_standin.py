"""A CloudWatch stand-in below botocore that enforces CloudWatch's real limits (tests and benchmarks only).

moto's CloudWatch is too slow for thousands of metrics, enforces no limit and never paginates. This
stand-in answers botocore's ``before-send`` event with wire-format responses (CloudWatch speaks
Smithy RPC v2 CBOR in this botocore), so everything above the HTTP layer is the real thing: parameter
validation, serialization, response parsing and botocore's own retry logic (standard or adaptive mode)
when a throttling error is injected. What it enforces, as CloudWatch does:

- ListMetrics: 500 metrics per page, ``NextToken`` paging, Namespace / MetricName / Dimensions filters;
- GetMetricData: at most 500 ``MetricDataQueries`` (else ``ValidationError``, HTTP 400), unique query ids
  starting with a lower-case letter, periods of 1, 5, 10, 30 or a multiple of 60 seconds, StartTime before
  EndTime, and at most ``MaxDatapoints`` (100,800 by default and at most) datapoints returned per call:
  beyond that the answer is paginated with ``NextToken`` (``PartialData`` results), as CloudWatch does;
- throttling: chosen attempts answer ``Throttling`` (HTTP 400, as CloudWatch's ``Rate exceeded``), which
  botocore retries; ``fail`` makes chosen attempts answer ``AccessDenied``, which it does not.

Data are deterministic per (metric, minute) and self-consistent (min <= p99 <= max, sum = mean x count),
and :meth:`FakeCloudWatch.minute` gives the truth that tests compare against. It also writes the files a
Metric Stream would deliver for the same data (JSON and OpenTelemetry 1.0 formats).
"""

from __future__ import annotations

import datetime as dt
import io
import math
import re
import struct
import uuid
import zlib
from collections import Counter
from collections.abc import Callable, Iterable, Sequence
from typing import Any

import orjson

from cms_dagster.collectors.metrics import MetricRef
from cms_dagster.collectors.planning import MAX_DATAPOINTS_PER_CALL, MAX_QUERIES_PER_CALL

_ID_RE = re.compile(r"^[a-z][a-zA-Z0-9_]*$")
_UTC = dt.timezone.utc


# --- a small CBOR codec (RFC 8949 subset that Smithy RPC v2 uses) -------------------------------------


def _head(major: int, n: int) -> bytes:
    if n < 24:
        return bytes([(major << 5) | n])
    if n < 256:
        return bytes([(major << 5) | 24, n])
    if n < 65536:
        return bytes([(major << 5) | 25]) + n.to_bytes(2, "big")
    if n < 2**32:
        return bytes([(major << 5) | 26]) + n.to_bytes(4, "big")
    return bytes([(major << 5) | 27]) + n.to_bytes(8, "big")


def cbor_encode(value: Any, out: bytearray | None = None) -> bytearray:
    out = bytearray() if out is None else out
    if value is None:
        out.append(0xF6)
    elif value is True:
        out.append(0xF5)
    elif value is False:
        out.append(0xF4)
    elif isinstance(value, int):
        out += _head(0, value) if value >= 0 else _head(1, -1 - value)
    elif isinstance(value, float):
        out += b"\xfb" + struct.pack(">d", value)
    elif isinstance(value, str):
        b = value.encode()
        out += _head(3, len(b)) + b
    elif isinstance(value, (bytes, bytearray)):
        out += _head(2, len(value)) + value
    elif isinstance(value, dt.datetime):
        out += b"\xc1"
        cbor_encode(int(value.timestamp()), out)
    elif isinstance(value, _Epochs):  # a list of timestamps (epoch seconds), tag 1 each
        out += _head(4, len(value))
        for t in value:
            out += b"\xc1"
            out += _head(0, t)
    elif isinstance(value, dict):
        out += _head(5, len(value))
        for k, v in value.items():
            cbor_encode(k, out)
            cbor_encode(v, out)
    elif isinstance(value, (list, tuple)):
        if value and all(type(v) is float for v in value):  # fast path: a list of doubles
            out += _head(4, len(value))
            out += struct.pack(">" + "Bd" * len(value), *[x for v in value for x in (0xFB, v)])
        else:
            out += _head(4, len(value))
            for v in value:
                cbor_encode(v, out)
    else:
        raise TypeError(f"cannot CBOR-encode {type(value).__name__}")
    return out


def cbor_decode(data: bytes) -> Any:
    from botocore.parsers import RpcV2CBORParser

    p = RpcV2CBORParser()
    return p.parse_data_item(p.get_peekable_stream_from_bytes(data))


class _Epochs(list):
    """Epoch seconds that travel as timestamps (CBOR tag 1; JSON numbers)."""


def _json_default(v: Any) -> Any:
    if isinstance(v, _Epochs):
        return list(v)
    raise TypeError


class _Raw:
    def __init__(self, body: bytes) -> None:
        self._body = body

    def stream(self, **_: Any) -> Iterable[bytes]:
        yield self._body


def _response(url: str, status: int, body: bytes, headers: dict[str, str]) -> Any:
    from botocore.awsrequest import AWSResponse

    h = {"x-amzn-requestid": str(uuid.uuid4()), "Content-Length": str(len(body)), **headers}
    return AWSResponse(url, status, h, _Raw(body))


# --- the stand-in ------------------------------------------------------------------------------------


def fleet(n_metrics: int, *, with_p99: bool = True) -> list[MetricRef]:
    """A realistic estate of ``n_metrics`` metrics of the collected kinds (RDS, SQS, Lambda, EKS)."""
    from cms_dagster.otel.conventions import CLOUDWATCH_METRICS

    per_kind: dict[str, list] = {}
    for spec in CLOUDWATCH_METRICS:
        per_kind.setdefault(spec.namespace, []).append(spec)
    out: list[MetricRef] = []
    i = 0
    while len(out) < n_metrics:
        for ns, specs in per_kind.items():
            for spec in specs:
                if not with_p99 and spec.p99:
                    continue
                dims = []
                for d in spec.dimensions:
                    dims.append((d, _dim_value(ns, d, i)))
                out.append(MetricRef(ns, spec.metric, tuple(dims)))
                if len(out) >= n_metrics:
                    return out
        i += 1
    return out


def _dim_value(ns: str, dim: str, i: int) -> str:
    return {
        "DBInstanceIdentifier": f"db-{i:05d}",
        "QueueName": f"queue-{i:05d}",
        "FunctionName": f"fn-{i:05d}",
        "ClusterName": f"cluster-{i:05d}",
        "Namespace": f"ns-{i % 20:02d}",
        "Service": f"svc-{i:05d}",
    }[dim]


_STAT_INDEX = {"SampleCount": 0, "Sum": 1, "Minimum": 2, "Maximum": 3, "p99": 4}


class FakeCloudWatch:
    """CloudWatch (and STS GetCallerIdentity) for the given metrics, installed on a boto3 session."""

    def __init__(
        self,
        metrics: Sequence[MetricRef],
        *,
        account_id: str = "123456789012",
        list_page_size: int = 500,
        max_datapoints: int = MAX_DATAPOINTS_PER_CALL,
        density: float = 0.95,
        throttle: Callable[[str, int], bool] | Iterable[int] = (),
        fail: Callable[[str, int], bool] | None = None,
    ) -> None:
        self.metrics = list(metrics)
        self.account_id = account_id
        self.list_page_size = list_page_size
        self.max_datapoints = max_datapoints
        self.density = density
        if callable(throttle):
            self._throttle = throttle
        else:
            chosen = set(throttle)
            self._throttle = lambda op, n: n in chosen
        self._fail = fail or (lambda op, n: False)
        self._hash: dict[MetricRef, int] = {m: zlib.crc32(repr(m.series_key).encode()) for m in self.metrics}
        self._by_key = {m.series_key: m for m in self.metrics}
        self._pages: dict[str, list] = {}
        self.attempts = 0  # every CloudWatch request received, throttled ones included
        self.served: Counter = Counter()  # successful responses by operation
        self.throttled: Counter = Counter()
        self.rejected: Counter = Counter()  # ValidationError answers by operation
        self.metrics_requested = 0
        self.datapoints_returned = 0
        self.max_queries_seen = 0
        self.max_datapoints_seen = 0  # the most datapoints one GetMetricData page returned
        self.paginated_pages = 0  # GetMetricData pages beyond the first (NextToken follow-ups)

    # -- installation --
    def install(self, session: Any) -> Any:
        """Answer CloudWatch and STS requests of every client made from ``session`` (a boto3 Session)."""
        bs = getattr(session, "_session", session)
        bs.register("before-send.cloudwatch", self._on_send)
        bs.register("before-send.sts", self._on_sts)
        return session

    def session(self, region: str = "us-east-1") -> Any:
        import boto3

        s = boto3.session.Session(
            aws_access_key_id="standin", aws_secret_access_key="standin", region_name=region
        )
        return self.install(s)

    # -- the data --
    def minute(self, metric: MetricRef, t: int) -> tuple[int, float, float, float, float] | None:
        """(SampleCount, Sum, Minimum, Maximum, p99) of the minute starting at epoch second ``t``, or None."""
        h = self._hash.get(metric)
        if h is None:
            m = self._by_key.get(metric.series_key)
            if m is None:
                return None
            h = self._hash[m]
        k = t // 60
        if self.density < 1 and ((h ^ (k * 2654435761)) % 1000) >= self.density * 1000:
            return None
        count = 1 + (h + k) % 5
        base = 1 + (h % 1000) / 10
        mean = base * (1 + 0.25 * math.sin(k / 7 + h % 13))
        if count == 1:
            return 1, mean, mean, mean, mean
        spread = 0.1 * base
        return count, mean * count, mean - spread, mean + spread, mean + 0.98 * spread

    def statistic(self, metric: MetricRef, stat: str, start: int, period: int) -> float | None:
        if period == 60:
            m = self.minute(metric, start)
            if m is None:
                return None
            i = _STAT_INDEX.get(stat)
            if i is not None:
                return float(m[i])
            if stat == "Average":
                return m[1] / m[0]
            raise ValueError(stat)
        mins = [self.minute(metric, t) for t in range(start, start + max(period, 60), 60)]
        mins = [m for m in mins if m is not None]
        if not mins:
            return None
        count = sum(m[0] for m in mins)
        total = sum(m[1] for m in mins)
        if stat == "SampleCount":
            return float(count)
        if stat == "Sum":
            return total
        if stat == "Average":
            return total / count
        if stat == "Minimum":
            return min(m[2] for m in mins)
        if stat == "Maximum":
            return max(m[3] for m in mins)
        if stat == "p99":
            return max(m[4] for m in mins)
        raise ValueError(stat)

    # -- handlers --
    def _on_sts(self, request: Any, **_: Any) -> Any:
        body = (
            '<GetCallerIdentityResponse xmlns="https://sts.amazonaws.com/doc/2011-06-15/">'
            f"<GetCallerIdentityResult><Arn>arn:aws:iam::{self.account_id}:user/standin</Arn>"
            f"<UserId>STANDIN</UserId><Account>{self.account_id}</Account></GetCallerIdentityResult>"
            "<ResponseMetadata><RequestId>standin</RequestId></ResponseMetadata></GetCallerIdentityResponse>"
        ).encode()
        return _response(request.url, 200, body, {"Content-Type": "text/xml"})

    def _on_send(self, request: Any, event_name: str = "", **_: Any) -> Any:
        op = event_name.rsplit(".", 1)[-1]
        self.attempts += 1
        if self._throttle(op, self.attempts):
            self.throttled[op] += 1
            return self._error(request, 400, "Throttling", "Rate exceeded", sender=True)
        if self._fail(op, self.attempts):  # not retryable: the call, and the window it serves, fail
            return self._error(request, 400, "AccessDenied", "injected failure: not authorized")
        cbor = _is_cbor(request)
        body = _decode(request.body, cbor)
        try:
            if op == "ListMetrics":
                out = self._list_metrics(body)
            elif op == "GetMetricData":
                out = self._get_metric_data(body)
            else:
                return self._error(request, 400, "InvalidAction", f"the stand-in does not implement {op}")
        except _Invalid as e:
            self.rejected[op] += 1
            return self._error(request, 400, e.code, str(e))
        self.served[op] += 1
        return _response(request.url, 200, *_encode(out, cbor))

    def _error(self, request: Any, status: int, code: str, message: str, sender: bool = True) -> Any:
        body, headers = _encode({"__type": f"com.amazonaws.cloudwatch#{code}", "message": message}, _is_cbor(request))
        headers["x-amzn-query-error"] = f"{code};{'Sender' if sender else 'Receiver'}"
        return _response(request.url, status, body, headers)

    def _list_metrics(self, body: dict) -> dict:
        ns, name = body.get("Namespace"), body.get("MetricName")
        dfilter = body.get("Dimensions") or []
        token = body.get("NextToken")
        if token:
            if token not in self._pages:
                raise _Invalid("InvalidNextToken", "The service returned an invalid token")
            rest = self._pages.pop(token)
        else:
            rest = [
                m
                for m in self.metrics
                if (ns is None or m.namespace == ns)
                and (name is None or m.name == name)
                and all(
                    any(k == f["Name"] and ("Value" not in f or v == f["Value"]) for k, v in m.dimensions)
                    for f in dfilter
                )
            ]
        page, rest = rest[: self.list_page_size], rest[self.list_page_size :]
        out: dict[str, Any] = {"Metrics": [m.api() for m in page]}
        if rest:
            t = uuid.uuid4().hex
            self._pages[t] = rest
            out["NextToken"] = t
        return out

    def _get_metric_data(self, body: dict) -> dict:
        queries = body.get("MetricDataQueries") or []
        if not queries:
            raise _Invalid("ValidationError", "The parameter MetricDataQueries is required.")
        if len(queries) > MAX_QUERIES_PER_CALL:
            raise _Invalid(
                "ValidationError",
                f"The collection MetricDataQueries must not have a size greater than {MAX_QUERIES_PER_CALL}.",
            )
        ids = [q.get("Id", "") for q in queries]
        bad = [i for i in ids if not _ID_RE.match(i)]
        if bad:
            raise _Invalid("ValidationError", f"Invalid metric data query id(s) {bad[:3]}: must start with a lower-case letter")
        if len(set(ids)) != len(ids):
            raise _Invalid("ValidationError", "The values for parameter id in MetricDataQueries are not unique.")
        start, end = body["StartTime"], body["EndTime"]
        if start >= end:
            raise _Invalid("ValidationError", "The parameter StartTime must be less than the parameter EndTime.")
        max_dp = int(body.get("MaxDatapoints") or self.max_datapoints)
        max_dp = min(max_dp, self.max_datapoints)
        token = body.get("NextToken")
        if token:
            if token not in self._pages:
                raise _Invalid("InvalidNextToken", "The service returned an invalid token")
            remaining = self._pages.pop(token)
            self.paginated_pages += 1
        else:
            self.metrics_requested += len(queries)
            self.max_queries_seen = max(self.max_queries_seen, len(queries))
            remaining = []
            s0, e0 = int(start.timestamp()), int(end.timestamp())
            for q in queries:
                ms = q.get("MetricStat")
                if not ms:
                    raise _Invalid("ValidationError", "The stand-in supports MetricStat queries only")
                period = int(ms["Period"])
                if period not in (1, 5, 10, 30) and period % 60:
                    raise _Invalid("ValidationError", "The parameter Period must be 1, 5, 10, 30 or a multiple of 60.")
                metric = MetricRef.from_api(ms["Metric"])
                ts: list[int] = []
                vals: list[float] = []
                first = s0 - s0 % period
                for t in range(first, e0, period):
                    v = self.statistic(metric, ms["Stat"], t, period)
                    if v is not None:
                        ts.append(t)
                        vals.append(v)
                if body.get("ScanBy") != "TimestampAscending":  # CloudWatch's default is descending
                    ts.reverse()
                    vals.reverse()
                remaining.append([q["Id"], f"{metric.name} {ms['Stat']}", ts, vals])
        results = []
        budget = max_dp
        while remaining and budget > 0:
            qid, label, ts, vals = remaining[0]
            take = min(budget, len(vals))
            budget -= take
            partial = take < len(vals)
            results.append(
                {
                    "Id": qid,
                    "Label": label,
                    "Timestamps": _Epochs(ts[:take]),
                    "Values": vals[:take],
                    "StatusCode": "PartialData" if partial else "Complete",
                }
            )
            if partial:
                remaining[0] = [qid, label, ts[take:], vals[take:]]
            else:
                remaining.pop(0)
        n = sum(len(r["Values"]) for r in results)
        self.datapoints_returned += n
        self.max_datapoints_seen = max(self.max_datapoints_seen, n)
        out: dict[str, Any] = {"MetricDataResults": results, "Messages": []}
        if remaining:
            t = uuid.uuid4().hex
            self._pages[t] = remaining
            out["NextToken"] = t
        return out

    # -- what a Metric Stream would deliver for the same data --
    def stream_records(
        self, start: dt.datetime, end: dt.datetime, region: str, stream_name: str = "cms-stream", p99: bool = True
    ) -> list[dict]:
        """Metric Streams ``json`` records (one per metric and minute) for [start, end)."""
        from cms_dagster.collectors.metrics import spec_for

        recs = []
        s0, e0 = int(start.timestamp()), int(end.timestamp())
        for m in self.metrics:
            spec = spec_for(m)
            for t in range(s0, e0, 60):
                v = self.minute(m, t)
                if v is None:
                    continue
                value: dict[str, float] = {"max": v[3], "min": v[2], "sum": v[1], "count": float(v[0])}
                if p99 and spec is not None and spec.p99:
                    value["p99"] = v[4]
                recs.append(
                    {
                        "metric_stream_name": stream_name,
                        "account_id": self.account_id,
                        "region": region,
                        "namespace": m.namespace,
                        "metric_name": m.name,
                        "dimensions": dict(m.dimensions),
                        "timestamp": t * 1000,
                        "value": value,
                        "unit": spec.unit if spec else "None",
                    }
                )
        return recs


def _is_cbor(request: Any) -> bool:
    ct = request.headers.get("Content-Type") or b""
    ct = ct.decode() if isinstance(ct, bytes) else ct
    return "cbor" in ct or not ct and "rpc-v2-cbor" in str(request.headers.get("smithy-protocol") or "")


def _decode(body: bytes | None, cbor: bool) -> dict:
    if not body:
        return {}
    if cbor:
        return cbor_decode(body)
    d = orjson.loads(body)
    for k in ("StartTime", "EndTime"):  # awsJson sends timestamps as epoch seconds
        if k in d and not isinstance(d[k], dt.datetime):
            d[k] = dt.datetime.fromtimestamp(float(d[k]), _UTC)
    return d


def _encode(out: dict, cbor: bool) -> tuple[bytes, dict[str, str]]:
    if cbor:
        return bytes(cbor_encode(out)), {"smithy-protocol": "rpc-v2-cbor", "Content-Type": "application/cbor"}
    return orjson.dumps(out, default=_json_default), {"Content-Type": "application/x-amz-json-1.0"}


class _Invalid(Exception):
    def __init__(self, code: str, message: str) -> None:
        super().__init__(message)
        self.code = code


def json_stream_file(records: Sequence[dict]) -> bytes:
    """A Firehose file of a Metric Stream in ``json`` output format (newline-delimited records)."""
    return b"".join(orjson.dumps(r) + b"\n" for r in records)


def otel_stream_file(records: Sequence[dict], records_per_message: int = 50) -> bytes:
    """A Firehose file of a Metric Stream in ``opentelemetry1.0`` format: varint-length-prefixed protobuf
    ``ExportMetricsServiceRequest`` messages, built from the same records as AWS builds them."""
    from opentelemetry.proto.collector.metrics.v1.metrics_service_pb2 import ExportMetricsServiceRequest
    from opentelemetry.proto.common.v1.common_pb2 import AnyValue, KeyValue, KeyValueList
    from opentelemetry.proto.metrics.v1.metrics_pb2 import SummaryDataPoint

    def kv(k: str, v: Any) -> KeyValue:
        if isinstance(v, dict):
            return KeyValue(key=k, value=AnyValue(kvlist_value=KeyValueList(values=[kv(a, b) for a, b in v.items()])))
        return KeyValue(key=k, value=AnyValue(string_value=str(v)))

    buf = io.BytesIO()
    for i in range(0, len(records), records_per_message):
        chunk = records[i : i + records_per_message]
        r0 = chunk[0]
        req = ExportMetricsServiceRequest()
        rm = req.resource_metrics.add()
        rm.resource.attributes.extend(
            [
                kv("cloud.provider", "aws"),
                kv("cloud.account.id", r0["account_id"]),
                kv("cloud.region", r0["region"]),
                kv(
                    "aws.exporter.arn",
                    f"arn:aws:cloudwatch:{r0['region']}:{r0['account_id']}:metric-stream/{r0['metric_stream_name']}",
                ),
            ]
        )
        sm = rm.scope_metrics.add()
        for r in chunk:
            m = sm.metrics.add()
            m.name = f"amazonaws.com/{r['namespace']}/{r['metric_name']}"
            m.unit = r["unit"]
            p = m.summary.data_points.add()
            p.attributes.extend(
                [
                    kv("Namespace", r["namespace"]),
                    kv("MetricName", r["metric_name"]),
                    kv("Dimensions", dict(sorted(r["dimensions"].items()))),
                ]
            )
            p.start_time_unix_nano = r["timestamp"] * 1_000_000
            p.time_unix_nano = (r["timestamp"] + 60_000) * 1_000_000
            v = r["value"]
            p.count = int(v["count"])
            p.sum = v["sum"]
            qs = [(0.0, v["min"])]
            if "p99" in v:
                qs.append((0.99, v["p99"]))
            qs.append((1.0, v["max"]))
            for q, val in qs:
                p.quantile_values.append(SummaryDataPoint.ValueAtQuantile(quantile=q, value=val))
        data = req.SerializeToString()
        buf.write(_varint(len(data)))
        buf.write(data)
    return buf.getvalue()


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
