"""Build and read OTLP/JSON metrics (the encoding of the raw zone).

OTLP/JSON rules followed here: camelCase field names, 64-bit integers (``timeUnixNano``, ``intValue``,
``asInt``, ``count`` of histograms) as decimal strings, attribute values as typed ``AnyValue`` objects.
"""

from __future__ import annotations

from collections.abc import Iterable, Mapping
from typing import Any

AGGREGATION_TEMPORALITY_DELTA = 1
AGGREGATION_TEMPORALITY_CUMULATIVE = 2

AttrValue = Any


def any_value(value: AttrValue) -> dict[str, Any]:
    """Encode a Python value as an OTLP ``AnyValue``."""
    if isinstance(value, bool):
        return {"boolValue": value}
    if isinstance(value, int):
        return {"intValue": str(value)}
    if isinstance(value, float):
        return {"doubleValue": value}
    if isinstance(value, str):
        return {"stringValue": value}
    if isinstance(value, Mapping):
        return {"kvlistValue": {"values": attributes(value)}}
    if isinstance(value, (list, tuple)):
        return {"arrayValue": {"values": [any_value(v) for v in value]}}
    if value is None:
        return {}
    raise TypeError(f"cannot encode attribute value of type {type(value).__name__}: {value!r}")


def attributes(attrs: Mapping[str, AttrValue]) -> list[dict[str, Any]]:
    """Encode a mapping as an OTLP ``KeyValue`` list (keys in the mapping's order)."""
    return [{"key": k, "value": any_value(v)} for k, v in attrs.items()]


def from_any_value(v: Mapping[str, Any]) -> AttrValue:
    """Decode an OTLP ``AnyValue`` (JSON encoding) to a plain Python value."""
    if "stringValue" in v:
        return v["stringValue"]
    if "intValue" in v:
        return int(v["intValue"])
    if "doubleValue" in v:
        return float(v["doubleValue"])
    if "boolValue" in v:
        return bool(v["boolValue"])
    if "kvlistValue" in v:
        return from_attributes(v["kvlistValue"].get("values") or [])
    if "arrayValue" in v:
        return [from_any_value(x) for x in v["arrayValue"].get("values") or []]
    if "bytesValue" in v:
        return v["bytesValue"]
    if not v:
        return None
    raise ValueError(f"unknown AnyValue encoding: {sorted(v)}")


def from_attributes(kvs: Iterable[Mapping[str, Any]]) -> dict[str, AttrValue]:
    """Decode an OTLP ``KeyValue`` list to a dict."""
    out: dict[str, AttrValue] = {}
    for kv in kvs:
        out[kv["key"]] = from_any_value(kv.get("value") or {})
    return out


def number_point(
    attrs: Mapping[str, AttrValue], time_ns: int, value: float | int, start_ns: int | None = None
) -> dict[str, Any]:
    """A gauge or sum data point."""
    p: dict[str, Any] = {"attributes": attributes(attrs), "timeUnixNano": str(time_ns)}
    if start_ns:
        p["startTimeUnixNano"] = str(start_ns)
    if isinstance(value, int) and not isinstance(value, bool):
        p["asInt"] = str(value)
    else:
        p["asDouble"] = float(value)
    return p


def summary_point(
    attrs: Mapping[str, AttrValue],
    start_ns: int,
    time_ns: int,
    count: float,
    total: float,
    minimum: float,
    maximum: float,
    quantiles: Mapping[float, float] | None = None,
) -> dict[str, Any]:
    """A summary data point in CloudWatch Metric Streams' shape: quantile 0 = min, 1 = max (+ extras)."""
    qv = [{"quantile": 0.0, "value": float(minimum)}]
    for q, val in sorted((quantiles or {}).items()):
        qv.append({"quantile": float(q), "value": float(val)})
    qv.append({"quantile": 1.0, "value": float(maximum)})
    return {
        "attributes": attributes(attrs),
        "startTimeUnixNano": str(start_ns),
        "timeUnixNano": str(time_ns),
        "count": str(int(count)) if float(count).is_integer() else float(count),
        "sum": float(total),
        "quantileValues": qv,
    }


def gauge(name: str, unit: str, points: list[dict[str, Any]], description: str = "") -> dict[str, Any]:
    m: dict[str, Any] = {"name": name, "unit": unit, "gauge": {"dataPoints": points}}
    if description:
        m["description"] = description
    return m


def sum_(
    name: str,
    unit: str,
    points: list[dict[str, Any]],
    monotonic: bool = True,
    temporality: int = AGGREGATION_TEMPORALITY_DELTA,
) -> dict[str, Any]:
    return {
        "name": name,
        "unit": unit,
        "sum": {"dataPoints": points, "aggregationTemporality": temporality, "isMonotonic": monotonic},
    }


def summary(name: str, unit: str, points: list[dict[str, Any]]) -> dict[str, Any]:
    return {"name": name, "unit": unit, "summary": {"dataPoints": points}}


def request(
    resource_attrs: Mapping[str, AttrValue],
    metrics: list[dict[str, Any]],
    scope_name: str = "cms",
    scope_version: str = "",
) -> dict[str, Any]:
    """One ``ExportMetricsServiceRequest`` with one resource and one scope."""
    scope: dict[str, Any] = {"name": scope_name}
    if scope_version:
        scope["version"] = scope_version
    return {
        "resourceMetrics": [
            {
                "resource": {"attributes": attributes(resource_attrs)},
                "scopeMetrics": [{"scope": scope, "metrics": metrics}],
            }
        ]
    }
