"""Detector settings: one set for every series (nothing is tuned per series)."""

from __future__ import annotations

import hashlib
import json
from dataclasses import asdict, dataclass, fields

TAIL_FLOOR_BASES = ("level", "error")


@dataclass(frozen=True)
class DetectorConfig:
    """Settings of the streaming detector. Windows count points unless the name says seconds.

    The defaults were chosen on the whole NAB subset at once (see ``benchmarks/nab.py``), never per file.
    A checkpoint records the configuration it was made with; restoring it under another configuration is
    refused (scores would silently change).
    """

    # --- baselines (expected value) ---------------------------------------------------------------
    level_window: int = 12
    """Points in the median that forms the non-seasonal baseline (recent level)."""
    daily_bucket_seconds: int = 300
    """Width of a time-of-day slot of the daily profile."""
    daily_cycles: int = 7
    """Days of history per time-of-day slot (the profile is their median)."""
    profile_neighbors: int = 1
    """Slots on each side of a profile slot whose history joins the median (smooths a noisy profile)."""
    weekly_bucket_seconds: int = 3600
    """Width of a day-of-week x hour-of-day slot of the weekly profile."""
    weekly_cycles: int = 4
    """Weeks of history per weekly slot."""
    offset_window: int = 12
    """Points in the median of recent seasonal residuals added to a seasonal profile (tracks the level)."""
    min_points_per_period: int = 12
    """A seasonal profile is only used when its period spans at least this many sampling steps."""
    model_error_alpha: float = 0.01
    """Smoothing of each baseline's absolute error; the baseline with the lowest error is used."""
    model_warmup: int = 100
    """Points a seasonal baseline must predict before it may be chosen."""
    model_switch_ratio: float = 0.9
    """Switch baselines only when the other one's error is below this fraction of the current one's."""

    # --- channels and calibration ------------------------------------------------------------------
    channels: tuple[str, ...] = ("point", "mean", "shift", "activity", "drift", "ratio")
    """Channels that score: point (|residual|), mean (rolling mean residuals), shift (recent vs earlier
    median), activity (rolling mean |residual|), drift (fast vs slow moving average), ratio (the value
    against its own time of day, multiplicatively, per point and over ``ratio_window`` points; counts
    only)."""
    mean_windows: tuple[int, ...] = (4, 12, 48)
    """Windows of the rolling mean residual (level shifts at several horizons); the point residual is
    always a channel too."""
    shift_window: int = 288
    """Points before the recent ones whose median is the reference of the level-shift channel (the recent
    median is over ``level_window`` points)."""
    ratio_offset: float = 10.0
    """Added to a count and to its time-of-day profile before the ratio channel compares them,
    ``|log((x + offset) / (profile + offset))|``: a count of a few (bad records: 1 where 0 is usual) is
    noise as a ratio, so only counts well above this move the channel much; where the time of day's
    profile stays below it, the channel does not score."""
    ratio_window: int = 4
    """The ratio channel is scored twice: the point's log ratio, and the mean of the signed log ratios of the
    last this many points (a surge that holds grows there for a few minutes, where the point channel has
    already seen its first minute)."""
    ratio_slots: int = 2
    """Daily-profile slots on each side of a point's slot that bound what its time of day may hold: the
    ratio channel compares a count with the highest of these slots' values (above) or the lowest (below),
    and sees nothing between them (a daily burst whose minute wanders within them is not news)."""
    ratio_min_days: int = 1
    """The ratio channel scores a point only when its time-of-day slot has this many earlier days."""
    ratio_floor: float = 0.01
    """Smallest tail scale of the ratio channel, in natural log units (its values are not in the series'
    units, so ``tail_floor`` does not apply)."""
    activity_window: int = 12
    """Window of the rolling mean absolute residual (bursts of spikes, variance up)."""
    drift_block_seconds: int = 3600
    """Block of the trend test for slow drifts (leaks): the test looks at the medians of blocks."""
    drift_blocks: int = 24
    """Block medians in the trend test (Mann-Kendall over 24 hourly medians: a day of climb or fall)."""
    drift_memory: int = 168
    """Blocks of trend-test history a drift must beat to alarm (a week of hours)."""
    history: int = 750
    """Points of each channel's history against which a new value is calibrated."""
    min_history: int = 100
    """A channel scores nothing until it has this much history."""
    tail_fraction: float = 0.02
    """Top fraction of a channel's history whose mean excess sets the tail beyond the largest value."""
    rank_cap: float = 2.0
    """Most decades of surprise a value can get from its rank in history alone (beyond that, only its
    excess over the largest value in history counts)."""
    tail_floor: float = 0.01
    """Smallest tail scale, as a fraction of the series' typical magnitude (flat series)."""
    tail_floor_basis: str = "level"
    """What ``tail_floor`` is a fraction of: ``level``, the recent level's absolute value plus the level
    baseline's mean absolute error (the default); ``error``, that error alone, so that adding a constant to a
    series (another unit's zero: degrees Fahrenheit, kelvin) does not change its scores."""
    tail_floor_top: float = 0.2
    """Smallest tail scale, as a fraction of the channel's largest value in history (a history whose top
    is all one value, as with quantized data, must not make the next small step look infinitely rare)."""

    # --- score -------------------------------------------------------------------------------------
    combine_top: int = 3
    """The point's surprise is the sum of its ``combine_top`` largest channel surprises (an anomaly seen by
    several channels at once outranks a record in one)."""
    score_scale: float = 6.5
    """Surprise at which the score reaches 0.5: score = s^k / (s^k + scale^k)."""
    score_steepness: float = 4.0
    """``k`` above: how sharply the score rises around the scale (any value ranks points the same)."""
    alarm_surprise: float = 6.5
    """Surprise at which a point is an alarm: it gets a kind and starts a quiet period."""
    quiet_seconds: int = 43_200
    """After an alarm, surprises are damped for this long unless they beat the alarm."""
    quiet_damping: float = 0.3
    """Factor applied to surprise during the quiet period."""

    # --- sampling ------------------------------------------------------------------------------------
    step_sample: int = 16
    """Intervals used to infer the sampling period (their median)."""

    def __post_init__(self) -> None:
        if self.tail_floor_basis not in TAIL_FLOOR_BASES:
            raise ValueError(
                f"tail_floor_basis {self.tail_floor_basis!r} is not one of {', '.join(TAIL_FLOOR_BASES)}"
            )

    def to_dict(self) -> dict:
        d = asdict(self)
        d["mean_windows"] = list(self.mean_windows)
        d["channels"] = list(self.channels)
        return d

    @classmethod
    def from_dict(cls, data: dict) -> DetectorConfig:
        known = {f.name for f in fields(cls)}
        unknown = sorted(set(data) - known)
        if unknown:
            raise ValueError(f"unknown detector settings {unknown}; known settings: {sorted(known)}")
        kwargs = dict(data)
        if "channels" in kwargs:
            kwargs["channels"] = tuple(str(x) for x in kwargs["channels"])
        if "mean_windows" in kwargs:
            kwargs["mean_windows"] = tuple(int(w) for w in kwargs["mean_windows"])
        return cls(**kwargs)

    def fingerprint(self) -> str:
        """Short stable hash of the settings, stored in checkpoints."""
        blob = json.dumps(self.to_dict(), sort_keys=True).encode()
        return hashlib.sha256(blob).hexdigest()[:16]
