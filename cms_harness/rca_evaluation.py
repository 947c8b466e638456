"""Evaluation of root-cause ranking on simulated incidents: the reusable parts of ``benchmarks/rca_eval.py``.

- **Sampling** (:func:`sample_incidents`): from a seed, incidents of every kind at random times and on random
  targets (``candidates(ontology, kind)``), kept apart, none in the warm-up days, with a *preference* (not a
  rule) for times when the root entity is busy (:func:`is_active`).
- **Start from the detector** (:func:`search_windows`, :func:`detect_start`): the label only says *where to
  look* (RCAEval's injection window); the incident's start is the first alarm found there.
- **Evidence** (:func:`evidence_frame`, from :mod:`cms_dagster.rca.evidence`, the product's evidence step): the
  same series the detector scores, read from the warehouse marts
  as a long frame ``time, entity, metric, value`` named as the RCA domain layer reads them.
- **Rankings**: CMS (``rank_incident``, entities deduplicated by :func:`entity_order`), a max-|z| baseline
  (:func:`max_z_ranking`, BARO's robust scorer without a change-point step) and random ranking
  (:func:`random_expectation`, :func:`random_shuffles`).
- **Metrics** (:func:`ac_at_k`, :func:`avg_at_5`): AC@k is the share of incidents whose true root entity is
  among the top k (an undetected incident, rank ``None``, counts as a miss); Avg@5 is the mean of AC@1..AC@5.

Plain Python (numpy, pandas); no Dagster.
"""

from __future__ import annotations

import datetime as dt
from collections.abc import Iterable, Sequence
from dataclasses import dataclass

import numpy as np
import pandas as pd

from cms_dagster.domain.model import Ontology
from cms_dagster.otel.conventions import INCIDENT_KINDS
from cms_dagster.rca.evidence import (  # re-exported: the benchmark reads them from here
    EvidenceSettings,
    _hours,
    _utc,
    evidence_frame,
    seasonal_adjust,
)
from cms_dagster.simulate.incidents import DEFAULT_MINUTES, Incident, candidates

__all__ = [
    "ActivityIndex",
    "EvidenceSettings",
    "SamplingSettings",
    "ac_at_k",
    "avg_at_5",
    "detect_start",
    "entity_order",
    "evidence_frame",
    "is_active",
    "max_z_ranking",
    "random_expectation",
    "random_shuffles",
    "rank_of",
    "sample_incidents",
    "search_windows",
    "seasonal_adjust",
]

UTC = dt.timezone.utc
# Kinds whose fault only exists while the root is working: a job failure is its stage failing, and a stage
# that does not run in the window cannot fail, so such an incident would leave no trace anywhere (the
# simulator records no affected entity). They are always drawn among the root's busy times.
ALWAYS_BUSY = frozenset({"job_failure"})


# --- sampling ---------------------------------------------------------------------------------------------


@dataclass(frozen=True)
class SamplingSettings:
    """How incidents are drawn. ``per_kind`` of each of the 8 kinds over ``days`` from ``start``."""

    seed: int = 20270501
    start: dt.datetime = dt.datetime(2026, 11, 16, tzinfo=UTC)  # a Monday
    days: int = 30
    per_kind: int = 8
    min_gap: dt.timedelta = dt.timedelta(hours=6)  # between incident starts
    warmup: dt.timedelta = dt.timedelta(days=2)  # no incident starts before start + warmup (detector history)
    tail: dt.timedelta = dt.timedelta(hours=3)  # an incident ends at least this long before the data ends
    active_share: float = 0.8  # chance that an incident's start is drawn among its root's busy times
    step: dt.timedelta = dt.timedelta(minutes=5)  # grid of candidate start times

    def describe(self) -> str:
        return (
            f"seed {self.seed}, {self.per_kind} per kind x {len(INCIDENT_KINDS)} kinds over {self.days} days "
            f"from {self.start:%Y-%m-%d} ({self.start:%A}), none in the first {_hours(self.warmup)}, starts at "
            f"least {_hours(self.min_gap)} apart on a {self.step.total_seconds() / 60:g}-minute grid, each ending "
            f"{_hours(self.tail)} before the data ends; a start is drawn among the root's busy times with "
            f"probability {self.active_share:g}, else anywhere free (job failures: always busy)"
        )


