"""The detector on synthetic series with known anomalies, and its streaming guarantees."""

from __future__ import annotations

import numpy as np
import pandas as pd
import pytest

from cms_dagster.detect import (
    CheckpointError,
    DetectorConfig,
    DetectorState,
    UnsortedTimestampsError,
    score_series,
)

N = 2000
WARM = 600  # like NAB's probationary period: the detector is still learning before this


def times(n: int = N, freq: str = "5min") -> pd.DatetimeIndex:
    return pd.date_range("2026-11-01", periods=n, freq=freq)


def noise(seed: int = 7, n: int = N) -> np.ndarray:
    return 10 + np.random.default_rng(seed).normal(0, 1, n)


def alarms(frame, start: int = WARM) -> list[tuple[int, str]]:
    idx = np.where(frame.anomaly_score[start:] >= 0.5)[0] + start
    return [(int(i), frame.kind[i]) for i in idx]


def test_spike_alarms_at_the_spike_only() -> None:
    v = noise()
    v[1500] += 12
    frame, _ = score_series(times(), v)
    assert alarms(frame) == [(1500, "spike")]
    assert frame.anomaly_score[1500] > 0.8
    assert frame.baseline[1500] == pytest.approx(10, abs=1)
    assert frame.observed[1500] == v[1500]


def test_dip_is_reported_as_dip() -> None:
    v = noise()
    v[1500] -= 12
    frame, _ = score_series(times(), v)
    assert alarms(frame) == [(1500, "dip")]


def test_level_shift_alarms_within_a_few_points() -> None:
    v = noise()
    v[1500:] += 6
    frame, _ = score_series(times(), v)
    found = alarms(frame)
    assert found and 1500 <= found[0][0] <= 1506
    assert {k for _, k in found} == {"level_shift"}
    assert all(i < 1600 for i, _ in found)  # one incident, not an alarm for the rest of the series


def test_slow_drift_is_reported_as_drift() -> None:
    v = noise()
    v[1000:] += np.arange(N - 1000) * 0.03  # a leak: +0.36 sigma an hour
    frame, _ = score_series(times(), v)
    kinds = [k for i, k in alarms(frame) if i >= 1000]
    assert "drift" in kinds
    assert all(i >= 1000 for i, _ in alarms(frame))


def test_daily_pattern_is_learned_and_a_missing_peak_is_a_dip() -> None:
    t = np.arange(N)
    v = noise() + 10 * np.sin(2 * np.pi * t / 288)
    clean, _ = score_series(times(), v)
    assert alarms(clean) == []
    v[1500:1560] = noise(8, 60)  # the day's peak does not come
    frame, _ = score_series(times(), v)
    found = alarms(frame)
    assert found[0] == (1500, "dip")


def test_flat_series_scores_zero_until_it_moves() -> None:
    v = np.full(N, 45.0)
    flat, _ = score_series(times(), v)
    assert flat.anomaly_score.max() < 1e-6
    v[1500:] = 46.0
    frame, _ = score_series(times(), v)
    assert alarms(frame)[0][0] == 1500


def test_scores_are_in_unit_interval_and_kinds_known() -> None:
    v = noise()
    v[1200] += 30
    frame, _ = score_series(times(), v)
    assert ((frame.anomaly_score >= 0) & (frame.anomaly_score <= 1)).all()
    assert set(frame.kind) <= {"spike", "dip", "level_shift", "drift", "none"}


def test_no_look_ahead_appending_points_never_changes_earlier_scores() -> None:
    v = noise()
    v[900] += 8
    v[1300:] -= 5
    full, _ = score_series(times(), v)
    for cut in (1, 650, 901, 1310):
        part, _ = score_series(times()[:cut], v[:cut])
        assert np.array_equal(part.anomaly_score, full.anomaly_score[:cut])
        assert list(part.kind) == list(full.kind[:cut])
        assert np.array_equal(part.baseline, full.baseline[:cut])


@pytest.mark.slow
def test_hourly_chunks_with_checkpoints_equal_one_pass_exactly() -> None:
    t = np.arange(N)
    v = noise() + 5 * np.sin(2 * np.pi * t / 288)
    v[1100] += 10
    v[1500:] += 4
    ts = times()
    full, full_state = score_series(ts, v)
    checkpoint: bytes | None = None
    scores, kinds, baselines = [], [], []
    for start in range(0, N, 12):  # 12 five-minute points = one hourly partition
        frame, state = score_series(ts[start : start + 12], v[start : start + 12], state=checkpoint)
        checkpoint = state.to_json()  # what the lake keeps between runs
        scores.append(frame.anomaly_score)
        kinds.extend(frame.kind)
        baselines.append(frame.baseline)
    assert np.array_equal(np.concatenate(scores), full.anomaly_score)
    assert kinds == list(full.kind)
    assert np.array_equal(np.concatenate(baselines), full.baseline)
    assert checkpoint == full_state.to_json()


def test_uneven_chunks_and_state_objects_also_match() -> None:
    v = noise(3)
    v[1700] -= 9
    ts = times()
    full, _ = score_series(ts, v)
    state = None
    parts = []
    bounds = [0, 1, 2, 17, 300, 301, 999, 1700, 1701, N]
    for a, b in zip(bounds, bounds[1:], strict=False):
        frame, state = score_series(ts[a:b], v[a:b], state=state)
        parts.append(frame.anomaly_score)
    assert np.array_equal(np.concatenate(parts), full.anomaly_score)


def test_scoring_does_not_change_the_state_passed_in() -> None:
    ts, v = times(), noise()
    _, state = score_series(ts[:100], v[:100])
    before = state.to_json()
    score_series(ts[100:200], v[100:200], state=state)
    assert state.to_json() == before


