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


MAX_ANY_VALUE_DEPTH = 32  # kvlist/array nesting of one attribute value
_INT64 = (-(2**63), 2**63 - 1)


def from_any_value(v: Mapping[str, Any], _depth: int = 0) -> AttrValue:
    """Decode an OTLP ``AnyValue`` (JSON encoding) to a plain Python value.

    Strict, so that the receiver and the processing step (both decode with this) agree on every value:
    ``boolValue`` must be a JSON boolean, ``intValue`` a 64-bit integer (number or decimal string),
    ``doubleValue`` a number (or the proto3 JSON strings ``"NaN"``, ``"Infinity"``, ``"-Infinity"``),
    ``stringValue`` and ``bytesValue`` strings, nesting at most :data:`MAX_ANY_VALUE_DEPTH` levels.
    Anything else raises ``ValueError`` with the reason."""
    if v.__class__ is not dict and not isinstance(v, Mapping):
        raise ValueError("attribute value must be an AnyValue object")
    if "stringValue" in v:
        sv = v["stringValue"]
        if not isinstance(sv, str):
            raise ValueError("stringValue must be a string")
        return sv
    if "intValue" in v:
        iv = v["intValue"]
        if isinstance(iv, bool) or not isinstance(iv, (int, str)):
            raise ValueError("intValue must be an integer or a decimal string")
        n = int(iv)
        if not _INT64[0] <= n <= _INT64[1]:
            raise ValueError(f"intValue {n} is out of the 64-bit range")
        return n
    if "doubleValue" in v:
        dv = v["doubleValue"]
        if isinstance(dv, bool) or not isinstance(dv, (int, float, str)):
            raise ValueError("doubleValue must be a number")
        if isinstance(dv, str) and dv not in ("NaN", "Infinity", "-Infinity"):
            raise ValueError("doubleValue must be a number (or NaN, Infinity, -Infinity)")
        return float(dv)
    if "boolValue" in v:
        bv = v["boolValue"]
        if not isinstance(bv, bool):
            raise ValueError(f"boolValue must be true or false, got {type(bv).__name__}")
        return bv
    if "kvlistValue" in v or "arrayValue" in v:
        if _depth >= MAX_ANY_VALUE_DEPTH:
            raise ValueError(f"attribute value nested deeper than {MAX_ANY_VALUE_DEPTH} levels")
        if "kvlistValue" in v:
            kv = v["kvlistValue"]
            if not isinstance(kv, Mapping):
                raise ValueError("kvlistValue must be an object")
            return from_attributes(_list_of(kv.get("values"), "kvlistValue.values"), _depth + 1)
        av = v["arrayValue"]
        if not isinstance(av, Mapping):
            raise ValueError("arrayValue must be an object")
        return [from_any_value(x, _depth + 1) for x in _list_of(av.get("values"), "arrayValue.values")]
    if "bytesValue" in v:
        bv = v["bytesValue"]
        if not isinstance(bv, str):
            raise ValueError("bytesValue must be a base64 string")
        return bv
    if not v:
        return None
    raise ValueError(f"unknown AnyValue encoding: {sorted(v)}")


def _list_of(x: Any, what: str) -> list[Any]:
    if x is None:
        return []
    if not isinstance(x, list):
        raise ValueError(f"{what} must be a list")
    return x


def from_attributes(kvs: Iterable[Mapping[str, Any]], _depth: int = 0) -> dict[str, AttrValue]:
    """Decode an OTLP ``KeyValue`` list to a dict (strictly, see :func:`from_any_value`)."""
    out: dict[str, AttrValue] = {}
    for kv in kvs:
        if not isinstance(kv, Mapping):
            raise ValueError("attributes must be a list of {key, value} objects")
        key = kv["key"]
        if not isinstance(key, str):
            raise ValueError("attribute key must be a string")
        out[key] = from_any_value(kv.get("value") or {}, _depth)
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
