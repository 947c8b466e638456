"""Fixtures for the SDK tests."""

from __future__ import annotations

from typing import Iterator

import pytest
from sdk_stub import StubEndpoint


@pytest.fixture
def endpoint() -> Iterator[StubEndpoint]:
    stub = StubEndpoint()
    yield stub
    stub.stop()
