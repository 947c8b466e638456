"""benchmarks/nab.py runs end to end on the small fixture corpus (never on the shared NAB data)."""

from __future__ import annotations

import importlib.util
from pathlib import Path

import pytest

REPO = Path(__file__).resolve().parents[2]


@pytest.fixture
def bench():
    spec = importlib.util.spec_from_file_location("nab_benchmark", REPO / "benchmarks" / "nab.py")
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module


def test_benchmark_prints_three_normalized_scores_and_speed(bench, fixture_nab_dir, tmp_path, capsys) -> None:
    assert bench.main(["--nab-dir", str(fixture_nab_dir), "--jobs", "1", "--write-results", str(tmp_path)]) == 0
    out = capsys.readouterr().out
    assert "3 files, 3600 rows, 3 windows" in out
    for profile in ("standard", "reward_low_FP_rate", "reward_low_FN_rate"):
        line = next(x for x in out.splitlines() if x.startswith(profile))
        normalized = float(line.split()[-1])
        assert 50 < normalized <= 100  # the fixture's spike, shift and dip are found
    assert "points/s" in out and "series/s" in out
    assert (tmp_path / "synthetic" / "dip.csv").exists()


def test_benchmark_reads_cms_nab_dir(bench, fixture_nab_dir, monkeypatch) -> None:
    monkeypatch.setenv("CMS_NAB_DIR", str(fixture_nab_dir))
    assert bench.default_nab_dir() == fixture_nab_dir


def test_benchmark_explains_a_missing_corpus(bench, tmp_path, capsys) -> None:
    assert bench.main(["--nab-dir", str(tmp_path), "--jobs", "1"]) == 1
    assert "set CMS_NAB_DIR" in capsys.readouterr().err
