"""The streaming detector: one object per series, fed one point at a time, serializable at any point.

How a point is scored (all from the points before it, and the point itself):

1. **Baselines.** Up to three predictions of the value: the median of the last few points (recent level);
   a daily profile (median of the same time-of-day slot over the last days) plus the median of its
   recent residuals (so it follows the level); the same for a weekly profile (day-of-week x hour). Each
   baseline's absolute error is smoothed; the one with the lowest error is used (with hysteresis). A
   profile is only considered once its period spans enough sampling steps (inferred from the timestamps).
2. **Channels.** From the residual ``r = value - baseline``: the point residual ``|r|`` (spikes and dips),
   rolling means of ``r`` over a few windows, the gap between the median of the last points and the
   median of the day before them (level shifts; robust to spikes), the rolling mean of ``|r|`` (bursts,
   variance) and the gap between a fast and a slow moving average of the value (drifts). On a series of
   counts (every value so far a non-negative integer, decided from the values), also the ratio channel,
   per point and over a few points: ``log((x + 10) / (hi + 10))`` above ``hi``, ``log((x + 10) / (lo + 10))``
   below ``lo``, the highest and lowest of the daily profile's slots around the time of day (no level
   offset) and the weekly profile's value; the noise of a count grows with its level, so a move that is
   large for the night but small against the day's noise shows there. A point that alarms is not learned
   by the ratio channel's calibration. Apart from the channels, a trend test on hourly medians (Mann-Kendall)
   catches slow steady climbs (leaks).
3. **Calibration.** Each channel's value is compared with that channel's own recent history: the surprise
   is ``-log10`` of the share of history at least as large; beyond the largest value seen, the tail is
   extrapolated exponentially with the mean excess of the top of the history as scale. Surprises are
   therefore comparable across series of any unit and noise level, so one threshold fits all.
4. **Score.** The point's surprise ``s`` is the sum of its largest few channel surprises (corroboration:
   an anomaly moves several channels at once, noise breaks a record in one), or the trend test's when
   larger. It becomes ``s^k / (s^k + scale^k)`` in [0, 1], 0.5 at the alarm level. After an alarm,
   surprises are damped for a quiet period unless they beat the alarm (one incident, one alarm).

Determinism: plain Python floats and integers, no randomness, histories kept as bounded rings whose
sorted mirrors are rebuilt exactly on restore; a state restored from its JSON continues bit-for-bit.
"""

from __future__ import annotations

import math

from .config import DetectorConfig
from .history import NS, Profile, Ring, Tail, Trend

STATE_VERSION = 2
DAY_S = 86_400
WEEK_S = 7 * DAY_S

KINDS = ("spike", "dip", "level_shift", "drift", "none")


