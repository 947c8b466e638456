"""NAB scoring on tiny hand-made files whose scores are worked out by hand below.

File of 20 rows: probation = floor(0.15 * 20) = 3 rows (0-2); one window on rows 10-14 (width 5).
NAB's scaled sigmoid is s(x) = 2 / (1 + e^(5x)) - 1, and a detection in a window at row i scores
tpWeight * s(-(14 - i + 1) / 5) / s(-1), so:
  row 10: s(-1.0) / s(-1) = 1 (the window's start earns exactly tpWeight)
  row 11: s(-0.8) / s(-1) = 0.964028 / 0.986614 = 0.977107
  row 12: s(-0.6) / s(-1) = 0.905148 / 0.986614 = 0.917429
A detection outside windows before any window scores -fpWeight (s(3) = -1); after the window, at row j,
fpWeight * s((j - 14) / (5 - 1)): row 16 -> s(0.5) = -0.848284 -> -0.093311 with fpWeight 0.11.
"""

from __future__ import annotations

import math

import numpy as np
import pytest

from cms_harness import nab_scoring as ns

STD = ns.DEFAULT_PROFILES["standard"]
ROW11 = 0.977107  # s(-0.8) / s(-1)
ROW12 = 0.917429  # s(-0.6) / s(-1)
LOW_FN = ns.DEFAULT_PROFILES["reward_low_FN_rate"]
FILE = ns.LabeledFile("tiny.csv", 20, ((10, 14),))


def scores_with(**rows: float) -> np.ndarray:
    s = np.zeros(20)
    for k, v in rows.items():
        s[int(k[1:])] = v
    return s


def test_scaled_sigmoid_matches_nab_values() -> None:
    assert ns.scaled_sigmoid(-1.0) == pytest.approx(0.986614, abs=1e-6)
    assert ns.scaled_sigmoid(-0.5) == pytest.approx(0.848284, abs=1e-6)
    assert ns.scaled_sigmoid(0.0) == 0.0
    assert ns.scaled_sigmoid(3.0) == -1.0


def test_probationary_period_is_15_percent_capped_at_750_rows() -> None:
    assert ns.probationary_length(20) == 3
    assert ns.probationary_length(4032) == 604
    assert ns.probationary_length(10_000) == 750


def test_detection_at_window_start_earns_the_full_tp_weight() -> None:
    fs = ns.score_file(scores_with(r10=1.0), FILE, 0.5, STD)
    assert fs.score == pytest.approx(1.0)
    assert (fs.tp, fs.fn, fs.fp) == (1, 0, 0)


def test_later_detection_in_window_earns_less() -> None:
    assert ns.score_file(scores_with(r12=1.0), FILE, 0.5, STD).score == pytest.approx(ROW12, abs=1e-6)


def test_only_the_earliest_detection_in_a_window_counts() -> None:
    both = ns.score_file(scores_with(r11=1.0, r12=1.0, r13=1.0), FILE, 0.5, STD)
    assert both.score == pytest.approx(ROW11, abs=1e-6)
    assert both.tp == 1


def test_missed_window_costs_fn_weight() -> None:
    assert ns.score_file(np.zeros(20), FILE, 0.5, STD).score == -1.0
    assert ns.score_file(np.zeros(20), FILE, 0.5, LOW_FN).score == -2.0


def test_false_positive_before_any_window_costs_fp_weight() -> None:
    fs = ns.score_file(scores_with(r5=1.0, r10=1.0), FILE, 0.5, STD)
    assert fs.score == pytest.approx(1.0 - 0.11)
    assert fs.fp == 1


def test_false_positive_after_a_window_is_scaled_by_its_distance() -> None:
    fs = ns.score_file(scores_with(r10=1.0, r16=1.0), FILE, 0.5, STD)
    assert fs.score == pytest.approx(1.0 + 0.11 * (2 / (1 + math.exp(2.5)) - 1), abs=1e-9)
    assert fs.score == pytest.approx(1.0 - 0.093311, abs=1e-6)


def test_probationary_rows_are_not_scored() -> None:
    assert ns.score_file(scores_with(r1=1.0, r10=1.0), FILE, 0.5, STD).score == pytest.approx(1.0)


