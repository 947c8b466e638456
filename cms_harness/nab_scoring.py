"""Scoring by the rules of the Numenta Anomaly Benchmark (NAB 1.1 sweeper).

A detector's output is a score in [0, 1] per row; a row is a *detection* when its score is at or above the
threshold. The rules, for each file:

* the first ``min(floor(0.15 * rows), 750)`` rows are probationary: neither rewarded nor penalized;
* label windows (inclusive index ranges) are scored by their earliest detection: a detection at relative
  position ``p = -(right - i + 1) / width`` scores ``tpWeight * sigma(p) / sigma(-1)`` with
  ``sigma(x) = 2 / (1 + e^{5x}) - 1``, so the window's first row scores exactly ``tpWeight``; later
  detections in the same window add nothing; a window with no detection scores ``-fnWeight``;
* a detection outside every window scores ``fpWeight * sigma(d)`` with ``d = (i - right) / (width - 1)``
  measured from the right edge of the preceding window (``sigma(d) = -1`` for ``d >= 3`` and before any
  window), so false alarms just after a window cost little and distant ones cost ``fpWeight`` each;
* one threshold per profile for the whole corpus: the one that maximizes the profile's total;
* normalized score ``100 * (S - S_null) / (S_perfect - S_null)``, where the null detector emits 0.5 for
  every row, scored at its own best threshold (on a real corpus: no detection, ``-fnWeight`` per window),
  and the perfect detector detects at the start of every window (``S_perfect = tpWeight * windows``).

Pure functions over numpy arrays: no I/O except :func:`load_profiles` and :func:`load_windows`.
"""

from __future__ import annotations

import json
import math
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field
from pathlib import Path

import numpy as np

PROBATION_FRACTION = 0.15
NO_DETECTION_THRESHOLD = 1.1  # NAB's sweep starts here: "no row is a detection"

_PROBATION = -2  # window id of probationary rows
_OUTSIDE = -1  # window id of rows outside every window


@dataclass(frozen=True)
class CostProfile:
    """One NAB application profile (its cost matrix)."""

    name: str
    tp_weight: float
    fp_weight: float
    fn_weight: float


DEFAULT_PROFILES: dict[str, CostProfile] = {
    "standard": CostProfile("standard", 1.0, 0.11, 1.0),
    "reward_low_FP_rate": CostProfile("reward_low_FP_rate", 1.0, 0.22, 1.0),
    "reward_low_FN_rate": CostProfile("reward_low_FN_rate", 1.0, 0.11, 2.0),
}


def load_profiles(path: str | Path) -> dict[str, CostProfile]:
    """Read NAB's ``profiles.json`` (``{name: {"CostMatrix": {"tpWeight": ..}}}``)."""
    raw = json.loads(Path(path).read_text())
    out: dict[str, CostProfile] = {}
    for name, body in raw.items():
        cm = body["CostMatrix"]
        out[name] = CostProfile(name, float(cm["tpWeight"]), float(cm["fpWeight"]), float(cm["fnWeight"]))
    return out


def load_windows(path: str | Path) -> dict[str, list[tuple[np.datetime64, np.datetime64]]]:
    """Read NAB's ``combined_windows.json``: relative file path -> list of (start, end) timestamps."""
    raw = json.loads(Path(path).read_text())
    return {
        name: [(np.datetime64(a.replace(" ", "T")), np.datetime64(b.replace(" ", "T"))) for a, b in wins]
        for name, wins in raw.items()
    }


def scaled_sigmoid(position: float) -> float:
    """NAB's ``2 * sigmoid(-5 x) - 1``, with -1 for ``x >= 3`` (far past a window)."""
    if position >= 3.0:
        return -1.0
    return 2.0 / (1.0 + math.exp(5.0 * position)) - 1.0


def probationary_length(n_rows: int, fraction: float = PROBATION_FRACTION) -> int:
    """Rows at the start of a file that are not scored: ``min(floor(fraction * n), fraction * 5000)``."""
    return int(min(math.floor(fraction * n_rows), fraction * 5000))


def window_index_ranges(
    timestamps: np.ndarray, windows: Sequence[tuple[np.datetime64, np.datetime64]]
) -> list[tuple[int, int]]:
    """Inclusive row ranges of label windows: rows whose timestamp lies in ``[start, end]``.

    NAB's windows begin and end on rows of the file, where this equals NAB's exact-timestamp matching.
    Windows without any row are dropped.
    """
    ts = np.asarray(timestamps, dtype="datetime64[ns]")
    out: list[tuple[int, int]] = []
    for start, end in sorted(windows):
        left = int(np.searchsorted(ts, np.datetime64(start, "ns"), side="left"))
        right = int(np.searchsorted(ts, np.datetime64(end, "ns"), side="right")) - 1
        if right >= left:
            out.append((left, right))
    return out


