"""Check an OTLP/JSON metrics request point by point against the semantic conventions.

:func:`check_request` keeps the points the flattening step will accept (the same rules as
``cms_dagster.otel.flatten`` plus :func:`cms_dagster.otel.conventions.validate_point`), returns the others
with their reasons, normalises 64-bit integers to decimal strings (OTLP/JSON as the raw zone stores it)
and stamps the resource with the authenticated team (``cms.ingest.team``, ignored by point ids).
A request whose structure above the data points is wrong raises :class:`BodyError` (HTTP 400).
"""

from __future__ import annotations

import math
from collections import Counter
from dataclasses import dataclass, field
from typing import Any

import orjson

from cms_dagster.ingest.auth import Ownership
from cms_dagster.ingest.decode import BodyError
from cms_dagster.otel.conventions import reserved_name, validate_point
from cms_dagster.otel.otlp import from_any_value

TEAM_ATTRIBUTE = "cms.ingest.team"
SOURCE_SDK = "sdk"
# attributes the warehouse keeps in string columns: any other type is refused
STRING_RESOURCE_ATTRIBUTES = ("service.name", "cms.environment", "cloud.account.id", "cloud.region")
STRING_POINT_ATTRIBUTES = (
    "cms.environment", "cms.asset_class", "cms.job", "cms.run_id", "cms.scheduled_start", "cms.stage",
    "cms.stage_type", "cms.stage_depends_on", "cms.status", "cms.error_type", "cms.feed", "cms.provider",
)
INT_POINT_ATTRIBUTES = ("cms.attempt", "cms.retries")
KINDS = ("gauge", "sum", "summary", "histogram")
_UNSUPPORTED = ("exponentialHistogram",)


@dataclass
class Rejection:
    """One rejected data point (or a metric without supported data) and why."""

    reason: str
    points: int
    payload: Any


@dataclass
class Checked:
    """The accepted part of a request (``None`` when nothing is left) and what was rejected."""

    request: dict[str, Any] | None
    accepted: int
    rejections: list[Rejection] = field(default_factory=list)

    @property
    def rejected(self) -> int:
        return sum(r.points for r in self.rejections)

    def error_message(self, limit: int = 3) -> str:
        """Short summary for OTLP ``partialSuccess.errorMessage``: the commonest reasons with counts."""
        if not self.rejections:
            return ""
        c: Counter[str] = Counter()
        for r in self.rejections:
            c[r.reason] += max(r.points, 1)
        parts = [f"{n} x {reason}" for reason, n in c.most_common(limit)]
        more = len(c) - limit
        return "; ".join(parts) + (f"; and {more} more reason(s)" if more > 0 else "")


INT64 = (-(2**63), 2**63 - 1)
UINT64 = (0, 2**64 - 1)
TIME = (1, 2**63 - 1)  # ns since the epoch that a timestamp column can hold (up to the year 2262)


def _int_str(v: Any, bounds: tuple[int, int] = INT64) -> str:
    """A 64-bit integer field as OTLP/JSON's decimal string (accepts the number form too), range-checked."""
    if isinstance(v, bool):
        raise ValueError("boolean where an integer is expected")
    if isinstance(v, str):
        n = int(v)
    elif isinstance(v, float):
        if not v.is_integer():
            raise ValueError(f"{v} is not an integer")
        n = int(v)
    elif isinstance(v, int):
        n = v
    else:
        raise ValueError(f"{type(v).__name__} where an integer is expected")
    if not bounds[0] <= n <= bounds[1]:
        raise ValueError(f"{n} is out of range [{bounds[0]}, {bounds[1]}]")
    return str(n)


_MAX_I64 = str(2**63 - 1)


def _canonical_uint(v: Any) -> bool:
    """True for a decimal string already in canonical OTLP/JSON form within [1, 2^63-1] (the fast path)."""
    return (
        v.__class__ is str
        and 0 < len(v) <= 19
        and v.isdigit()
        and v.isascii()
        and v[0] != "0"
        and (len(v) < 19 or v <= _MAX_I64)
    )


