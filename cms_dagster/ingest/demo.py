"""A receiver for ``make demo``: start one in the background on the demo's raw zone, stop it after."""

from __future__ import annotations

from cms_dagster.ingest.app import IngestConfig
from cms_dagster.ingest.server import BackgroundServer
from cms_dagster.ingest.server import serve_in_background as _serve

DEMO_TEAM = "demo"


def serve_in_background(
    raw_zone_url: str, host: str = "127.0.0.1", port: int = 0, api_keys: dict[str, str] | None = None, flush_ms: int = 50
) -> BackgroundServer:
    """Start a receiver writing to ``raw_zone_url``; ``api_keys`` is {key: team}. Returns a handle with
    ``.url``, ``.port`` and ``.stop()`` (which flushes what is pending)."""
    keys = api_keys or {"demo-key-not-secret": DEMO_TEAM}
    # teams declare no services here: each may write any service (no team claims one)
    return _serve(IngestConfig(raw_url=raw_zone_url, api_keys=keys, flush_ms=flush_ms), host, port)