@dataclass(frozen=True)
class LabeledFile:
    """A file of the corpus: its name, row count and label windows as inclusive row ranges."""

    name: str
    n_rows: int
    windows: tuple[tuple[int, int], ...]

    @classmethod
    def from_timestamps(
        cls,
        name: str,
        timestamps: np.ndarray,
        windows: Sequence[tuple[np.datetime64, np.datetime64]],
    ) -> LabeledFile:
        return cls(name, len(timestamps), tuple(window_index_ranges(timestamps, windows)))


def sweep_scores(
    n_rows: int,
    windows: Sequence[tuple[int, int]],
    profile: CostProfile,
    probation_fraction: float = PROBATION_FRACTION,
) -> tuple[np.ndarray, np.ndarray]:
    """What a detection at each row would score, and the row's window id (NAB's ``calcSweepScore``).

    Returns ``(weighted_score, window_id)``; window ids count windows from 0, -1 means outside every
    window and -2 probationary (not scored).
    """
    score = np.empty(n_rows, dtype=float)
    window_id = np.full(n_rows, _OUTSIDE, dtype=np.int64)
    max_tp = scaled_sigmoid(-1.0)
    wins = sorted(windows)
    nxt = 0
    cur: tuple[int, int] | None = None
    cur_id = -1
    prev_right: int | None = None
    prev_width = 0.0
    for i in range(n_rows):
        if cur is None and nxt < len(wins) and i == wins[nxt][0]:
            cur = wins[nxt]
            cur_id = nxt
            nxt += 1
        if cur is not None:
            width = float(cur[1] - cur[0] + 1)
            position = -(cur[1] - i + 1) / width
            score[i] = scaled_sigmoid(position) * profile.tp_weight / max_tp
            window_id[i] = cur_id
        else:
            if prev_right is None:
                position = 3.0
            else:
                position = abs(prev_right - i) / (prev_width - 1.0) if prev_width > 1 else 3.0
            score[i] = scaled_sigmoid(position) * profile.fp_weight
        if cur is not None and i == cur[1]:
            prev_right = i
            prev_width = float(cur[1] - cur[0] + 1)
            cur = None
    window_id[: probationary_length(n_rows, probation_fraction)] = _PROBATION
    return score, window_id


@dataclass
class FileScore:
    """One file's NAB score at a threshold."""

    name: str
    score: float
    tp: int  # windows detected
    fn: int  # windows missed
    fp: int  # detections outside windows (rows)
    detections: int


@dataclass
class ProfileResult:
    """A profile's result over the corpus."""

    profile: CostProfile
    threshold: float
    score: float
    null_score: float
    perfect_score: float
    normalized: float
    files: list[FileScore] = field(default_factory=list)


def score_file(
    anomaly_scores: np.ndarray,
    labeled: LabeledFile,
    threshold: float,
    profile: CostProfile,
    probation_fraction: float = PROBATION_FRACTION,
) -> FileScore:
    """Score one file at a fixed threshold (detection: ``anomaly_score >= threshold``)."""
    scores = np.asarray(anomaly_scores, dtype=float)
    if len(scores) != labeled.n_rows:
        raise ValueError(
            f"{labeled.name}: {len(scores)} anomaly scores for {labeled.n_rows} rows; score every row"
        )
    sweep, wid = sweep_scores(labeled.n_rows, labeled.windows, profile, probation_fraction)
    detected = (scores >= threshold) & (wid != _PROBATION)
    total = 0.0
    tp = fn = 0
    scored_windows = sorted(set(wid[wid >= 0].tolist()))
    for w in scored_windows:
        hits = detected & (wid == w)
        if hits.any():
            total += float(sweep[hits].max())
            tp += 1
        else:
            total -= profile.fn_weight
            fn += 1
    fp_rows = detected & (wid == _OUTSIDE)
    total += float(sweep[fp_rows].sum())
    return FileScore(labeled.name, total, tp, fn, int(fp_rows.sum()), int(detected.sum()))


