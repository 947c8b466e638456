from __future__ import annotations

from pathlib import Path

import pytest

FIXTURE_NAB = Path(__file__).resolve().parents[1] / "fixtures" / "nab"


@pytest.fixture
def fixture_nab_dir() -> Path:
    """The small NAB-layout fixture (synthetic series, windows, profiles) inside the repository."""
    return FIXTURE_NAB
