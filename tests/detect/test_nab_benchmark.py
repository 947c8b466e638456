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


def test_leave_one_category_out_scores_a_category_at_a_threshold_chosen_without_it(bench) -> None:
    import numpy as np

    from cms_harness import nab_scoring

    profile = nab_scoring.DEFAULT_PROFILES["standard"]
    # category a: a sure detection in its window and a false alarm at 0.6 outside it; category b: its window
    # is seen only at 0.55. Chosen on a alone, the threshold stays above 0.6 and b's window is missed.
    a_scores = np.zeros(1000)
    a_scores[505], a_scores[800] = 0.9, 0.6
    b_scores = np.zeros(1000)
    b_scores[505] = 0.55
    corpus = [
        (nab_scoring.LabeledFile("a/one.csv", 1000, ((500, 520),)), a_scores),
        (nab_scoring.LabeledFile("b/two.csv", 1000, ((500, 520),)), b_scores),
    ]
    rows, total = bench.cross_validated(corpus, profile)
    by_cat = {r[0]: r for r in rows}
    assert by_cat["b"][3] > 0.6  # b's threshold comes from a
    assert by_cat["b"][4] < by_cat["b"][5]  # held out, b loses the window it had in sample
    assert total == pytest.approx(by_cat["a"][4] + by_cat["b"][4])