def threshold_sweep(
    corpus: Sequence[tuple[LabeledFile, np.ndarray]],
    profile: CostProfile,
    probation_fraction: float = PROBATION_FRACTION,
) -> list[tuple[float, float]]:
    """Total score at every candidate threshold, highest threshold first (NAB's ``calcScoreByThreshold``).

    The candidates are ``1.1`` (no detection) and every distinct anomaly score; the score at threshold ``t``
    counts every row whose anomaly score is ``>= t``.
    """
    all_scores: list[np.ndarray] = []
    all_sweep: list[np.ndarray] = []
    all_wid: list[np.ndarray] = []
    n_windows = 0
    for labeled, scores in corpus:
        scores = np.asarray(scores, dtype=float)
        if len(scores) != labeled.n_rows:
            raise ValueError(
                f"{labeled.name}: {len(scores)} anomaly scores for {labeled.n_rows} rows; score every row"
            )
        sweep, wid = sweep_scores(labeled.n_rows, labeled.windows, profile, probation_fraction)
        keep = wid != _PROBATION
        gid = np.where(wid[keep] >= 0, wid[keep] + n_windows, _OUTSIDE)
        n_windows += len(labeled.windows)
        all_scores.append(scores[keep])
        all_sweep.append(sweep[keep])
        all_wid.append(gid)
    if not all_scores:
        return [(NO_DETECTION_THRESHOLD, 0.0)]
    s = np.concatenate(all_scores)
    sw = np.concatenate(all_sweep)
    wid = np.concatenate(all_wid)
    order = np.argsort(-s, kind="stable")
    scored_windows = set(wid[wid >= 0].tolist())
    best_in_window = dict.fromkeys(scored_windows, -profile.fn_weight)
    fp_total = 0.0
    result: list[tuple[float, float]] = []
    cur_threshold = NO_DETECTION_THRESHOLD
    s_sorted = s[order].tolist()
    sw_sorted = sw[order].tolist()
    wid_sorted = wid[order].tolist()
    window_total = sum(best_in_window.values())
    for value, sweep_value, w in zip(s_sorted, sw_sorted, wid_sorted, strict=True):
        if value != cur_threshold:
            result.append((cur_threshold, fp_total + window_total))
            cur_threshold = value
        if w == _OUTSIDE:
            fp_total += sweep_value
        elif sweep_value > best_in_window[w]:
            window_total += sweep_value - best_in_window[w]
            best_in_window[w] = sweep_value
    result.append((cur_threshold, fp_total + window_total))
    return result


def optimize_threshold(
    corpus: Sequence[tuple[LabeledFile, np.ndarray]],
    profile: CostProfile,
    probation_fraction: float = PROBATION_FRACTION,
) -> tuple[float, float]:
    """The threshold that maximizes the corpus total, and that total (the highest such threshold on ties)."""
    best_t, best_s = NO_DETECTION_THRESHOLD, -math.inf
    for t, sc in threshold_sweep(corpus, profile, probation_fraction):
        if sc > best_s + 1e-12:
            best_t, best_s = t, sc
    return best_t, best_s


def evaluate(
    corpus: Sequence[tuple[LabeledFile, np.ndarray]],
    profiles: Mapping[str, CostProfile] | None = None,
    probation_fraction: float = PROBATION_FRACTION,
) -> dict[str, ProfileResult]:
    """Optimize the threshold per profile, score every file at it and normalize against null and perfect."""
    profiles = dict(profiles or DEFAULT_PROFILES)
    null_corpus = [(labeled, np.full(labeled.n_rows, 0.5)) for labeled, _ in corpus]
    n_windows = sum(len(labeled.windows) for labeled, _ in corpus)
    results: dict[str, ProfileResult] = {}
    for name, profile in profiles.items():
        threshold, _ = optimize_threshold(corpus, profile, probation_fraction)
        files = [score_file(s, lab, threshold, profile, probation_fraction) for lab, s in corpus]
        total = sum(f.score for f in files)
        _, null_score = optimize_threshold(null_corpus, profile, probation_fraction)
        perfect = profile.tp_weight * n_windows
        normalized = normalize(total, null_score, perfect)
        results[name] = ProfileResult(profile, threshold, total, null_score, perfect, normalized, files)
    return results


def normalize(score: float, null_score: float, perfect_score: float) -> float:
    """``100 * (score - null) / (perfect - null)``; 0 for the null detector, 100 for the perfect one."""
    if perfect_score == null_score:
        raise ValueError("perfect and null scores are equal (no label windows?): nothing to normalize")
    return 100.0 * (score - null_score) / (perfect_score - null_score)
