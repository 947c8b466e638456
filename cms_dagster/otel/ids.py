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


def identity_resource(resource_attrs: Mapping[str, Any]) -> dict[str, Any]:
    """Resource attributes less the delivery-specific ones, which must not change a point's id."""
    return {
        k: v
        for k, v in resource_attrs.items()
        if k not in IGNORED_RESOURCE_KEYS and not k.startswith(IGNORED_RESOURCE_PREFIXES)
    }


def series_hasher(resource_attrs: Mapping[str, Any], metric_name: str, point_attrs: Mapping[str, Any]) -> Any:
    """A SHA-256 state fed with everything but the time; ``.copy()`` it per point."""
    h = hashlib.sha256()
    h.update(canonical(identity_resource(resource_attrs)))
    h.update(SEP)
    h.update(metric_name.encode())
    h.update(SEP)
    h.update(canonical(point_attrs))
    h.update(SEP)
    return h


def point_id(
    resource_attrs: Mapping[str, Any], metric_name: str, point_attrs: Mapping[str, Any], time_unix_nano: int
) -> str:
    """The deterministic id of one data point (32 hex digits)."""
    h = series_hasher(resource_attrs, metric_name, point_attrs)
    h.update(str(int(time_unix_nano)).encode())
    return h.hexdigest()[:32]
