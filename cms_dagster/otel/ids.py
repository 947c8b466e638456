"""The point-id rule of docs/data-contract.md: one identity per point, whatever delivered it."""

from __future__ import annotations

import hashlib
from collections.abc import Mapping
from typing import Any

import orjson

SEP = b"\x1f"
IGNORED_RESOURCE_KEYS = frozenset({"aws.exporter.arn", "service.instance.id"})
IGNORED_RESOURCE_PREFIXES = ("telemetry.sdk.", "cms.ingest.")


def canonical(obj: Mapping[str, Any]) -> bytes:
    """Compact JSON with keys sorted at every level: the encoding of the ``attributes`` column."""
    return orjson.dumps(obj, option=orjson.OPT_SORT_KEYS)


SDK_SOURCE = "sdk"
TEAM_KEY = "cms.ingest.team"


def identity_resource(resource_attrs: Mapping[str, Any], source: str | None = None) -> dict[str, Any]:
    """Resource attributes less the delivery-specific ones, which must not change a point's id.

    A point of the SDK path (``source="sdk"``) keeps the team that sent it (``cms.ingest.team``, empty
    when absent): points of two teams, and an SDK point and a CloudWatch or Metric Streams point,
    never share an id, so one can never replace the other in the warehouse."""
    out = {
        k: v
        for k, v in resource_attrs.items()
        if k not in IGNORED_RESOURCE_KEYS and not k.startswith(IGNORED_RESOURCE_PREFIXES)
    }
    if source == SDK_SOURCE:
        team = resource_attrs.get(TEAM_KEY)
        out[TEAM_KEY] = team if isinstance(team, str) else ""
    return out


def series_hasher(
    resource_attrs: Mapping[str, Any], metric_name: str, point_attrs: Mapping[str, Any], source: str | None = None
) -> Any:
    """A SHA-256 state fed with everything but the time; ``.copy()`` it per point."""
    h = hashlib.sha256()
    h.update(canonical(identity_resource(resource_attrs, source)))
    h.update(SEP)
    h.update(metric_name.encode())
    h.update(SEP)
    h.update(canonical(point_attrs))
    h.update(SEP)
    return h


def point_id(
    resource_attrs: Mapping[str, Any],
    metric_name: str,
    point_attrs: Mapping[str, Any],
    time_unix_nano: int,
    source: str | None = None,
) -> str:
    """The deterministic id of one data point (32 hex digits); ``source`` is the raw key's source."""
    h = series_hasher(resource_attrs, metric_name, point_attrs, source)
    h.update(str(int(time_unix_nano)).encode())
    return h.hexdigest()[:32]
