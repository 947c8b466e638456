"""How much of a series' move its dependencies do not explain: regression-based hypothesis testing.

CIRCA (Li et al., KDD 2022, "Causal Inference-Based Root Cause Analysis for Online Service Systems with
Intervention Recognition") tests each metric against its parents in the causal graph: a regression fitted on
normal data predicts the metric from its parents' metrics, and the anomaly score is the incident's residual in
units of the residual's own spread. A metric that only inherits its parents' anomaly is predicted well and
scores low; an intervened metric (the root cause) keeps its anomaly. This module is that test for the generic
ranking, with the service graph as the causal graph (a fault in a dependency shows in what depends on it):

- every series is standardised by its robust baseline and scale (:func:`cms_dagster.rca.series.series_stats`),
  z clipped at ``Z_CLIP`` (a near-constant history gives z in the millions, which would drown a fit);
- its predictors are all series of its direct dependencies (through nodes without metrics), at the same
  times, missing points at their baseline (z = 0);
- a ridge regression (``RIDGE`` on standardised predictors, the intercept free) is fitted on the history;
  the residual is scaled by its own robust spread over the history (median, MAD x 1.4826);
- the residual's strength is the same sustained |z| as the series' own (median of each window of
  ``persistence`` incident points, all of them when fewer), capped at the series' own strength: the
  dependencies can explain a move away, never make one.

A series without dependencies, or with fewer than ``MIN_FIT_POINTS`` history points, keeps its own strength:
there is nothing to explain it with. Only series that moved are fitted (the others cannot be causes anyway),
so the cost grows with the size of the incident, not of the estate.
"""

from __future__ import annotations

from collections.abc import Iterable

import numpy as np
import pandas as pd

from cms_dagster.rca.validate import PreparedMetrics

__all__ = ["MIN_FIT_POINTS", "RIDGE", "Z_CLIP", "direct_dependencies", "residual_strength"]

MIN_FIT_POINTS = 20  # history points a series needs before its dependencies are fitted to it
RIDGE = 3.0  # ridge penalty on standardised predictors (a few points' worth of shrinkage)
Z_CLIP = 50.0  # |z| clip of the standardised values that enter a fit


def direct_dependencies(edges: Iterable[tuple[str, str]], with_metrics: set[str]) -> dict[str, set[str]]:
    """Per node, the nodes with metrics it depends on directly, looking through nodes without metrics."""
    adjacency: dict[str, list[str]] = {}
    for source, target in edges:
        adjacency.setdefault(source, []).append(target)
    out: dict[str, set[str]] = {}
    for node in adjacency:
        found: set[str] = set()
        seen: set[str] = set()
        stack = list(adjacency[node])
        while stack:
            nxt = stack.pop()
            if nxt in seen or nxt == node:
                continue
            seen.add(nxt)
            if nxt in with_metrics:
                found.add(nxt)
            else:
                stack.extend(adjacency.get(nxt, ()))
        out[node] = found
    return out


def _sustained(z: np.ndarray, width: int) -> float:
    """Largest |median| of each window of ``width`` consecutive points (the median of all when fewer)."""
    if len(z) == 0:
        return 0.0
    if len(z) < width:
        return float(abs(np.median(z)))
    windows = np.lib.stride_tricks.sliding_window_view(z, width)
    return float(np.max(np.abs(np.median(windows, axis=1))))


