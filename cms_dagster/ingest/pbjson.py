"""A fast ``ExportMetricsServiceRequest`` (protobuf message) → OTLP/JSON dict conversion.

``google.protobuf.json_format.MessageToDict`` is generic and slow (pure Python over descriptors); this walks
the metrics messages directly and produces the same dict for every field the raw zone keeps: camelCase
names, 64-bit integers as decimal strings, enums as integers, default scalars left out, non-finite doubles as
``"NaN"``/``"Infinity"``/``"-Infinity"``, bytes as base64 except trace and span ids, which OTLP/JSON
writes as hex. Fields that CMS does not read (``Metric.metadata``, ``Resource.entity_refs``) are dropped.
"""

from __future__ import annotations

import base64
import math
from typing import Any


def _d(x: float) -> float | str:
    if math.isfinite(x):
        return x
    return "NaN" if x != x else ("Infinity" if x > 0 else "-Infinity")


def any_value(v: Any) -> dict[str, Any]:
    which = v.WhichOneof("value")
    if which is None:
        return {}
    if which == "string_value":
        return {"stringValue": v.string_value}
    if which == "int_value":
        return {"intValue": str(v.int_value)}
    if which == "double_value":
        return {"doubleValue": _d(v.double_value)}
    if which == "bool_value":
        return {"boolValue": v.bool_value}
    if which == "array_value":
        vals = [any_value(x) for x in v.array_value.values]
        return {"arrayValue": {"values": vals} if vals else {}}
    if which == "kvlist_value":
        kvs = attributes(v.kvlist_value.values)
        return {"kvlistValue": {"values": kvs} if kvs else {}}
    if which == "bytes_value":
        return {"bytesValue": base64.b64encode(v.bytes_value).decode()}
    return {"stringValueStrindex": v.string_value_strindex}


def attributes(kvs: Any) -> list[dict[str, Any]]:
    out = []
    for kv in kvs:
        d: dict[str, Any] = {}
        if kv.key:
            d["key"] = kv.key
        if kv.HasField("value"):
            d["value"] = any_value(kv.value)
        out.append(d)
    return out


def _times(p: Any, d: dict[str, Any]) -> None:
    if p.start_time_unix_nano:
        d["startTimeUnixNano"] = str(p.start_time_unix_nano)
    if p.time_unix_nano:
        d["timeUnixNano"] = str(p.time_unix_nano)


def _value(p: Any, d: dict[str, Any]) -> None:
    """A number point's or an exemplar's value (``asDouble`` or ``asInt``), when it has one."""
    which = p.WhichOneof("value")
    if which == "as_double":
        d["asDouble"] = _d(p.as_double)
    elif which == "as_int":
        d["asInt"] = str(p.as_int)


def _exemplars(p: Any, d: dict[str, Any]) -> None:
    out = []
    for e in p.exemplars:
        x: dict[str, Any] = {}
        if e.filtered_attributes:
            x["filteredAttributes"] = attributes(e.filtered_attributes)
        if e.time_unix_nano:
            x["timeUnixNano"] = str(e.time_unix_nano)
        _value(e, x)
        if e.span_id:
            x["spanId"] = e.span_id.hex()
        if e.trace_id:
            x["traceId"] = e.trace_id.hex()
        out.append(x)
    if out:
        d["exemplars"] = out


def _point(p: Any, fields: Any) -> dict[str, Any]:
    """One data point: its attributes and times, then what ``fields(p, d)`` adds for its kind."""
    d: dict[str, Any] = {}
    if p.attributes:
        d["attributes"] = attributes(p.attributes)
    _times(p, d)
    fields(p, d)
    return d


def _number_fields(p: Any, d: dict[str, Any]) -> None:
    _value(p, d)
    if p.exemplars:
        _exemplars(p, d)
    if p.flags:
        d["flags"] = p.flags