def test_checkpoint_reports_progress_and_sampling_period() -> None:
    _, state = score_series(times(50), noise(n=50))
    restored = DetectorState.from_json(state.to_json())
    assert restored.points_seen == 50
    assert restored.last_timestamp == times(50)[-1]
    assert restored.sampling_period == pd.Timedelta(minutes=5)


def test_points_not_after_the_checkpoint_are_refused() -> None:
    ts, v = times(), noise()
    _, state = score_series(ts[:100], v[:100])
    with pytest.raises(UnsortedTimestampsError, match="not after the checkpoint"):
        score_series(ts[50:150], v[50:150], state=state)


def test_checkpoint_from_other_settings_is_refused() -> None:
    _, state = score_series(times(30), noise(n=30))
    other = DetectorConfig(history=500)
    with pytest.raises(CheckpointError, match="other detector settings"):
        score_series(times(31)[30:], [1.0], state=state.to_json(), config=other)


def test_damaged_checkpoint_is_refused() -> None:
    with pytest.raises(CheckpointError, match="not valid JSON"):
        DetectorState.from_json(b"{not json")
    with pytest.raises(CheckpointError, match="version"):
        DetectorState.from_json(b'{"version": 999}')


def test_config_round_trips_and_rejects_unknown_settings() -> None:
    cfg = DetectorConfig(history=900, mean_windows=(3, 9))
    assert DetectorConfig.from_dict(cfg.to_dict()) == cfg
    with pytest.raises(ValueError, match="unknown detector settings"):
        DetectorConfig.from_dict({"histroy": 10})


def test_hourly_series_and_irregular_series_are_scored() -> None:
    hourly, _ = score_series(times(400, "1h"), noise(n=400))
    assert len(hourly) == 400
    ts = pd.to_datetime(np.cumsum(np.random.default_rng(1).integers(60, 7200, 300)), unit="s")
    irregular, state = score_series(ts, noise(n=300))
    assert len(irregular) == 300 and state.sampling_period is not None


def _scored(ts, values, chunks: int = 1) -> tuple[list, bytes]:
    """Scores, kinds and baselines of a series scored in ``chunks`` runs (checkpoints between), and the final state."""
    out, state = [], None
    for part in np.array_split(np.arange(len(ts)), chunks):
        frame, state = score_series(ts[part], values[part], state)
        out += list(zip(frame.anomaly_score.tolist(), frame.kind.tolist(), frame.baseline.tolist(), strict=True))
    return out, state.to_json()


@pytest.mark.slow  # three series of thousands of points, each scored three ways
def test_the_profiles_memo_gives_exactly_what_computing_each_point_gives(monkeypatch: pytest.MonkeyPatch) -> None:
    rng = np.random.default_rng(11)
    minutes = pd.date_range("2026-11-01", periods=3 * 1440, freq="1min")
    daily = 50 + 20 * np.sin(np.arange(len(minutes)) * 2 * np.pi / 1440) + rng.normal(0, 1, len(minutes))
    daily[2500:2530] += 40  # an incident
    # irregular times (gaps of 1 s to 20 min) and a heavy-tailed value: slots skipped, revisited, emptied
    gaps = np.cumsum(rng.integers(1, 1200, 4000)).astype("timedelta64[s]")
    irregular = pd.DatetimeIndex(np.datetime64("2026-11-02T00:00:00") + gaps)
    cases = [(minutes, daily), (irregular, rng.standard_t(2, len(irregular))), (times(3000, "1h"), noise(3, 3000))]
    memoized = [(_scored(ts, v), _scored(ts, v, chunks=7)) for ts, v in cases]

    from cms_dagster.detect.history import Profile

    def every_point(self: Profile, t_s: int) -> float | None:  # the reference: no memo
        return self.raw_uncached((t_s % self.period_s) // self.bucket_s, t_s // self.period_s)

    monkeypatch.setattr(Profile, "raw", every_point)
    for (ts, v), (one_pass, chunked) in zip(cases, memoized, strict=True):
        reference = _scored(ts, v)
        assert one_pass == reference and chunked == reference


def test_with_the_floor_from_the_error_a_constant_added_changes_no_alarm() -> None:
    # the same series in a unit with another zero (kelvin instead of Celsius): with the floor a fraction of the
    # level the large level flattens the tail and the spike fades; with it a fraction of the error it stays
    v = noise()
    v[1500] += 12  # 12 standard deviations
    moved = v + 1000.0
    error_basis = DetectorConfig(tail_floor_basis="error")
    near, _ = score_series(times(), v, config=error_basis)
    far, _ = score_series(times(), moved, config=error_basis)
    assert alarms(near) == alarms(far) == [(1500, "spike")]
    assert np.abs(near.anomaly_score - far.anomaly_score).max() < 0.01
    level_near, _ = score_series(times(), v)
    level_far, _ = score_series(times(), moved)
    assert alarms(level_near) == [(1500, "spike")] and alarms(level_far) == []  # the default: the spike is lost


def test_a_checkpoint_made_before_the_floor_basis_existed_continues_as_before() -> None:
    import orjson

    v = noise()
    first, state = score_series(times()[:1000], v[:1000])
    body = orjson.loads(state.to_json())
    del body["settings"]["tail_floor_basis"]  # what a checkpoint of the detector before the setting holds
    old = orjson.dumps(body)
    rest, _ = score_series(times()[1000:], v[1000:], state=old, config=DetectorConfig())
    whole, _ = score_series(times(), v)
    assert np.array_equal(np.concatenate([first.anomaly_score, rest.anomaly_score]), whole.anomaly_score)