def _stage_offsets(ontology: Ontology) -> dict[str, float]:
    """Per stage entity: expected start in minutes after its job's scheduled start (critical path)."""
    out: dict[str, float] = {}
    for job in ontology.jobs.values():
        ends: dict[str, float] = {}
        for st in job.topo_stages():
            begin = max((ends[d] for d in st.depends_on), default=1.0)
            ends[st.id] = begin + st.minutes
            out[st.entity_id] = begin
    return out


class ActivityIndex:
    """When the estate is busy: scheduled runs of every job and the expected starts of their stages.

    An entity is *active* over [t, t + minutes) when work that an incident there would touch begins in it:
    a run of a job needing the feed is scheduled (feeds), a stage using the resource is expected to start
    (databases, EKS namespaces), or the stage itself is expected to start (job_failure).
    """

    def __init__(self, ontology: Ontology, start: dt.datetime, end: dt.datetime) -> None:
        offsets = _stage_offsets(ontology)
        feed: dict[str, list[float]] = {}
        resource: dict[str, list[float]] = {}
        stage: dict[str, list[float]] = {}
        for job in ontology.jobs.values():
            # from a day before `start`: a run scheduled then may still start stages after it
            epochs = [
                t.replace(tzinfo=UTC).timestamp() for t in job.cron.times(start - dt.timedelta(days=1), end)
            ]
            for f in job.feeds:
                feed.setdefault(f"feed:{f}", []).extend(epochs)
            for st in job.stages:
                begins = [e + offsets[st.entity_id] * 60 for e in epochs]
                stage.setdefault(st.entity_id, []).extend(begins)
                for r in st.resources:
                    resource.setdefault(r, []).extend(begins)

        def sort(table: dict[str, list[float]]) -> dict[str, np.ndarray]:
            return {k: np.sort(np.asarray(v, float)) for k, v in table.items()}

        self._feed, self._resource, self._stage = sort(feed), sort(resource), sort(stage)

    def starts_for(self, kind: str, root: str) -> np.ndarray:
        """Epoch seconds (sorted) at which work that an incident of ``kind`` at ``root`` would touch begins."""
        if kind == "job_failure":
            table = self._stage
        elif root.startswith("feed:"):
            table = self._feed
        else:
            table = self._resource
        return table.get(root, np.empty(0))

    def active(self, kind: str, root: str, t: dt.datetime, minutes: float) -> bool:
        return is_active(self.starts_for(kind, root), t, minutes)


def is_active(work_starts: np.ndarray, t: dt.datetime, minutes: float) -> bool:
    """True when some work (epoch seconds, sorted) begins in [t, t + minutes)."""
    a = t.timestamp()
    i = int(np.searchsorted(work_starts, a, side="left"))
    return i < len(work_starts) and work_starts[i] < a + minutes * 60


def _busy(activity: ActivityIndex, kind: str, root: str, free: np.ndarray, minutes: float) -> np.ndarray:
    """For each free time (epoch seconds), whether work the incident would touch begins within it."""
    works = activity.starts_for(kind, root)
    i = np.searchsorted(works, free, side="left")
    busy = i < len(works)
    busy[busy] = works[i[busy]] < free[busy] + minutes * 60  # as is_active, for every free time
    return busy