def _histogram_fields(p: Any, d: dict[str, Any]) -> None:
    if p.count:
        d["count"] = str(p.count)
    if p.HasField("sum"):
        d["sum"] = _d(p.sum)
    if p.bucket_counts:
        d["bucketCounts"] = [str(b) for b in p.bucket_counts]
    if p.explicit_bounds:
        d["explicitBounds"] = [_d(b) for b in p.explicit_bounds]
    if p.exemplars:
        _exemplars(p, d)
    if p.flags:
        d["flags"] = p.flags
    if p.HasField("min"):
        d["min"] = _d(p.min)
    if p.HasField("max"):
        d["max"] = _d(p.max)


def _summary_fields(p: Any, d: dict[str, Any]) -> None:
    if p.count:
        d["count"] = str(p.count)
    if p.sum:
        d["sum"] = _d(p.sum)
    if p.quantile_values:
        qv = []
        for q in p.quantile_values:
            x: dict[str, Any] = {}
            if q.quantile:
                x["quantile"] = _d(q.quantile)
            if q.value:
                x["value"] = _d(q.value)
            qv.append(x)
        d["quantileValues"] = qv
    if p.flags:
        d["flags"] = p.flags


# per kind of metric data: the fields of its points, and whether it has a temporality and a monotonic flag
_KINDS = {
    "gauge": ("gauge", _number_fields, False, False),
    "sum": ("sum", _number_fields, True, True),
    "histogram": ("histogram", _histogram_fields, True, False),
    "summary": ("summary", _summary_fields, False, False),
}


def _metric(m: Any) -> dict[str, Any]:
    d: dict[str, Any] = {}
    if m.name:
        d["name"] = m.name
    if m.description:
        d["description"] = m.description
    if m.unit:
        d["unit"] = m.unit
    which = m.WhichOneof("data")
    if which in _KINDS:
        name, fields, temporal, monotonic = _KINDS[which]
        data = getattr(m, which)
        body: dict[str, Any] = {}
        if data.data_points:
            body["dataPoints"] = [_point(p, fields) for p in data.data_points]
        if temporal and data.aggregation_temporality:
            body["aggregationTemporality"] = data.aggregation_temporality
        if monotonic and data.is_monotonic:
            body["isMonotonic"] = True
        d[name] = body
    elif which == "exponential_histogram":  # not stored by CMS: kept only to be counted and rejected
        eh = m.exponential_histogram
        d["exponentialHistogram"] = {"dataPoints": [{} for _ in eh.data_points]} if eh.data_points else {}
    return d


def _scope(s: Any) -> dict[str, Any]:
    d: dict[str, Any] = {}
    if s.name:
        d["name"] = s.name
    if s.version:
        d["version"] = s.version
    if s.attributes:
        d["attributes"] = attributes(s.attributes)
    if s.dropped_attributes_count:
        d["droppedAttributesCount"] = s.dropped_attributes_count
    return d


def request_to_dict(msg: Any) -> dict[str, Any]:
    """An ``ExportMetricsServiceRequest`` message as its OTLP/JSON dict."""
    rms = []
    for rm in msg.resource_metrics:
        r: dict[str, Any] = {}
        if rm.HasField("resource"):
            res: dict[str, Any] = {}
            if rm.resource.attributes:
                res["attributes"] = attributes(rm.resource.attributes)
            if rm.resource.dropped_attributes_count:
                res["droppedAttributesCount"] = rm.resource.dropped_attributes_count
            r["resource"] = res
        sms = []
        for sm in rm.scope_metrics:
            s: dict[str, Any] = {}
            if sm.HasField("scope"):
                s["scope"] = _scope(sm.scope)
            if sm.metrics:
                s["metrics"] = [_metric(m) for m in sm.metrics]
            if sm.schema_url:
                s["schemaUrl"] = sm.schema_url
            sms.append(s)
        if sms:
            r["scopeMetrics"] = sms
        if rm.schema_url:
            r["schemaUrl"] = rm.schema_url
        rms.append(r)
    return {"resourceMetrics": rms} if rms else {}
