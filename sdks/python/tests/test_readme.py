"""The README's five-line example runs as written and its points reach the endpoint."""

from __future__ import annotations

import re
from pathlib import Path

import pytest
from sdk_stub import StubEndpoint

README = Path(__file__).resolve().parents[1] / "README.md"


def test_readme_example_runs_against_an_endpoint(endpoint: StubEndpoint, monkeypatch: pytest.MonkeyPatch, tmp_path: Path) -> None:
    code = re.search(r"```python\n(.*?)```", README.read_text(), re.S).group(1)  # type: ignore[union-attr]
    assert len(code.strip().splitlines()) <= 5
    monkeypatch.setenv("OTEL_EXPORTER_OTLP_ENDPOINT", endpoint.url)
    monkeypatch.setenv("OTEL_EXPORTER_OTLP_HEADERS", "authorization=Bearer%20readme-key")
    monkeypatch.setenv("OTEL_SERVICE_NAME", "pricing-batch")
    monkeypatch.setenv("CMS_ENVIRONMENT", "dev")
    monkeypatch.setenv("CMS_SPOOL_DIR", str(tmp_path))
    scope: dict = {}
    exec(compile(code, str(README), "exec"), scope)
    scope["client"].close()
    names = {p["metric"] for p in endpoint.points()}
    assert {"cms.batch.run.started", "cms.stage.run.records", "cms.feed.up", "cms.feed.messages"} <= names
    assert endpoint.requests[0]["headers"]["authorization"] == "Bearer readme-key"