class StreamingDetector:
    """Scores one series point by point. Use :meth:`update`; save with :meth:`to_dict`."""

    def __init__(self, config: DetectorConfig | None = None) -> None:
        c = self.config = config or DetectorConfig()
        self.n = 0
        self.last_ts: int | None = None
        self.diffs: list[int] = []
        self.step_ns: int | None = None
        self.level = Ring(c.level_window, True)
        self.level_err = [0.0, 0.0]
        self.profiles = [
            Profile(
                "daily", DAY_S, c.daily_bucket_seconds, c.daily_cycles, c.offset_window, c.profile_neighbors
            ),
            Profile(
                "weekly",
                WEEK_S,
                c.weekly_bucket_seconds,
                c.weekly_cycles,
                c.offset_window,
                c.profile_neighbors,
            ),
        ]
        self.selected = "level"
        w_max = max(max(c.mean_windows, default=1), c.activity_window)
        self.resid = Ring(w_max, False)
        self.sums = [0.0] * len(c.mean_windows)
        self.abs_sum = 0.0
        self.ema = [0.0, 0.0]  # fast, slow moving averages of the value (drift)
        self.ema_n = 0
        # level-shift channel, per baseline (the value, or its deviation from each seasonal profile): median of
        # the last level_window points vs median of the shift_window points before them
        self.shift = {
            name: (Ring(c.level_window, True), Ring(c.shift_window, True))
            for name in ("level", *(p.name for p in self.profiles))
        }
        self.channel_names = [
            "point",
            *(f"mean{w}" for w in c.mean_windows),
            "shift",
            "activity",
            "drift",
            "ratio",
            f"ratio{c.ratio_window}",
        ]
        self.log_ratios = Ring(c.ratio_window, False)  # signed log ratios of the last points
        self.counts = True  # every value so far a non-negative integer (the ratio channel's series)
        self.tails = [Tail(c.history) for _ in self.channel_names]
        groups = [
            "mean" if n.startswith("mean") else "ratio" if n.startswith("ratio") else n
            for n in self.channel_names
        ]
        self.active = [g in c.channels for g in groups]
        self.surprises = [0.0] * len(self.channel_names)  # of the last point, per channel
        self.trend = Trend(c.drift_block_seconds, c.drift_blocks, c.drift_memory)
        self.alarm_ts: int | None = None
        self.alarm_s = 0.0

    # ------------------------------------------------------------------------------------------
    def _infer_step(self, ts: int) -> None:
        if self.last_ts is None or self.step_ns is not None or ts <= self.last_ts:
            return
        self.diffs.append(ts - self.last_ts)
        if len(self.diffs) >= self.config.step_sample:
            d = sorted(self.diffs)
            self.step_ns = d[len(d) // 2]

    def _eligible(self, p: Profile) -> bool:
        step = self.step_ns
        return step is not None and p.period_s * NS >= self.config.min_points_per_period * step

    def update(self, ts: int, x: float) -> tuple[float, str, float, str]:
        """Score one point (``ts`` in integer nanoseconds, after the previous point).

        Returns ``(score, kind, baseline, channel)``.
        """
        c = self.config
        self._infer_step(ts)
        t_s = ts // NS

        # 1. baselines -----------------------------------------------------------------------------
        preds: dict[str, float] = {}
        raws: list[float | None] = []
        if len(self.level):
            preds["level"] = self.level.median()
        for p in self.profiles:
            raw = p.raw(t_s) if self._eligible(p) else None
            raws.append(raw)
            if raw is not None:
                preds[p.name] = raw + (p.offsets.median() if len(p.offsets) else 0.0)
        baseline = preds.get(self.selected, preds.get("level", x))
        r = x - baseline

        # errors and selection for the next point
        a = c.model_error_alpha
        b = 1.0 - a
        if "level" in preds:
            e = self.level_err
            e[0] = b * e[0] + a * abs(x - preds["level"])
            e[1] = b * e[1] + a
        for p in self.profiles:
            if p.name in preds:
                p.err_num = b * p.err_num + a * abs(x - preds[p.name])
                p.err_den = b * p.err_den + a
                p.count += 1

        # 2. channels --------------------------------------------------------------------------------
        old_len = len(self.resid)
        buf, pos, cap = self.resid.buf, self.resid.pos, self.resid.cap
        for i, w in enumerate(c.mean_windows):
            if old_len >= w:  # the value leaving the window of the last w residuals
                self.sums[i] -= buf[(pos + old_len - w) % cap]
            self.sums[i] += r
        aw = c.activity_window
        if old_len >= aw:
            self.abs_sum -= abs(buf[(pos + old_len - aw) % cap])
        self.abs_sum += abs(r)
        values = [abs(r)]
        self.resid.push(r)
        cnt = len(self.resid)
        if self.n % 1024 == 1023:  # re-add exactly now and then (no drift of running sums)
            ordered = self.resid.ordered()
            self.sums = [math.fsum(ordered[-w:]) for w in c.mean_windows]
            self.abs_sum = math.fsum(abs(v) for v in ordered[-c.activity_window :])
        for i, w in enumerate(c.mean_windows):
            values.append(abs(self.sums[i]) / min(w, cnt))
        for name, raw in (
            ("level", 0.0),
            *((p.name, raw) for p, raw in zip(self.profiles, raws, strict=True)),
        ):
            if raw is not None:
                short, long_ = self.shift[name]
                old = short.push(x - raw)
                if old is not None:
                    long_.push(old)
        short, long_ = self.shift[self.selected]
        values.append(abs(short.median() - long_.median()) if len(long_) else 0.0)
        values.append(self.abs_sum / min(c.activity_window, cnt))
        values.append(self._drift(x))
        if self.counts and not (x >= 0 and x == math.floor(x)):
            self.counts = False
        # the daily profile's values around this time of day (no level offset), and the weekly profile's
        near = (
            self.profiles[0].around(t_s, c.ratio_slots, c.ratio_min_days)
            if self.counts and raws[0] is not None
            else []
        )
        lr = 0.0
        expected = [*near, *(raw for raw in raws[1:] if raw is not None)] if near else []
        if expected and max(expected) < c.ratio_offset:
            near = []  # a count of a few at this time of day (bad records): a ratio of it is noise
        if near:
            off = c.ratio_offset
            hi, lo = max(expected), min(expected)
            lr = (
                math.log((x + off) / (hi + off))
                if x > hi
                else math.log((x + off) / (lo + off))
                if x < lo
                else 0.0
            )
            self.log_ratios.push(lr)
            recent = self.log_ratios.ordered()
            values.append(abs(lr))
            values.append(abs(math.fsum(recent)) / len(recent))
        else:
            values.extend((0.0, 0.0))

        # 3. calibration -----------------------------------------------------------------------------
        typical = abs(preds.get("level", x))
        err = self.level_err[0] / self.level_err[1] if self.level_err[1] else 0.0
        floor = c.tail_floor * (err if c.tail_floor_basis == "error" else typical + err) + 1e-12
        surprises = self.surprises
        ratio_i = len(self.tails) - 2  # the two ratio channels are the last
        for i, (tail, v) in enumerate(zip(self.tails, values, strict=True)):
            surprises[i] = (
                tail.surprise(
                    v,
                    c.ratio_floor if i >= ratio_i else floor,
                    c.min_history,
                    c.tail_fraction,
                    c.tail_floor_top,
                    c.rank_cap,
                )
                if self.active[i] and (near or i < ratio_i)
                else 0.0
            )
            if i < ratio_i:
                tail.push(float(f"{v:.6g}"))  # 6 significant digits are plenty, and keep checkpoints small
        ranked = sorted(range(len(surprises)), key=surprises.__getitem__, reverse=True)
        best_i = ranked[0]
        total = math.fsum(surprises[i] for i in ranked[: c.combine_top])
        seasonal = 0.0  # the trend test looks at the value without the chosen profile's shape
        for p, raw in zip(self.profiles, raws, strict=True):
            if p.name == self.selected and raw is not None:
                seasonal = raw
        trend_s, _ = self.trend.update(ts, x - seasonal)
        drifting = trend_s > total
        if drifting:
            total = trend_s

        # 4. score, with a quiet period after alarms ----------------------------------------------------
        eff = total
        alarmed = False  # this point starts an alarm or beats the last one
        if self.alarm_ts is not None and ts - self.alarm_ts <= c.quiet_seconds * NS:
            if total > self.alarm_s:
                self.alarm_ts, self.alarm_s = ts, total
                alarmed = total >= c.alarm_surprise
            else:
                eff = total * c.quiet_damping
        elif total >= c.alarm_surprise:
            self.alarm_ts, self.alarm_s = ts, total
            alarmed = True
        # The ratio channels learn a point unless it alarmed: a surge that keeps growing for a few minutes is
        # judged against the night's noise at each of them, not against its own first minute (which the
        # point-in-units channels learn, so they see the rest of it as ordinary).
        if near and not alarmed:  # (a series that is not a count, or has no days before: no history)
            for tail, v in zip(self.tails[ratio_i:], values[ratio_i:], strict=True):
                tail.push(float(f"{v:.6g}"))
        score = 1.0 / (1.0 + (c.score_scale / eff) ** c.score_steepness) if eff > 0 else 0.0
        channel = "trend" if drifting else self.channel_names[best_i]
        kind = "none"
        if total >= c.alarm_surprise:
            if channel in ("drift", "trend"):
                kind = "drift"
            elif channel == "point":
                kind = "spike" if r > 0 else "dip"
            elif channel == "activity":
                kind = "spike"
            elif channel.startswith("ratio"):
                kind = "spike" if lr > 0 else "dip"
            else:
                kind = "level_shift"

        # 5. learn the point ---------------------------------------------------------------------------
        self.level.push(x)
        for p, raw in zip(self.profiles, raws, strict=True):
            if raw is not None:
                p.offsets.push(x - raw)
            if self._eligible(p) or self.step_ns is None:
                p.update(t_s, x)
        self._select()  # the baseline for the next point
        self.last_ts = ts
        self.n += 1
        return score, kind, baseline, channel

    def _select(self) -> None:
        c = self.config
        errs: dict[str, float] = {}
        if self.level_err[1]:
            errs["level"] = self.level_err[0] / self.level_err[1]
        for p in self.profiles:
            if p.count >= c.model_warmup and p.err_den:
                errs[p.name] = p.err_num / p.err_den
        if not errs:
            return
        cur = errs.get(self.selected)
        best = min(errs, key=lambda k: (errs[k], k))
        if cur is None or errs[best] < c.model_switch_ratio * cur:
            if best != self.selected:
                self.trend.restart()  # its block medians were of the other baseline's deseasonalized value
            self.selected = best

    def _drift(self, x: float) -> float:
        step = self.step_ns
        if step is None:
            return 0.0
        per_day = max(DAY_S * NS / step, 4.0)
        fast = 1.0 - 0.5 ** (4.0 / per_day)  # half-life a quarter day
        slow = 1.0 - 0.5 ** (1.0 / per_day)  # half-life a day
        e = self.ema
        if self.ema_n == 0:
            e[0] = e[1] = x
        else:
            e[0] += fast * (x - e[0])
            e[1] += slow * (x - e[1])
        self.ema_n += 1
        return abs(e[0] - e[1])

    # ------------------------------------------------------------------------------------------
    def to_dict(self) -> dict:
        return {
            "version": STATE_VERSION,
            "config": self.config.fingerprint(),
            "n": self.n,
            "last_ts": self.last_ts,
            "diffs": self.diffs,
            "step_ns": self.step_ns,
            "level": self.level.ordered(),
            "level_err": self.level_err,
            "profiles": [p.to_dict() for p in self.profiles],
            "selected": self.selected,
            "resid": self.resid.ordered(),
            "sums": self.sums,
            "abs_sum": self.abs_sum,
            "shift": {k: [a.ordered(), b.ordered()] for k, (a, b) in self.shift.items()},
            "ema": self.ema,
            "ema_n": self.ema_n,
            "tails": [t.ring.ordered() for t in self.tails],
            "trend": self.trend.to_dict(),
            "alarm": [self.alarm_ts, self.alarm_s],
            "counts": self.counts,
            "log_ratios": self.log_ratios.ordered(),
        }

    @classmethod
    def from_dict(cls, d: dict, config: DetectorConfig | None = None) -> StreamingDetector:
        det = cls(config)
        c = det.config
        det.n = d["n"]
        det.last_ts = d["last_ts"]
        det.diffs = list(d["diffs"])
        det.step_ns = d["step_ns"]
        det.level = Ring(c.level_window, True, d["level"])
        det.level_err = list(d["level_err"])
        for p, pd_ in zip(det.profiles, d["profiles"], strict=True):
            p.load(pd_)
        det.selected = d["selected"]
        det.resid = Ring(det.resid.cap, False, d["resid"])
        det.sums = list(d["sums"])
        det.abs_sum = d["abs_sum"]
        det.shift = {
            k: (Ring(c.level_window, True, a), Ring(c.shift_window, True, b))
            for k, (a, b) in d["shift"].items()
        }
        det.ema = list(d["ema"])
        det.ema_n = d["ema_n"]
        det.tails = [Tail(c.history, v) for v in d["tails"]]
        det.trend.load(d["trend"])
        det.alarm_ts, det.alarm_s = d["alarm"]
        det.counts = d["counts"]
        det.log_ratios = Ring(c.ratio_window, False, d["log_ratios"])
        return det
