"""Per-series anomaly statistics against a robust baseline, vectorised over all series at once.

For every (node, metric) series:

- baseline: the median of its history before ``start``; scale: the MAD x 1.4826. When more than half the
  history sits on one value (sparse counts, 0/1 flags) the MAD is 0 and the scale becomes the history's
  largest deviation from the median / 2.5, so a value the history already reached stays below the
  threshold; a constant history falls back to 1 % of the series' magnitude, its z capped at 10 (a first
  failure is sure, but not a thousand sigmas; with ``first_departure``, any departure beyond rounding from a
  constant history of N >= MIN_SCALE_POINTS points scores N, whose log(1 + N) is the information-theoretic
  anomaly score of a value beyond all N points).
- z: (value - baseline) / scale for each incident point (``start`` onwards).
- strength: the largest *sustained* |z|, the median z of a window of ``persistence`` consecutive incident
  points (BARO's robust scorer takes the largest point z; the window median keeps one noisy spike from
  counting as a move). Series with fewer incident points than the window (batch runs) use the median of all
  of them. ``observed`` is the median value of that strongest window.
- moved_at (onset): the earliest of (a) the start of the run of same-signed |z| >= ``onset_z`` that leads to
  the first sustained crossing of ``threshold`` and (b) the change point of a level shift (likelihood ratio
  of a shift in mean from the baseline, on z clipped at 10), never after the first crossing.
- trend: share of rising steps and least-squares slope over the incident, and the slope's significance
  against the history's noise (``trend_z``), which the domain layer uses to recognise a steady climb.

Everything is computed with segment reductions over flat arrays sorted by series: no Python loop per series.
"""

from __future__ import annotations

import numpy as np
import pandas as pd

from cms_dagster.rca.validate import PreparedMetrics

__all__ = [
    "DEFAULT_ONSET_Z",
    "DEFAULT_PERSISTENCE",
    "DEFAULT_THRESHOLD",
    "MIN_SCALE_POINTS",
    "Z_LIMIT",
    "pooled_short_strength",
    "series_stats",
    "window_masks",
]

DEFAULT_THRESHOLD = 3.0  # sustained robust |z| from which a series counts as moved
DEFAULT_PERSISTENCE = 5  # consecutive incident points a move must last (median of a window)
DEFAULT_ONSET_Z = 2.0  # |z| that a run must keep to stretch the onset back to the change's beginning
EXTREME_Z = (
    2.5  # robust z of the history's own extreme when more than half of it sits on one value (< threshold)
)
CONSTANT_Z = 10.0  # |z| of a clear departure from a constant history
FIRST_DEPARTURE = 1e-3  # share of the magnitude beyond which a departure from a constant history is not rounding
CHANGE_CLIP = 10.0  # |z| clip for the change-point estimate
MIN_SCALE_POINTS = 10  # history points a series needs before its own spread can measure a move
Z_LIMIT = 1e6  # z-scores are clipped here so that constant baselines give finite numbers
_NS_PER_HOUR = 3_600_000_000_000

COLUMNS = [
    "node",
    "metric",
    "n_history",
    "n_incident",
    "baseline",
    "scale",
    "z",
    "strength",
    "direction",
    "observed",
    "peak_at",
    "moved_at",
    "moved",
    "max_point_z",
    "incident_first",
    "incident_last",
    "incident_min",
    "incident_max",
    "incident_mean",
    "history_min",
    "history_max",
    "rise_fraction",
    "slope_per_hour",
    "trend_z",
    "step",
]


def _group_median(values: np.ndarray, groups: np.ndarray, n: int) -> np.ndarray:
    out = np.full(n, np.nan)
    if len(values):
        med = pd.Series(values).groupby(groups, sort=True).median()
        out[med.index.to_numpy()] = med.to_numpy()
    return out


def _segments(groups: np.ndarray, n: int) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """For rows sorted by group: counts per group, start row per group, and the non-empty groups."""
    counts = np.bincount(groups, minlength=n)
    starts = np.concatenate([[0], np.cumsum(counts)[:-1]])
    return counts, starts, np.flatnonzero(counts)