def residual_strength(
    prepared: PreparedMetrics,
    stats: pd.DataFrame,
    edges: Iterable[tuple[str, str]],
    start_ns: int,
    *,
    end_ns: int | None = None,
    baseline_ns: int | None = None,
    persistence: int = 5,
    fit: Iterable[int] | None = None,
) -> tuple[np.ndarray, np.ndarray]:
    """Per series (index as ``stats``), its sustained |z| once its direct dependencies' series are regressed out,
    and the share of its history's variance the dependencies explain (R², how much the fit can tell).

    ``stats`` is the output of ``series_stats`` on the same ``prepared`` metrics; ``fit`` lists the series to
    fit (default: those that moved). NaN for the series not fitted (not asked for, no dependencies with
    metrics, too short a history): they keep their own strength.
    """
    strength = stats["strength"].to_numpy(dtype=float)
    out = np.full(len(strength), np.nan)
    r2 = np.full(len(strength), np.nan)
    nodes = stats["node"].to_numpy()
    todo = np.flatnonzero(stats["moved"].to_numpy()) if fit is None else np.asarray(list(fit), dtype=np.int64)
    if len(todo) == 0:
        return out, r2
    parents = direct_dependencies(edges, set(nodes))
    by_node: dict[str, list[int]] = {}
    for i, n in enumerate(nodes):
        by_node.setdefault(n, []).append(i)

    # only the series to fit and their dependencies' series enter the matrix
    needed = np.zeros(len(nodes), dtype=bool)
    needed[todo] = True
    for n in {str(nodes[i]) for i in todo}:
        for p in parents.get(n, ()):
            needed[by_node.get(p, [])] = True
    keep = needed[prepared.series]
    if end_ns is not None:
        keep &= prepared.time <= end_ns
    if baseline_ns is not None:
        keep &= prepared.time >= start_ns - baseline_ns
    t, s, v = prepared.time[keep], prepared.series[keep], prepared.value[keep]
    col, times = pd.factorize(t, sort=True)
    times = np.asarray(times)
    base = stats["baseline"].to_numpy(dtype=float)
    scale = stats["scale"].to_numpy(dtype=float)
    z = np.clip((v - base[s]) / scale[s], -Z_CLIP, Z_CLIP)
    # one row per time, one column per series; a missing point sits at its baseline (z = 0) as a predictor
    wide = np.zeros((len(times), len(nodes)))
    present = np.zeros((len(times), len(nodes)), dtype=bool)
    wide[col, s] = z
    present[col, s] = True
    history = times < start_ns
    incident = ~history
    width = max(int(persistence), 1)

    # series of one node share their predictors, and mostly their history rows: one solve per such group
    groups: dict[str, list[int]] = {}
    for i in todo:
        groups.setdefault(str(nodes[i]), []).append(int(i))
    for node, members in groups.items():
        predictors = [j for p in parents.get(node, ()) for j in by_node.get(p, ())]
        if not predictors:
            continue
        x = wide[:, predictors]
        by_rows: dict[bytes, list[int]] = {}
        for i in members:
            fit_rows = history & present[:, i]
            if fit_rows.sum() >= MIN_FIT_POINTS:
                by_rows.setdefault(np.packbits(fit_rows).tobytes(), []).append(i)
        for same in by_rows.values():
            fit_rows = history & present[:, same[0]]
            a = np.column_stack([np.ones(int(fit_rows.sum())), x[fit_rows]])
            penalty = RIDGE * np.eye(a.shape[1])
            penalty[0, 0] = 0.0
            ys = wide[np.ix_(fit_rows, same)]
            betas = np.linalg.solve(a.T @ a + penalty, a.T @ ys)
            for k, i in enumerate(same):
                beta, y = betas[:, k], ys[:, k]
                resid = y - a @ beta
                centre = float(np.median(resid))
                spread = 1.4826 * float(np.median(np.abs(resid - centre)))
                if not spread > 0:
                    spread = float(np.std(resid))
                if not spread > 0:
                    continue  # the dependencies predict the history exactly: no noise to judge the incident by
                rows = incident & present[:, i]
                predicted = beta[0] + x[rows] @ beta[1:]
                r = (wide[rows, i] - predicted - centre) / spread
                out[i] = min(strength[i], _sustained(r, width))
                total = float(np.var(y))
                r2[i] = 1.0 - float(np.var(resid)) / total if total > 0 else 0.0
    return out, r2
