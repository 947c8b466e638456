"""A memory leak whose climb began before the analysis start: the view before start (rank_incident, the
memory_leak signature) on small frames."""

from __future__ import annotations

import warnings

import numpy as np
import pandas as pd
import pytest

from cms_dagster.rca import rank_incident
from cms_dagster.rca.signatures import SIGNATURES, Signals

START = pd.Timestamp("2026-11-20T20:30:00Z")
POD, DB, STAGE = "eks:prod/pricing", "rds:positions-db", "stage:eq.eod.valuation"
EDGES = [(STAGE, POD), (STAGE, DB)]


def _frame(leak: str, seed: int = 3) -> pd.DataFrame:
    """6 h of minute history and 2 h after START. The database's load jumps at START (a batch begins); the
    pod's memory is flat (``leak="none"``), climbs from 3.5 h before START and stays high until 20 min after it
    (``"through"``), or climbed and came back down an hour before START (``"over"``)."""
    rng = np.random.default_rng(seed)
    times = pd.date_range(
        START - pd.Timedelta(hours=6), START + pd.Timedelta(hours=2), freq="1min", inclusive="left"
    )
    minutes = ((times - START) / pd.Timedelta(minutes=1)).to_numpy()
    n = len(times)
    mem = 42 + rng.normal(0, 0.8, n)
    if leak != "none":
        climb = np.clip((minutes + 210) / 100.0, 0.0, 1.0)  # 42 -> 92 over 100 min from START - 3.5 h
        end = 20 if leak == "through" else -60
        mem = np.where((minutes >= -210) & (minutes < end), mem + 50 * climb + rng.normal(0, 3, n), mem)
    batch = minutes >= 0
    series = {
        (POD, "pod_memory_utilization"): mem,
        (POD, "pod_cpu_utilization"): 35 + rng.normal(0, 1.5, n),
        (POD, "pod_number_of_container_restarts"): np.zeros(n),
        (DB, "ReadIOPS"): np.where(batch, 3900.0, 560.0) + rng.normal(0, 40, n),
        (DB, "WriteIOPS"): np.where(batch, 2500.0, 290.0) + rng.normal(0, 25, n),
        (DB, "CPUUtilization"): np.where(batch, 48.0, 20.0) + rng.normal(0, 1.5, n),
    }
    return pd.concat(
        [pd.DataFrame({"time": times, "entity": e, "metric": m, "value": v}) for (e, m), v in series.items()],
        ignore_index=True,
    )


def _rank(frame: pd.DataFrame) -> list:
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        return rank_incident(frame, EDGES, START)


def test_a_leak_that_climbed_before_start_ranks_above_the_loaded_database() -> None:
    ranked = _rank(_frame("through"))
    top = ranked[0]
    assert (top.entity, top.kind) == (POD, "memory_leak"), [
        (h.entity, h.kind, round(h.score, 3)) for h in ranked[:4]
    ]
    assert top.onset is not None and top.onset < START  # the climb's beginning, not the analysis start
    assert "before the incident's start" in top.reason
    assert top.evidence[0].metric == "pod_memory_utilization"
    db = next(h for h in ranked if h.entity == DB)
    assert db.score < top.score / 2


@pytest.mark.parametrize("leak", ["none", "over"])
def test_no_leak_from_a_flat_pod_or_a_climb_that_ended_before_start(leak: str) -> None:
    ranked = _rank(_frame(leak))
    assert ranked[0].entity == DB, [(h.entity, h.kind, round(h.score, 3)) for h in ranked[:4]]
    leaks = [h for h in ranked if h.kind == "memory_leak"]
    assert all("before the incident's start" not in h.reason for h in leaks)
    assert all(h.score < ranked[0].score / 2 for h in leaks)


def _row(**kw: float) -> dict:
    base = {
        "baseline": 42.0,
        "scale": 1.0,
        "z": 0.0,
        "trend_z": 0.0,
        "rise_fraction": 0.5,
        "incident_last": 42.0,
        "incident_max": 43.0,
        "moved_at": pd.NaT,
    }
    return base | kw


def test_signature_takes_the_view_before_start_only_when_it_fits_better_and_is_still_high() -> None:
    sig = SIGNATURES["memory_leak"]
    now = Signals({"pod_memory_utilization": _row(z=1.0, trend_z=-30.0)}, 3.0)
    climbing = _row(
        z=40.0,
        trend_z=50.0,
        rise_fraction=0.55,
        incident_last=90.0,
        incident_max=95.0,
        moved_at=START - pd.Timedelta(hours=3),
    )
    before = Signals({"pod_memory_utilization": climbing}, 3.0)
    m = sig(now, {"before": before})
    assert m.before and m.match > 0.8
    assert "climbing since 2026-11-20 17:30" in m.reason
    began_earlier = Signals(
        {"pod_memory_utilization": climbing | {"view_from": START - pd.Timedelta(hours=3)}}, 3.0
    )
    assert "already climbing at 2026-11-20 17:30" in sig(now, {"before": began_earlier}).reason

    back_down = Signals({"pod_memory_utilization": climbing | {"incident_last": 43.0}}, 3.0)
    assert not sig(now, {"before": back_down}).before

    leak_now = Signals(
        {"pod_memory_utilization": _row(z=40.0, trend_z=50.0, rise_fraction=0.6, incident_max=95.0)}, 3.0
    )
    m_now = sig(leak_now, {"before": before})
    assert not m_now.before and m_now.match == pytest.approx(1.0)
    assert sig(now, {}).match < 0.1