def window_masks(
    time: np.ndarray, start_ns: int, *, end_ns: int | None = None, baseline_ns: int | None = None
) -> tuple[np.ndarray, np.ndarray]:
    """Which rows are history (``[start - baseline_ns, start)``, all before start when None) and which are the
    incident (``[start, end]``)."""
    hist = time < start_ns
    if baseline_ns is not None:
        hist &= time >= start_ns - baseline_ns
    inc = time >= start_ns
    if end_ns is not None:
        inc &= time <= end_ns
    return hist, inc


def series_stats(
    prepared: PreparedMetrics,
    start_ns: int,
    *,
    end_ns: int | None = None,
    baseline_ns: int | None = None,
    threshold: float = DEFAULT_THRESHOLD,
    onset_z: float = DEFAULT_ONSET_Z,
    persistence: int = DEFAULT_PERSISTENCE,
    first_departure: bool = False,
) -> pd.DataFrame:
    """One row per series with its baseline, incident statistics, strength and onset (columns COLUMNS).

    History is ``[start - baseline_ns, start)`` (all of it when ``baseline_ns`` is None), the incident
    ``[start, end]``. Series without history get strength 0 (they cannot be judged); times are UTC
    Timestamps (NaT when not applicable). With ``first_departure`` (the generic ranking), any departure beyond
    rounding (FIRST_DEPARTURE of the magnitude) from a constant history of N >= MIN_SCALE_POINTS points scores
    z = N (log(1 + N) is the information-theoretic anomaly score of a value beyond all N points), not only one
    of a tenth of the magnitude, and not capped at CONSTANT_Z.
    """
    n = len(prepared.series_node)
    t, v, s = prepared.time, prepared.value, prepared.series
    hist, inc = window_masks(t, start_ns, end_ns=end_ns, baseline_ns=baseline_ns)

    # --- baseline: median, MAD, mean absolute deviation over the history ----------------------------------
    hv, hs = v[hist], s[hist]
    n_hist = np.bincount(hs, minlength=n)
    med = _group_median(hv, hs, n)
    dev = np.abs(hv - med[hs])
    mad = _group_median(dev, hs, n)
    mean_ad = np.bincount(hs, weights=dev, minlength=n) / np.maximum(n_hist, 1)
    h_min = np.full(n, np.nan)
    h_max = np.full(n, np.nan)
    if len(hv):
        _, h_start, h_nonempty = _segments(hs, n)
        h_min[h_nonempty] = np.minimum.reduceat(hv, h_start[h_nonempty])
        h_max[h_nonempty] = np.maximum.reduceat(hv, h_start[h_nonempty])

    # --- incident points ---------------------------------------------------------------------------------
    iv, is_, it = v[inc], s[inc], t[inc]
    n_inc = np.bincount(is_, minlength=n)
    # each series' own sampling step (median spacing of its points): its onset is only known to about that
    same_series = s[1:] == s[:-1]
    step_ns = np.zeros(n)
    if same_series.any():
        st = pd.Series(np.diff(t)[same_series].astype(float)).groupby(s[1:][same_series], sort=True).median()
        step_ns[st.index.to_numpy()] = st.to_numpy()
    i_counts, i_start, i_nonempty = _segments(is_, n)
    i_end = i_start + i_counts - 1
    i_min = np.full(n, np.nan)
    i_max = np.full(n, np.nan)
    i_first = np.full(n, np.nan)
    i_last = np.full(n, np.nan)
    if len(iv):
        i_min[i_nonempty] = np.minimum.reduceat(iv, i_start[i_nonempty])
        i_max[i_nonempty] = np.maximum.reduceat(iv, i_start[i_nonempty])
        i_first[i_nonempty] = iv[i_start[i_nonempty]]
        i_last[i_nonempty] = iv[i_end[i_nonempty]]
    i_mean = np.bincount(is_, weights=iv, minlength=n) / np.maximum(n_inc, 1)
    i_mean[n_inc == 0] = np.nan

    magnitude = np.fmax(np.fmax(np.abs(med), np.abs(h_max)), np.fmax(np.abs(h_min), np.abs(i_max)))
    magnitude = np.fmax(magnitude, np.abs(i_min))
    magnitude = np.nan_to_num(magnitude, nan=0.0)
    # More than half the history on one value (MAD = 0): sparse counts, flags, quantised gauges. Their spread
    # comes from the farthest the history strayed from the median, taken as EXTREME_Z robust sigmas, so a
    # value the history already reached (one restart, two missing fields) stays unremarkable; a constant
    # history falls back to 1 % of the series' magnitude, so any move from it scores about 100.
    reach = np.nan_to_num(np.fmax(h_max - med, med - h_min), nan=0.0)
    scale = np.where(
        mad > 0,
        1.4826 * mad,
        np.where(reach > 0, np.fmax(reach / EXTREME_Z, 1.2533 * mean_ad), 0.01 * magnitude),
    )
    scale = np.fmax(np.nan_to_num(scale, nan=0.0), 1e-12 * (1.0 + np.abs(np.nan_to_num(med))))

    has_base = n_hist > 0
    # a constant history has no noise to measure a move against: any clear departure from it (a tenth of the
    # series' magnitude: a first failure, a feed going down) scores CONSTANT_Z, as sure as a move gets but
    # not more telling than a large move of a noisy series
    constant = (mad == 0) & (reach == 0)
    limit = np.where(constant, CONSTANT_Z, Z_LIMIT)
    z = (iv - med[is_]) / scale[is_]
    if first_departure:
        # A history of at least MIN_SCALE_POINTS identical points (availability at 100, an error count at 0) never
        # left its value: any departure beyond rounding is a first, as sure a move as a large one. Measured
        # against 1 % of the magnitude, a 3-point drop of an availability would sit at the threshold while
        # heavy-tailed latencies elsewhere reach 10 by chance.
        # How sure: the information-theoretic anomaly score (Budhathoki et al., ICML 2022) of a value beyond every
        # one of N history points is log(N + 1), the most that N points can support; the ranking scores a series
        # log(1 + z), so such a departure's z is N (10 points: CONSTANT_Z, 600 points: 600).
        long_constant = constant & (n_hist >= MIN_SCALE_POINTS)
        first = long_constant[is_] & (np.abs(iv - med[is_]) > FIRST_DEPARTURE * magnitude[is_])
        z = np.where(first, np.sign(z) * n_hist[is_], z)
        limit = np.where(long_constant, n_hist.astype(float), limit)
    z = np.where(has_base[is_], np.clip(z, -limit[is_], limit[is_]), 0.0)

    # --- sustained z: the median z of each window of `persistence` consecutive incident points -------------
    # A move must last to count: one noisy spike cannot carry a window's median, a level shift can. Series
    # with fewer incident points than the window (batch runs) use the median of all their incident points.
    row = np.arange(len(iv), dtype=np.int64)
    big = np.int64(len(iv) + 1)
    zw = np.full(len(iv), np.nan)
    vw = np.full(len(iv), np.nan)  # the median value of the same windows, for the evidence
    width = max(int(persistence), 1)

    def window_median(x: np.ndarray) -> np.ndarray:
        windows = np.lib.stride_tricks.sliding_window_view(x, width)
        if width % 2:
            return np.partition(windows, width // 2, axis=1)[:, width // 2]
        return np.median(windows, axis=1)

    if len(iv):
        short = n_inc < width
        seg_end_row = i_end[is_]
        if len(iv) >= width:
            medians = window_median(z)
            fits = (row[: len(medians)] + width - 1) <= seg_end_row[: len(medians)]
            zw[: len(medians)] = np.where(fits, medians, np.nan)
            vw[: len(medians)] = np.where(fits, window_median(iv), np.nan)
        if short.any():
            sel = short[is_]
            grouped = pd.DataFrame({"z": z[sel], "v": iv[sel]}).groupby(is_[sel], sort=True).median()
            zw[i_start[grouped.index.to_numpy()]] = grouped["z"].to_numpy()
            vw[i_start[grouped.index.to_numpy()]] = grouped["v"].to_numpy()
    azw = np.nan_to_num(np.abs(zw), nan=-1.0)

    # --- strength: the largest sustained |z| (earliest on ties) ------------------------------------------
    strength = np.zeros(n)
    best_row = np.full(n, -1, dtype=np.int64)
    max_point = np.zeros(n)
    if len(iv):
        strength[i_nonempty] = np.maximum(np.maximum.reduceat(azw, i_start[i_nonempty]), 0.0)
        at_best = azw == strength[is_]
        best_row[i_nonempty] = np.minimum.reduceat(np.where(at_best, row, big), i_start[i_nonempty])
        max_point[i_nonempty] = np.maximum.reduceat(np.abs(z), i_start[i_nonempty])

    # --- onset: first sustained crossing, stretched back over the run of |z| >= onset_z that led to it -----
    moved = strength >= threshold
    onset_row = np.full(n, -1, dtype=np.int64)
    if len(iv):
        crossing = azw >= threshold
        first_cross = np.minimum.reduceat(np.where(crossing, row, big), i_start[i_nonempty])
        chosen = np.where(first_cross < big, first_cross, best_row[i_nonempty])
        first_in_seg = np.zeros(len(iv), dtype=bool)
        first_in_seg[i_start[i_nonempty]] = True
        # for short series the "window" is the whole incident: start from its first point past the threshold
        short_seg = n_inc[i_nonempty] < width
        if short_seg.any():
            first_point = np.minimum.reduceat(np.where(np.abs(z) >= threshold, row, big), i_start[i_nonempty])
            chosen = np.where(short_seg & (first_point < big), first_point, chosen)
        # runs of same-signed |z| >= onset_z, reset at series boundaries
        run_start = np.zeros(len(iv), dtype=np.int64)
        sign_at = np.sign(np.where(np.isnan(zw), z, zw))
        for sign in (1.0, -1.0):
            flag = (z * sign) >= onset_z
            prev = np.concatenate([[False], flag[:-1]]) & ~first_in_seg
            begins = flag & ~prev
            begin_pos = np.maximum.accumulate(np.where(begins, row, 0))
            use = flag & (sign_at == sign)
            run_start = np.where(use, begin_pos, run_start)
        in_run = (np.abs(z[chosen]) >= onset_z) & (np.sign(z[chosen]) == sign_at[chosen])
        backtracked = np.where(in_run, run_start[chosen], chosen)
        # change point of a shift in level that lasts to the end of the window (likelihood ratio of a mean
        # shift from the baseline: T_k = (sum of z from k on)^2 / (points from k on)), on z clipped so that
        # single spikes do not pull it; the earlier of the two estimates, never after the first crossing
        zc = np.clip(z, -CHANGE_CLIP, CHANGE_CLIP)
        total = np.add.reduceat(zc, i_start[i_nonempty])
        before = np.cumsum(zc) - zc  # sum of zc before each row, over all rows
        seg_offset = np.repeat(before[i_start[i_nonempty]], i_counts[i_nonempty])
        tail_sum = np.repeat(total, i_counts[i_nonempty]) - (before - seg_offset)
        tail_len = (i_end[is_] - row + 1).astype(float)
        lr = tail_sum**2 / tail_len
        lr_best = np.maximum.reduceat(lr, i_start[i_nonempty])
        at_best_lr = lr >= np.repeat(lr_best, i_counts[i_nonempty])
        change = np.minimum.reduceat(np.where(at_best_lr, row, big), i_start[i_nonempty])
        onset_row[i_nonempty] = np.minimum(np.minimum(backtracked, change), chosen)
    onset_row[~moved] = -1

    # --- trend over the incident: share of rising steps and least-squares slope ---------------------------
    rise_fraction = np.full(n, np.nan)
    slope = np.full(n, np.nan)
    trend_z = np.zeros(n)
    if len(iv):
        step_ok = np.concatenate([is_[1:] == is_[:-1], [False]])
        rises = np.bincount(is_[step_ok], weights=(np.diff(iv, append=0.0) > 0)[step_ok], minlength=n)
        steps = np.bincount(is_[step_ok], minlength=n)
        with np.errstate(invalid="ignore", divide="ignore"):
            rise_fraction = np.where(steps > 0, rises / np.maximum(steps, 1), np.nan)
            th = (it - start_ns) / _NS_PER_HOUR
            sw = np.maximum(n_inc, 1)
            mt = np.bincount(is_, weights=th, minlength=n) / sw
            dt = th - mt[is_]
            dv = iv - i_mean[is_]
            sxx = np.bincount(is_, weights=dt * dt, minlength=n)
            sxy = np.bincount(is_, weights=dt * dv, minlength=n)
            slope = np.where(sxx > 0, sxy / np.where(sxx > 0, sxx, 1.0), np.nan)
            # the slope's significance measured against the history's noise (slope / its standard error)
            trend_z = np.where((sxx > 0) & has_base, slope * np.sqrt(sxx) / scale, 0.0)

    def times(rows: np.ndarray) -> pd.DatetimeIndex:
        ok = rows >= 0
        ns = np.zeros(len(rows), dtype=np.int64)
        ns[ok] = it[rows[ok]]
        return pd.DatetimeIndex(pd.to_datetime(ns, utc=True)).where(ok, pd.NaT)

    ok = best_row >= 0
    z_best = np.zeros(n)
    z_best[ok] = zw[best_row[ok]]
    observed = np.full(n, np.nan)
    observed[ok] = vw[best_row[ok]]  # the median value of the strongest window
    return pd.DataFrame(
        {
            "node": prepared.series_node,
            "metric": prepared.series_metric,
            "n_history": n_hist,
            "n_incident": n_inc,
            "baseline": med,
            "scale": scale,
            "z": z_best,
            "strength": strength,
            "direction": np.where(z_best >= 0, "up", "down"),
            "observed": observed,
            "peak_at": times(best_row),
            "moved_at": times(onset_row),
            "moved": moved,
            "max_point_z": max_point,
            "incident_first": i_first,
            "incident_last": i_last,
            "incident_min": i_min,
            "incident_max": i_max,
            "incident_mean": i_mean,
            "history_min": h_min,
            "history_max": h_max,
            "rise_fraction": rise_fraction,
            "slope_per_hour": slope,
            "trend_z": trend_z,
            "step": pd.to_timedelta(step_ns.astype("int64"), unit="ns"),
        },
        columns=COLUMNS,
    )


def pooled_short_strength(
    prepared: PreparedMetrics,
    stats: pd.DataFrame,
    start_ns: int,
    *,
    end_ns: int | None = None,
    baseline_ns: int | None = None,
    persistence: int = DEFAULT_PERSISTENCE,
    min_points: int = MIN_SCALE_POINTS,
) -> np.ndarray:
    """Strength of the series whose history is too short for a scale of their own, from a scale shared by the
    series of the same metric name; NaN for the others (they keep ``stats["strength"]``).

    With one or two points before ``start`` a series' median is a guess and its MAD is 0 or a single
    difference: ``series_stats`` then falls back to 1 % of the magnitude, which makes every series that moved
    by a few per cent a sure move. Here each incident point's relative change from the history's median,
    (x − b) / (|x| + |b|) (bounded in [−1, 1], defined at 0), is measured against the robust spread (MAD x
    1.4826, around the median) of the same changes of every short series with the same metric name: in an
    incident most series do not move, so their changes are what "usual" means when nothing else says it.
    The strength is the same sustained |z| as ``series_stats`` (median of each window of ``persistence``
    points, of all of them when fewer).
    """
    n = len(prepared.series_node)
    out = np.full(n, np.nan)
    n_hist = stats["n_history"].to_numpy()
    short = (n_hist > 0) & (n_hist < min_points) & (stats["n_incident"].to_numpy() > 0)
    if not short.any():
        return out
    t, v, s = prepared.time, prepared.value, prepared.series
    inc = (t >= start_ns) & short[s]
    if end_ns is not None:
        inc &= t <= end_ns
    base = stats["baseline"].to_numpy(dtype=float)
    iv, is_ = v[inc], s[inc]
    denom = np.abs(iv) + np.abs(base[is_])
    change = np.divide(iv - base[is_], denom, out=np.zeros(len(iv)), where=denom > 0)
    metric = np.asarray(stats["metric"].to_numpy()[is_], dtype=object)
    frame = pd.DataFrame({"series": is_, "metric": metric, "change": change})
    centre = frame.groupby("metric")["change"].transform("median")
    spread = 1.4826 * (frame["change"] - centre).abs().groupby(frame["metric"]).transform("median")
    fallback = frame["change"].abs().groupby(frame["metric"]).transform("mean")
    spread = spread.where(spread > 0, fallback).where(lambda x: x > 0, 1.0)
    frame["z"] = frame["change"] / spread
    width = max(int(persistence), 1)
    for i, z in frame.groupby("series", sort=True)["z"]:
        values = z.to_numpy()
        if len(values) < width:
            out[i] = float(abs(np.median(values)))
        else:
            windows = np.lib.stride_tricks.sliding_window_view(values, width)
            out[i] = float(np.max(np.abs(np.median(windows, axis=1))))
    return out