def test_detection_means_score_at_or_above_threshold() -> None:
    assert ns.score_file(scores_with(r10=0.5), FILE, 0.5, STD).tp == 1
    assert ns.score_file(scores_with(r10=0.4999), FILE, 0.5, STD).tp == 0


def test_threshold_sweep_finds_the_best_threshold_by_hand() -> None:
    # rows: 12 -> 0.9 (window), 5 -> 0.8 (FP before window), 11 -> 0.3 (window, earlier)
    s = scores_with(r12=0.9, r5=0.8, r11=0.3)
    sweep = dict(ns.threshold_sweep([(FILE, s)], STD))
    assert sweep[1.1] == -1.0  # nothing detected
    assert sweep[0.9] == pytest.approx(ROW12, abs=1e-6)
    assert sweep[0.8] == pytest.approx(ROW12 - 0.11, abs=1e-6)
    assert sweep[0.3] == pytest.approx(ROW11 - 0.11, abs=1e-6)
    threshold, best = ns.optimize_threshold([(FILE, s)], STD)
    assert threshold == 0.9
    assert best == pytest.approx(ROW12, abs=1e-6)


def test_evaluate_normalizes_between_null_and_perfect() -> None:
    s = scores_with(r12=0.9, r5=0.8, r11=0.3)
    result = ns.evaluate([(FILE, s)], {"standard": STD})["standard"]
    # the null detector says 0.5 everywhere; on this tiny file its best threshold detects every row:
    # window start +1, FP rows 3-9 before the window 7 * -0.11, FP rows 15-19 after it
    # 0.11 * (s(0.25) + s(0.5) + s(0.75) + s(1.0) + s(1.25)) = 0.11 * -4.339689 = -0.477366
    assert result.null_score == pytest.approx(1 - 0.77 - 0.477366, abs=1e-6)
    assert result.perfect_score == 1.0  # one window, detected at its start
    expected = 100 * (ROW12 - result.null_score) / (1.0 - result.null_score)
    assert result.normalized == pytest.approx(expected, abs=1e-4)
    longer = ns.LabeledFile("long.csv", 2000, ((1000, 1099),))
    null_long = ns.evaluate([(longer, np.zeros(2000))], {"standard": STD})["standard"].null_score
    assert null_long == -1.0  # with many rows outside windows, the null detector's best is silence
    assert ns.normalize(-1.0, -1.0, 1.0) == 0.0
    assert ns.normalize(1.0, -1.0, 1.0) == 100.0


def test_sweep_total_equals_sum_of_files_at_the_chosen_threshold() -> None:
    rng = np.random.default_rng(0)
    files = [ns.LabeledFile("a", 300, ((100, 129), (200, 229))), ns.LabeledFile("b", 200, ())]
    corpus = [(f, rng.random(f.n_rows)) for f in files]
    threshold, best = ns.optimize_threshold(corpus, STD)
    total = sum(ns.score_file(s, f, threshold, STD).score for f, s in corpus)
    assert total == pytest.approx(best)


def test_windows_map_to_rows_by_timestamp(tmp_path) -> None:
    ts = np.arange("2026-11-01T00:00", "2026-11-01T01:40", np.timedelta64(5, "m"), dtype="datetime64[m]")
    path = tmp_path / "w.json"
    path.write_text('{"f.csv": [["2026-11-01 00:50:00.000000", "2026-11-01 01:10:00.000000"]]}')
    windows = ns.load_windows(path)
    labeled = ns.LabeledFile.from_timestamps("f.csv", ts, windows["f.csv"])
    assert labeled.windows == ((10, 14),)
    assert labeled.n_rows == 20


def test_profiles_load_from_nab_json(fixture_nab_dir) -> None:
    profiles = ns.load_profiles(fixture_nab_dir / "profiles.json")
    assert profiles == ns.DEFAULT_PROFILES


def test_wrong_number_of_scores_is_rejected() -> None:
    with pytest.raises(ValueError, match="score every row"):
        ns.score_file(np.zeros(5), FILE, 0.5, STD)