def decode_attributes(kvs: Any) -> dict[str, Any]:
    """Attributes as a dict; ``intValue`` numbers are rewritten in place as decimal strings."""
    return _decode_attributes(kvs)[0]


def _decode_attributes(kvs: Any) -> tuple[dict[str, Any], bool]:
    """(attributes as a dict, whether an ``intValue`` had to be rewritten in place)."""
    if kvs is None:
        return {}, False
    if kvs.__class__ is not list:
        raise ValueError("attributes must be a list of {key, value} objects")
    out: dict[str, Any] = {}
    rewritten = False
    for kv in kvs:
        key = kv["key"]
        if key.__class__ is not str:
            raise ValueError("attribute key must be a string")
        v = kv.get("value") or {}
        if v.__class__ is not dict:
            raise ValueError(f"attribute {key!r} value must be an AnyValue object")
        sv = v.get("stringValue")
        if sv.__class__ is str:
            out[key] = sv
        elif "stringValue" in v:
            raise ValueError(f"attribute {key!r} stringValue must be a string")
        elif "intValue" in v:
            iv = v["intValue"]
            if not _canonical_uint(iv):
                norm = _int_str(iv)
                if norm != iv:
                    v["intValue"] = iv = norm
                    rewritten = True
            out[key] = int(iv)
        else:
            out[key] = from_any_value(v)
    return out, rewritten


def _finite(x: Any) -> float:
    f = float(x)
    if not math.isfinite(f):
        raise _NotFinite
    return f


class _NotFinite(Exception):
    pass


def _number_value(p: dict[str, Any]) -> float:
    if "asDouble" in p:
        v = p["asDouble"]
        if isinstance(v, bool) or not isinstance(v, (int, float, str)):
            raise ValueError("asDouble must be a number")
        return _finite(v)
    if "asInt" in p:
        s = _int_str(p["asInt"])
        p["asInt"] = s
        return float(int(s))
    raise _NoValue


class _NoValue(Exception):
    pass


def _check_distribution(p: dict[str, Any], kind: str) -> None:
    if "count" in p:
        c = p["count"]
        if kind == "histogram":
            p["count"] = _int_str(c, UINT64)
        else:  # a summary count may be fractional (as the CloudWatch builder writes it)
            if isinstance(c, bool) or not isinstance(c, (int, float, str)):
                raise ValueError("count must be a number")
            _finite(c)
            if isinstance(c, int):
                p["count"] = str(c)
    if "sum" in p:
        _finite(p["sum"])
    if kind == "summary":
        for q in p.get("quantileValues") or []:
            _finite(q.get("quantile") or 0.0)
            _finite(q.get("value") or 0.0)
    else:
        if "bucketCounts" in p:
            p["bucketCounts"] = [_int_str(b, UINT64) for b in p["bucketCounts"]]
        for b in p.get("explicitBounds") or []:
            _finite(b)
        for k in ("min", "max"):
            if k in p:
                _finite(p[k])


def _string_attrs(attrs: dict[str, Any], keys: tuple[str, ...], what: str) -> str | None:
    for k in keys:
        if k in attrs and not isinstance(attrs[k], str):
            return f"{what} {k} must be a string, got {type(attrs[k]).__name__}"
    return None


_CMS_TYPES: dict[str, type] = {**dict.fromkeys(STRING_POINT_ATTRIBUTES, str), **dict.fromkeys(INT_POINT_ATTRIBUTES, int)}


def _typed_cms_attrs(attrs: dict[str, Any]) -> str | None:
    """The ``cms.*`` attribute types of semantic-conventions section 2."""
    for k, v in attrs.items():
        want = _CMS_TYPES.get(k)
        if want is not None and v.__class__ is not want:
            return f"attribute {k} must be {'a string' if want is str else 'an int'}, got {type(v).__name__}"
    return None


