"""Fixtures for the ingest receiver tests."""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest
from ingest_helpers import KEY, TEAM
from starlette.testclient import TestClient

from cms_dagster.ingest.app import IngestConfig, create_app
from cms_dagster.lake import Zone


@pytest.fixture
def raw_dir(tmp_path: Path) -> str:
    return str(tmp_path / "raw")


@pytest.fixture
def make_client(raw_dir: str) -> Iterator[Any]:
    """Builds a TestClient (lifespan running) for a receiver with options; closes them all at the end."""
    clients: list[TestClient] = []

    def make(zone: Zone | None = None, **kw: Any) -> TestClient:
        opts: dict[str, Any] = {"raw_url": raw_dir, "api_keys": {KEY: TEAM, "k-fx-feeds-0123456789": "fx-feeds"}, "flush_ms": 20}
        opts.update(kw)
        c = TestClient(create_app(IngestConfig(**opts), zone=zone))
        c.__enter__()
        clients.append(c)
        return c

    yield make
    for c in clients:
        c.__exit__(None, None, None)


@pytest.fixture
def client(make_client: Any) -> Any:
    return make_client()


@pytest.fixture
def zone(raw_dir: str) -> Zone:
    return Zone(raw_dir)
