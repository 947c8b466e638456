"""Shared fixtures: every test that touches state gets its own CMS_HOME (lake, DuckDB, DAGSTER_HOME)."""

from __future__ import annotations

import os
import signal
from collections.abc import Iterator
from pathlib import Path

import pytest

os.environ.setdefault("DO_NOT_TRACK", "1")

# A suite started in the background (`make test &`, a CI step started without job control) inherits SIGINT
# ignored. In-process Dagster maps SIGTERM to SIGINT's handler, so SIGTERM would be ignored too, and every
# process a test starts inherits that: the tests that stop a demo, `make docs` or a process group with
# SIGTERM would wait for nothing. The suite runs with Python's own handlers, however it was started.
for _sig, _handler in ((signal.SIGINT, signal.default_int_handler), (signal.SIGTERM, signal.SIG_DFL)):
    if signal.getsignal(_sig) == signal.SIG_IGN:
        signal.signal(_sig, _handler)

_CMS_VARS = [
    k
    for k in list(os.environ)
    if k.startswith(("CMS_", "SNOWFLAKE_", "OPENAI_", "OTEL_"))
    or k in ("DAGSTER_HOME", "SLACK_BOT_TOKEN", "AWS_ENDPOINT_URL")
]


@pytest.fixture
def cms_home(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Iterator[Path]:
    """A fresh embedded CMS_HOME with nothing else of CMS set in the environment."""
    for k in _CMS_VARS:
        monkeypatch.delenv(k, raising=False)
    home = tmp_path / "cms"
    home.mkdir()
    monkeypatch.setenv("CMS_HOME", str(home))
    monkeypatch.setenv("DAGSTER_HOME", str(home / "dagster"))
    (home / "dagster").mkdir()
    yield home


@pytest.fixture
def lake(cms_home: Path):
    from cms_dagster.lake import Lake
    from cms_dagster.settings import load as load_settings

    return Lake.from_settings(load_settings())


def pytest_addoption(parser: pytest.Parser) -> None:
    parser.addoption(
        "--fuzz-examples",
        type=int,
        default=120,
        help="examples per property of the receiver/processing fuzz suite (tests/ingest/test_fuzz.py); "
        "make test runs the default, e.g. --fuzz-examples 5000 for a long run",
    )
    parser.addoption(
        "--snapshot-update",
        action="store_true",
        default=False,
        help="rewrite tests/snapshots/*.json from the code (then review the diff) instead of comparing",
    )


@pytest.fixture
def fuzz_examples(request: pytest.FixtureRequest) -> int:
    return int(request.config.getoption("--fuzz-examples"))