def _check_point(name: str, kind: str, p: Any, series: dict[bytes, tuple[str | None, bool]]) -> str | None:
    """Why a point is rejected, or None; normalises the point in place when accepted.

    Attribute sets repeat across points, so the verdict on a metric's attribute set is cached per
    request under the attributes' JSON bytes; a point is decoded only the first time its set is seen
    (or when its integers need rewriting as strings). Canonical values take a fast path.
    """
    if p.__class__ is not dict:
        return "data point is not an object"
    raw_attrs = p.get("attributes")
    try:
        akey = orjson.dumps(raw_attrs) if raw_attrs else b""
    except (TypeError, orjson.JSONEncodeError) as e:
        return f"bad attributes: {e}"
    hit = series.get(akey)
    if hit is None:
        try:
            attrs, rewritten = _decode_attributes(raw_attrs)
        except (ValueError, TypeError, KeyError, AttributeError) as e:
            reason: str | None = f"bad attributes: {e}"
            rewritten = False
        else:
            reason = _typed_cms_attrs(attrs) or validate_point(name, kind, attrs, None)
        series[akey] = (reason, rewritten)
    else:
        reason, rewritten = hit
        if rewritten and reason is None:
            _decode_attributes(raw_attrs)
    if reason:
        return reason
    try:
        t = p.get("timeUnixNano")
        if not _canonical_uint(t):
            if t in (None, "", 0, "0"):
                return "data point has no timeUnixNano"
            try:
                p["timeUnixNano"] = _int_str(t, TIME)
            except ValueError as e:
                return f"timeUnixNano {e}"
        st = p.get("startTimeUnixNano")
        if st is not None and st != "" and not _canonical_uint(st):
            try:
                p["startTimeUnixNano"] = _int_str(st, (0, TIME[1]))
            except ValueError as e:
                return f"startTimeUnixNano {e}"
        if kind == "gauge" or kind == "sum":
            d = p.get("asDouble")
            if d.__class__ is float:
                if not math.isfinite(d):
                    return "value is not finite"
            elif d is None and "asDouble" not in p and _canonical_uint(p.get("asInt")):
                pass
            else:
                _number_value(p)
        else:
            _check_distribution(p, kind)
    except _NoValue:
        return "number point has neither asDouble nor asInt"
    except _NotFinite:
        return "value is not finite"
    except (ValueError, TypeError, AttributeError, OverflowError) as e:
        return f"malformed data point: {e}"
    return None


def _stamp_team(rm: dict[str, Any], team: str) -> None:
    res = rm.get("resource")
    if not isinstance(res, dict):
        res = {}
        rm["resource"] = res
    attrs = [a for a in res.get("attributes") or [] if not str(a.get("key", "")).startswith("cms.ingest.")]
    attrs.append({"key": TEAM_ATTRIBUTE, "value": {"stringValue": team}})
    res["attributes"] = attrs


def check_request(req: dict[str, Any], team: str | None = None, ownership: Ownership | None = None) -> Checked:
    """Split a decoded request into its accepted part and its rejected points. With ``ownership``, the
    points of a resource whose ``service.name`` ``team`` does not own are rejected
    (``service 'x' is not owned by team T``)."""
    try:
        return _check(req, team, ownership)
    except BodyError:
        raise
    except (ValueError, TypeError, KeyError, AttributeError) as e:
        raise BodyError(400, f"not a valid OTLP ExportMetricsServiceRequest: {type(e).__name__}: {e}") from None


def _list(v: Any, what: str) -> list[Any]:
    if v is None:
        return []
    if not isinstance(v, list):
        raise BodyError(400, f"not a valid OTLP ExportMetricsServiceRequest: {what} must be a list")
    return v


def _ownership_reason(res_attrs: dict[str, Any], team: str | None, ownership: Ownership | None) -> str | None:
    if ownership is None or team is None:
        return None
    service = res_attrs.get("service.name")
    service = service if isinstance(service, str) else ""
    if ownership.owns(team, service):
        return None
    return f"service {service!r} is not owned by team {team}: a team writes only the services its keys file entry declares"