def sample_incidents(ontology: Ontology, settings: SamplingSettings | None = None) -> list[Incident]:
    """Draw ``per_kind`` incidents of each kind (see :class:`SamplingSettings`), sorted by start.

    Kinds are placed in a shuffled order (``ALWAYS_BUSY`` kinds first: a crowded month may have no busy time
    left for them later); each draws its root uniformly from ``candidates(ontology, kind)``,
    then its start uniformly from the free grid times (at least ``min_gap`` from every placed start, after
    the warm-up, ending ``tail`` before the data ends), restricted with probability ``active_share`` to the
    times when the root is busy (when it has any such free time); kinds in ``ALWAYS_BUSY`` always are (on
    another root of the kind when the drawn one has no free busy time left).
    Durations are ``DEFAULT_MINUTES``.
    Raises ValueError when the period cannot hold the incidents.
    """
    s = settings or SamplingSettings()
    if s.per_kind < 1:
        raise ValueError("per_kind must be at least 1")
    rng = np.random.default_rng(s.seed)
    end = s.start + dt.timedelta(days=s.days)
    activity = ActivityIndex(ontology, s.start, end)
    first = s.start + s.warmup
    grid = np.arange(first.timestamp(), end.timestamp(), s.step.total_seconds())
    kinds = [k for k in INCIDENT_KINDS for _ in range(s.per_kind)]
    rng.shuffle(kinds)
    # kinds that must land on busy times go first, while the month still has free busy times for them
    kinds.sort(key=lambda k: k not in ALWAYS_BUSY)
    placed: list[float] = []
    out: list[Incident] = []
    gap = s.min_gap.total_seconds()
    for kind in kinds:
        roots = candidates(ontology, kind)
        root = roots[int(rng.integers(len(roots)))]
        minutes = DEFAULT_MINUTES[kind]
        fits = grid + minutes * 60 + s.tail.total_seconds() <= end.timestamp()
        if placed:
            p = np.sort(np.asarray(placed))
            j = np.searchsorted(p, grid)
            left = np.where(j > 0, grid - p[np.maximum(j - 1, 0)], np.inf)
            right = np.where(j < len(p), p[np.minimum(j, len(p) - 1)] - grid, np.inf)
            fits &= (left >= gap) & (right >= gap)
        free = grid[fits]
        if not len(free):
            raise ValueError(
                f"no room left for incident {len(out) + 1} of {len(kinds)} ({kind}): lower per_kind or min_gap, "
                "or simulate more days"
            )
        pool = free
        # drawn for every kind, so that one kind's rule does not shift the draws of the others
        busy_wanted = rng.random() < s.active_share
        if kind in ALWAYS_BUSY:
            busy = _busy(activity, kind, root, free, minutes)
            if not busy.any():  # this root has no free busy time left: another one of the kind that has
                for other in rng.permutation(roots):
                    busy = _busy(activity, kind, str(other), free, minutes)
                    if busy.any():
                        root = str(other)
                        break
                else:
                    raise ValueError(
                        f"no room left for incident {len(out) + 1} of {len(kinds)} ({kind}): no free time "
                        "while any candidate root is busy; lower per_kind or min_gap, or simulate more days"
                    )
            pool = free[busy]
        elif busy_wanted:
            busy = _busy(activity, kind, root, free, minutes)
            if busy.any():
                pool = free[busy]
        t0 = float(pool[int(rng.integers(len(pool)))])
        placed.append(t0)
        t = dt.datetime.fromtimestamp(t0, UTC)
        out.append(Incident(kind, root, t, t + dt.timedelta(minutes=minutes)))
    return sorted(out, key=lambda x: (x.start, x.kind, x.root_cause))


# --- the start, from the detector ---------------------------------------------------------------------------


def search_windows(
    incidents: Sequence[Incident],
    before: dt.timedelta = dt.timedelta(minutes=30),
    after: dt.timedelta = dt.timedelta(hours=3),
) -> list[tuple[dt.datetime, dt.datetime]]:
    """Where to look for each incident's first alarm: [label start - before, label end + after), cut at the
    next incident's window so that no two windows overlap. The label says where to look, never the start."""
    order = sorted(range(len(incidents)), key=lambda i: incidents[i].start)
    out: dict[int, tuple[dt.datetime, dt.datetime]] = {}
    for pos, i in enumerate(order):
        inc = incidents[i]
        lo, hi = inc.start - before, inc.end + after
        if pos + 1 < len(order):
            hi = min(hi, incidents[order[pos + 1]].start - before)
        out[i] = (lo, hi)
    return [out[i] for i in range(len(incidents))]


def detect_start(
    alarms: pd.DataFrame, lo: dt.datetime, hi: dt.datetime, time_column: str = "ts"
) -> pd.Series | None:
    """The first alarm row with ``lo <= time < hi`` (any series), or None when the detector saw nothing."""
    if alarms.empty:
        return None
    ts = pd.to_datetime(alarms[time_column], utc=True).reset_index(drop=True)
    inside = (ts >= _utc(lo)) & (ts < _utc(hi))
    if not inside.any():
        return None
    pos = int(ts[inside].sort_values(kind="stable").index[0])
    row = alarms.iloc[pos].copy()
    row[time_column] = ts.iloc[pos]
    return row


# --- rankings ---------------------------------------------------------------------------------------------


def entity_order(entities: Iterable[str]) -> list[str]:
    """Entities in order of first appearance (a ranked hypothesis list -> a ranked entity list)."""
    seen: dict[str, None] = {}
    for e in entities:
        seen.setdefault(e, None)
    return list(seen)


def rank_of(order: Sequence[str], truth: str) -> int | None:
    """1-based position of ``truth`` in ``order``, None when absent."""
    try:
        return list(order).index(truth) + 1
    except ValueError:
        return None


