"""OTLP/JSON encoding of queued points (stdlib only).

A queued point is a plain tuple, cheap to build on the caller's thread; the background worker turns a
list of them into one ``ExportMetricsServiceRequest``: one resource, one scope (``cms-sdk``), one metric
entry per (name, kind, unit) in first-emitted order, data points in emission order.
"""

from __future__ import annotations

import json
import math
from typing import Any, Dict, List, NamedTuple, Optional, Sequence, Tuple

Attrs = Tuple[Tuple[str, Any], ...]

SCOPE = {"name": "cms-sdk"}
DELTA = 1


class Point(NamedTuple):
    name: str
    unit: str
    kind: str  # "gauge" | "sum"
    attrs: Attrs
    time_ns: int
    start_ns: Optional[int]
    value: Any
    force_double: bool


def is_integral(v: Any) -> bool:
    return (isinstance(v, int) and not isinstance(v, bool)) or (isinstance(v, float) and v.is_integer())


def is_finite_number(v: Any) -> bool:
    if isinstance(v, bool):
        return False
    if isinstance(v, int):
        return True
    return isinstance(v, float) and math.isfinite(v)


def any_value(v: Any) -> Dict[str, Any]:
    """The shared value rule: bool → boolValue, integral number → intValue, other number → doubleValue,
    anything else → its text as stringValue."""
    if isinstance(v, str):
        return {"stringValue": v}
    if isinstance(v, bool):
        return {"boolValue": v}
    if isinstance(v, (int, float)):
        if is_integral(v):
            return {"intValue": str(int(v))}
        if math.isfinite(v):
            return {"doubleValue": v}
    return {"stringValue": str(v)}


def encode_attrs(attrs: Attrs) -> List[Dict[str, Any]]:
    return [{"key": k, "value": any_value(v)} for k, v in attrs]


def encode_request(resource: List[Dict[str, Any]], points: Sequence[Point]) -> Dict[str, Any]:
    metrics: Dict[Tuple[str, str, str], Dict[str, Any]] = {}
    attr_cache: Dict[Attrs, List[Dict[str, Any]]] = {}
    for p in points:
        key = (p.name, p.kind, p.unit)
        m = metrics.get(key)
        if m is None:
            body: Dict[str, Any] = {"dataPoints": []}
            if p.kind == "sum":
                body["aggregationTemporality"] = DELTA
                body["isMonotonic"] = True
            m = metrics[key] = {"name": p.name, "unit": p.unit, p.kind: body}
        try:
            enc = attr_cache.get(p.attrs)
            if enc is None:
                enc = attr_cache[p.attrs] = encode_attrs(p.attrs)
        except TypeError:  # unhashable attribute value
            enc = encode_attrs(p.attrs)
        dp: Dict[str, Any] = {"attributes": enc}
        if p.start_ns is not None:
            dp["startTimeUnixNano"] = str(p.start_ns)
        dp["timeUnixNano"] = str(p.time_ns)
        v = p.value
        if p.force_double or not is_integral(v):
            dp["asDouble"] = float(v)
        else:
            dp["asInt"] = str(int(v))
        m[p.kind]["dataPoints"].append(dp)
    return {
        "resourceMetrics": [
            {"resource": {"attributes": resource}, "scopeMetrics": [{"scope": dict(SCOPE), "metrics": list(metrics.values())}]}
        ]
    }


def dumps(request: Dict[str, Any]) -> bytes:
    return json.dumps(request, separators=(",", ":"), allow_nan=False).encode("utf-8")


def count_points(request: Dict[str, Any]) -> int:
    n = 0
    for rm in request.get("resourceMetrics") or []:
        for sm in rm.get("scopeMetrics") or []:
            for m in sm.get("metrics") or []:
                for kind in ("gauge", "sum", "histogram", "summary", "exponentialHistogram"):
                    if kind in m:
                        n += len(m[kind].get("dataPoints") or [])
    return n