def _check(req: dict[str, Any], team: str | None, ownership: Ownership | None = None) -> Checked:
    rejections: list[Rejection] = []
    accepted = 0
    series: dict[tuple[str, str], dict[bytes, tuple[str | None, bool]]] = {}
    out_rms = []
    for rm in _list(req.get("resourceMetrics"), "resourceMetrics"):
        if not isinstance(rm, dict):
            raise BodyError(400, "not a valid OTLP ExportMetricsServiceRequest: a resourceMetrics item is not an object")
        res = rm.get("resource") or {}
        if not isinstance(res, dict):
            raise BodyError(400, "not a valid OTLP ExportMetricsServiceRequest: resource is not an object")
        try:
            res_attrs = decode_attributes(res.get("attributes"))
        except (ValueError, TypeError, KeyError, AttributeError) as e:
            raise BodyError(400, f"not a valid OTLP ExportMetricsServiceRequest: bad resource attributes: {e}") from None
        res_reason = _string_attrs(res_attrs, STRING_RESOURCE_ATTRIBUTES, "resource attribute") or _ownership_reason(
            res_attrs, team, ownership
        )
        out_sms = []
        for sm in _list(rm.get("scopeMetrics"), "scopeMetrics"):
            if not isinstance(sm, dict):
                raise BodyError(400, "not a valid OTLP ExportMetricsServiceRequest: a scopeMetrics item is not an object")
            out_ms = []
            for m in _list(sm.get("metrics"), "metrics"):
                if not isinstance(m, dict):
                    raise BodyError(400, "not a valid OTLP ExportMetricsServiceRequest: a metric is not an object")
                name = m.get("name") or ""
                if not isinstance(name, str):
                    raise BodyError(400, "not a valid OTLP ExportMetricsServiceRequest: a metric name is not a string")
                if not isinstance(m.get("unit") or "", str):
                    raise BodyError(400, f"not a valid OTLP ExportMetricsServiceRequest: metric {name!r} unit is not a string")
                kind = next((k for k in KINDS if k in m), None)
                if kind is None:
                    other = next((k for k in _UNSUPPORTED if k in m), None)
                    n = len((m.get(other) or {}).get("dataPoints") or []) if other else 0
                    rejections.append(
                        Rejection(
                            f"metric has no supported data ({other or 'none'}): send gauge, sum, summary or histogram",
                            n,
                            {"metric": name, "data": m},
                        )
                    )
                    continue
                reserved = reserved_name(name, SOURCE_SDK)
                if reserved:
                    points = (m[kind] or {}).get("dataPoints") if isinstance(m[kind], dict) else None
                    rejections.append(Rejection(reserved, len(points) if isinstance(points, list) else 0, {"metric": name, "data": m}))
                    continue
                body = m[kind]
                if not isinstance(body, dict):
                    raise BodyError(400, f"not a valid OTLP ExportMetricsServiceRequest: metric {name!r} {kind} is not an object")
                points = _list(body.get("dataPoints"), f"metric {name!r} dataPoints")
                keep = []
                cache = series.setdefault((name, kind), {})
                for p in points:
                    reason = res_reason or _check_point(name, kind, p, cache)
                    if reason is None:
                        keep.append(p)
                    else:
                        rejections.append(Rejection(reason, 1, {"metric": name, "point": p}))
                if not keep:
                    continue
                if len(keep) != len(points):
                    body["dataPoints"] = keep
                accepted += len(keep)
                out_ms.append(m)
            if out_ms:
                sm["metrics"] = out_ms
                out_sms.append(sm)
        if out_sms:
            rm["scopeMetrics"] = out_sms
            if team is not None:
                _stamp_team(rm, team)
            out_rms.append(rm)
    if not out_rms:
        return Checked(None, 0, rejections)
    req["resourceMetrics"] = out_rms
    return Checked(req, accepted, rejections)


def count_points(req: dict[str, Any]) -> int:
    """Data points in an OTLP/JSON request (any metric kind)."""
    n = 0
    for rm in req.get("resourceMetrics") or []:
        for sm in rm.get("scopeMetrics") or []:
            for m in sm.get("metrics") or []:
                for k in (*KINDS, *_UNSUPPORTED):
                    if k in m:
                        n += len(m[k].get("dataPoints") or [])
    return n
