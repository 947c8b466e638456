"""The ratio channel: a count judged against its own time of day, multiplicatively."""

from __future__ import annotations

import numpy as np
import pandas as pd

from cms_dagster.detect import DetectorConfig, score_series

PER_DAY = 288  # five-minute points
DAYS = 8
N = PER_DAY * DAYS
NIGHT_SURGE = 5 * PER_DAY + 12 * 2  # day 6, 02:00
WITHOUT_RATIO = DetectorConfig(channels=("point", "mean", "shift", "activity", "drift"))


def times(n: int = N) -> pd.DatetimeIndex:
    return pd.date_range("2026-11-02", periods=n, freq="5min")


def message_counts(seed: int = 11) -> np.ndarray:
    """Busy by day (about 3,700), quiet at night (about 150); the noise grows with the level."""
    t = np.arange(N) % PER_DAY
    level = 150 + 3550 * np.clip(np.sin(np.pi * (t - 84) / 168), 0, None) ** 2  # 07:00 to 21:00
    rng = np.random.default_rng(seed)
    return np.round(level * (1 + rng.normal(0, 0.08, N))).clip(0)


def sure_and_again(scores: np.ndarray, start: int, stop: int) -> bool:
    """A 0.99 in [start, stop) followed by another alarm within 6 points (the rule that confirms a lone
    series)."""
    for i in range(start, stop):
        if scores[i] >= 0.99 and (scores[i + 1 : i + 7] >= 0.5).any():
            return True
    return False


def test_a_surge_at_night_is_sure_and_alarms_again_only_with_the_ratio_channel() -> None:
    v = message_counts()
    v[NIGHT_SURGE : NIGHT_SURGE + 24] *= 4.5  # 150 -> about 700 for two hours
    with_ratio, _ = score_series(times(), v)
    without, _ = score_series(times(), v, config=WITHOUT_RATIO)
    assert sure_and_again(with_ratio.anomaly_score, NIGHT_SURGE, NIGHT_SURGE + 3)
    assert with_ratio.kind[NIGHT_SURGE] == "spike"
    assert not sure_and_again(without.anomaly_score, NIGHT_SURGE, NIGHT_SURGE + 24)


def test_the_days_own_rhythm_is_not_news_to_the_ratio_channel() -> None:
    v = message_counts()
    frame, _ = score_series(times(), v)
    late = frame.anomaly_score[2 * PER_DAY :]  # once the slots have days before them
    assert (late < 0.99).all()


def test_a_series_that_is_not_a_count_scores_as_without_the_channel() -> None:
    v = message_counts() + 0.25  # not integers: not a count
    v[NIGHT_SURGE : NIGHT_SURGE + 24] *= 4.5
    with_ratio, state = score_series(times(), v)
    without, _ = score_series(times(), v, config=WITHOUT_RATIO)
    assert np.array_equal(with_ratio.anomaly_score, without.anomaly_score)
    assert list(with_ratio.kind) == list(without.kind)
    # a count that stops being one: the channel stops at the first fraction
    c = message_counts()
    c[3 * PER_DAY :] += 0.5
    c[NIGHT_SURGE : NIGHT_SURGE + 24] *= 4.5
    turned, _ = score_series(times(), c)
    plain, _ = score_series(times(), c, config=WITHOUT_RATIO)
    assert np.array_equal(
        turned.anomaly_score[3 * PER_DAY + 1 :] > 0, plain.anomaly_score[3 * PER_DAY + 1 :] > 0
    )
    assert not sure_and_again(turned.anomaly_score, NIGHT_SURGE, NIGHT_SURGE + 24)


def test_partitions_with_checkpoints_give_the_scores_of_one_run() -> None:
    v = message_counts(5)
    v[NIGHT_SURGE : NIGHT_SURGE + 24] *= 4.5
    ts = times()
    full, full_state = score_series(ts, v)
    checkpoint: bytes | None = None
    parts = []
    for start in range(0, N, 36):  # three-hour partitions
        frame, state = score_series(ts[start : start + 36], v[start : start + 36], state=checkpoint)
        checkpoint = state.to_json()
        parts.append(frame.anomaly_score)
    assert np.array_equal(np.concatenate(parts), full.anomaly_score)
    assert checkpoint == full_state.to_json()
