"""benchmarks/volume_spikes.py: the count against its own time of day, and the lone-entity rule it applies."""

from __future__ import annotations

import numpy as np
import pandas as pd
import pytest

from tests.benchmark_modules import benchmark_module


@pytest.fixture
def bench():
    with benchmark_module("volume_spikes") as module:
        yield module


def test_ratio_compares_a_point_with_the_same_time_of_day_before(bench) -> None:
    """A day of 4 steps (night 9, day 99) repeated; on day 4 the night point surges to 49: its ratio is 5,
    the day points keep ratio 1 though they are 11 times the night, and the first day has no day before."""
    x = np.array([9.0, 99.0, 99.0, 9.0] * 4)
    x[12] = 49.0
    r = bench.previous_days_ratio(x, per_day=4, days=3, half_width=0)
    assert r[:4].tolist() == [1.0, 1.0, 1.0, 1.0]
    assert r[12] == pytest.approx(5.0)
    assert np.allclose(np.delete(r, 12), 1.0)


def test_a_sure_score_counts_only_when_the_series_alarms_again_within_30_minutes(bench) -> None:
    t = pd.date_range("2026-11-16", periods=60, freq="min")
    s = pd.Series(0.0, index=t)
    s.iloc[5] = 0.995  # alarms again 20 minutes later: confirmed
    s.iloc[25] = 0.6
    s.iloc[40] = 0.999  # alarms again 31 minutes later: outside the data, not confirmed
    assert bench.confirmed_at(s) == [t[5]]


def test_a_directory_that_is_not_a_build_is_refused_in_one_line(bench, tmp_path, capsys) -> None:
    assert bench.main([str(tmp_path)]) == 2
    assert "is not a kept incidents_eval build" in capsys.readouterr().err