def max_z_ranking(
    frame: pd.DataFrame, start: dt.datetime | pd.Timestamp, end: dt.datetime | pd.Timestamp | None = None
) -> list[tuple[str, float]]:
    """Entities by the largest robust |z| of any of their series over [start, end] against the history
    before ``start`` (BARO's robust scorer, without its change-point step and without a graph).

    z = (x - median) / scale, scale = 1.4826 x MAD of the history; when the MAD is 0, the history's standard
    deviation; when that is 0 too, 1 % of the series' largest magnitude (so a constant 1 dropping to 0 scores
    100). Series without history or without incident points score 0. Ties: by entity name.
    """
    t0 = pd.Timestamp(start)
    t0 = t0.tz_localize("UTC") if t0.tzinfo is None else t0
    t1 = None if end is None else pd.Timestamp(end)
    if t1 is not None and t1.tzinfo is None:
        t1 = t1.tz_localize("UTC")
    f = frame.copy()
    f["time"] = pd.to_datetime(f["time"], utc=True)
    hist = f[f["time"] < t0]
    inc = f[(f["time"] >= t0) & ((f["time"] <= t1) if t1 is not None else True)]
    keys = ["entity", "metric"]
    med = hist.groupby(keys)["value"].median().rename("med")
    h = hist.join(med, on=keys)
    mad = (h["value"] - h["med"]).abs().groupby([h["entity"], h["metric"]]).median().rename("mad")
    std = hist.groupby(keys)["value"].std(ddof=0).rename("std")
    mag_h = hist.groupby(keys)["value"].agg(lambda v: np.abs(v).max()).rename("mag_h")
    mag_i = inc.groupby(keys)["value"].agg(lambda v: np.abs(v).max()).rename("mag_i")
    stats = pd.concat([med, mad, std, mag_h], axis=1).join(mag_i, how="left")
    magnitude = np.fmax(stats["mag_h"].fillna(0), stats["mag_i"].fillna(0))
    scale = np.where(
        stats["mad"] > 0,
        1.4826 * stats["mad"],
        np.where(stats["std"] > 0, stats["std"], np.where(magnitude > 0, 0.01 * magnitude, 1e-9)),
    )
    stats["scale"] = scale
    j = inc.join(stats[["med", "scale"]], on=keys, how="inner")
    j["absz"] = ((j["value"] - j["med"]) / j["scale"]).abs()
    per_entity = j.groupby("entity")["absz"].max()
    entities = sorted(set(frame["entity"]))
    scored = [(e, float(per_entity.get(e, 0.0))) for e in entities]
    scored.sort(key=lambda x: (-x[1], x[0]))
    return scored


def random_expectation(n_candidates: int, truth_present: bool, k: int) -> float:
    """Chance that a uniformly random order of ``n_candidates`` entities puts the truth in the top k."""
    if not truth_present or n_candidates <= 0:
        return 0.0
    return min(k, n_candidates) / n_candidates


def random_shuffles(
    candidate_sets: Sequence[Sequence[str] | None],
    truths: Sequence[str],
    *,
    shuffles: int = 1000,
    seed: int = 0,
    ks: Sequence[int] = (1, 2, 3, 4, 5),
) -> dict[int, float]:
    """Mean AC@k over ``shuffles`` seeded random orders of each incident's candidates (None = undetected)."""
    rng = np.random.default_rng(seed)
    hits = {k: 0.0 for k in ks}
    n = len(truths)
    if n == 0:
        return {k: 0.0 for k in ks}
    for cands, truth in zip(candidate_sets, truths, strict=True):
        if not cands or truth not in cands:
            continue
        pos = list(cands).index(truth)
        # position of the truth in each shuffle: the rank of one fixed element in a random permutation
        ranks = np.array(
            [int(np.flatnonzero(rng.permutation(len(cands)) == pos)[0]) + 1 for _ in range(shuffles)]
        )
        for k in ks:
            hits[k] += float(np.mean(ranks <= k))
    return {k: hits[k] / n for k in ks}


# --- metrics ------------------------------------------------------------------------------------------------


def ac_at_k(ranks: Sequence[int | None], k: int) -> float:
    """Share of incidents whose true root is ranked within the top ``k`` (None = not found / undetected)."""
    if not len(ranks):
        return 0.0
    return sum(1 for r in ranks if r is not None and r <= k) / len(ranks)


def avg_at_5(ranks: Sequence[int | None]) -> float:
    """Mean of AC@1 .. AC@5 (RCAEval's Avg@5)."""
    return float(np.mean([ac_at_k(ranks, k) for k in range(1, 6)]))
