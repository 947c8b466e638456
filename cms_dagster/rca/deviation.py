"""The standardised-deviation ranking: what the generic ranking falls back to when the history is too short
(and when no candidate moved surely: ``engine.rank``).

With one or two points before ``start`` there is nothing to fit a scale, a regression or a change point to: a
series' median is a guess and its spread is one difference or none. The ranking's models would then rank noise
(on two points of history every series "moves"). This module ranks the way the common baseline does, and says
so: each series' largest standardised deviation over the incident, |x − mean| / sd with the mean and the
sample standard deviation (ddof 1; 0 for a single point) of its history, sd floored at ``SD_FLOOR`` only to
avoid a division by zero, so a series whose history is flat is ordered by the size of its move in its own
units. A node scores its largest series. This is the max-|z| ranking of the PetShop paper's evaluation
(Hardt et al., CLeaR 2024) and of its dataset's evaluation script.
"""

from __future__ import annotations

import numpy as np
import pandas as pd

from cms_dagster.rca.series import window_masks
from cms_dagster.rca.validate import PreparedMetrics

__all__ = ["SD_FLOOR", "standardised_deviation"]

SD_FLOOR = 1e-9  # guards the division only: a flat history's move is ordered by its size


def standardised_deviation(
    prepared: PreparedMetrics, start_ns: int, *, end_ns: int | None = None, baseline_ns: int | None = None
) -> pd.DataFrame:
    """Per series with history and incident points: node, metric, n_history, mean, sd, z (the largest
    |x − mean| / sd over the incident), value and time (ns) of the point that reached it, and signed_z."""
    t, v, s = prepared.time, prepared.value, prepared.series
    hist, inc = window_masks(t, start_ns, end_ns=end_ns, baseline_ns=baseline_ns)
    n = len(prepared.series_node)
    count = np.bincount(s[hist], minlength=n)
    total = np.bincount(s[hist], weights=v[hist], minlength=n)
    mean = np.divide(total, count, out=np.zeros(n), where=count > 0)
    squares = np.bincount(s[hist], weights=(v[hist] - mean[s[hist]]) ** 2, minlength=n)
    sd = np.sqrt(np.divide(squares, count - 1, out=np.zeros(n), where=count > 1))
    sd = np.fmax(sd, SD_FLOOR)
    rows = np.flatnonzero(inc & (count[s] > 0))
    if len(rows) == 0:
        return pd.DataFrame(columns=["node", "metric", "n_history", "mean", "sd", "z", "signed_z", "value", "time"])
    series = s[rows]
    signed = (v[rows] - mean[series]) / sd[series]
    frame = pd.DataFrame({"series": series, "z": np.abs(signed), "signed_z": signed, "value": v[rows], "time": t[rows]})
    best = frame.loc[frame.groupby("series", sort=True)["z"].idxmax()]
    idx = best["series"].to_numpy()
    return pd.DataFrame(
        {
            "node": prepared.series_node[idx],
            "metric": prepared.series_metric[idx],
            "n_history": count[idx],
            "mean": mean[idx],
            "sd": sd[idx],
            "z": best["z"].to_numpy(),
            "signed_z": best["signed_z"].to_numpy(),
            "value": best["value"].to_numpy(),
            "time": best["time"].to_numpy(),
        }
    )
