"""Shaping the marts' rows into what the dashboard's views show: feed states per time bucket, the Gantt
rows of batch runs with their projected ends, the state of each stage of a run, the stage DAG's layout and
the run's bottleneck.

Plain Python (pandas); no Streamlit, no SQL.
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np
import pandas as pd

from cms_dagster.domain.model import Job, Ontology

# A feed is "delayed" when its latency (p95 of the bucket's minutes) is above this multiple of its typical
# latency (the ontology's latency_ms): the latency SLA marked on the heat map.
LATENCY_SLA_FACTOR = 2.0
# feed states, best to worst; a bucket takes the worst state of its minutes
FEED_STATES = ("ok", "delayed", "stale", "down")
NO_DATA = "no data"
STATE_RANK = {NO_DATA: -1, "ok": 0, "delayed": 1, "stale": 2, "down": 3}


def bucket_for(span: pd.Timedelta) -> pd.Timedelta:
    """The availability grid's bucket for a time range: about 60-170 columns."""
    if span <= pd.Timedelta(hours=6):
        return pd.Timedelta(minutes=5)
    if span <= pd.Timedelta(hours=24):
        return pd.Timedelta(minutes=15)
    if span <= pd.Timedelta(days=7):
        return pd.Timedelta(hours=1)
    return pd.Timedelta(hours=6)


def latency_sla_ms(ontology: Ontology) -> dict[str, float]:
    return {fid: float(f.latency_ms) * LATENCY_SLA_FACTOR for fid, f in ontology.feeds.items()}


def feed_states_from_minutes(minutes: pd.DataFrame, ontology: Ontology) -> pd.Series:
    """Per fct_feed_status row: down (reported down), stale (data older than the staleness SLA), delayed
    (latency above the latency SLA), ok; 'no data' when no up/down heartbeat was seen."""
    sla = minutes["feed_id"].map(latency_sla_ms(ontology)).astype(float)
    up = minutes["is_up"]
    state = np.select(
        [up.isna(), up.eq(False), minutes["is_stale"].eq(True), minutes["latency_ms"].astype(float) > sla],
        [NO_DATA, "down", "stale", "delayed"],
        default="ok",
    )
    return pd.Series(state, index=minutes.index)


def feed_states_from_hours(hours: pd.DataFrame, ontology: Ontology) -> pd.Series:
    """Per mart_feed_availability row, the worst state of its minutes (latency judged on the p95)."""
    sla = hours["feed_id"].map(latency_sla_ms(ontology)).astype(float)
    state = np.select(
        [
            hours["minutes_observed"].fillna(0) <= 0,
            hours["minutes_down"].fillna(0) > 0,
            hours["stale_minutes"].fillna(0) > 0,
            hours["latency_p95_ms"].astype(float) > sla,
        ],
        [NO_DATA, "down", "stale", "delayed"],
        default="ok",
    )
    return pd.Series(state, index=hours.index)


def availability_grid(
    rows: pd.DataFrame,
    states: pd.Series,
    time_column: str,
    bucket: pd.Timedelta,
    start: pd.Timestamp,
    end: pd.Timestamp,
    feeds: list[str],
) -> pd.DataFrame:
    """Feed x time bucket: the worst state in each bucket and how many rows were in each state.

    Every (feed, bucket) of [start, end) is present; a bucket without rows is 'no data'."""
    buckets = pd.date_range(pd.Timestamp(start).floor(bucket), end, freq=bucket, inclusive="left")
    full = pd.MultiIndex.from_product([feeds, buckets], names=["feed_id", "bucket_ts"])
    if len(rows):
        df = pd.DataFrame(
            {
                "feed_id": rows["feed_id"].to_numpy(),
                "bucket_ts": pd.to_datetime(rows[time_column]).dt.floor(bucket).to_numpy(),
                "state": states.to_numpy(),
            }
        )
        df["rank"] = df["state"].map(STATE_RANK)
        worst = df.groupby(["feed_id", "bucket_ts"])["rank"].max()
        counts = df.groupby(["feed_id", "bucket_ts", "state"]).size().unstack("state")
    else:
        worst = pd.Series(dtype=float)
        counts = pd.DataFrame()
    out = pd.DataFrame(index=full)
    out["rank"] = worst.reindex(full).fillna(STATE_RANK[NO_DATA]).astype(int)
    by_rank = {v: k for k, v in STATE_RANK.items()}
    out["state"] = out["rank"].map(by_rank)
    for s in (*FEED_STATES, NO_DATA):
        out[s] = counts[s].reindex(full).fillna(0).astype(int) if s in counts else 0
    return out.reset_index()


def latency_matrix(hours: pd.DataFrame, ontology: Ontology) -> pd.DataFrame:
    """Feed x hour: p95 latency, the feed's latency SLA and their ratio (over 1 = above the SLA)."""
    df = hours[["feed_id", "hour_ts", "latency_p50_ms", "latency_p95_ms"]].copy()
    df["latency_sla_ms"] = df["feed_id"].map(latency_sla_ms(ontology)).astype(float)
    df["sla_ratio"] = df["latency_p95_ms"].astype(float) / df["latency_sla_ms"]
    df["above_sla"] = df["sla_ratio"] > 1
    return df


def quality_summary(hours: pd.DataFrame) -> pd.DataFrame:
    """Per feed over the range: messages, missing fields and invalid values, their rates, availability."""
    g = hours.groupby("feed_id")
    out = pd.DataFrame(
        {
            "messages": g["messages"].sum(),
            "missing_fields": g["missing_fields"].sum(),
            "invalid_values": g["invalid_values"].sum(),
            "minutes_up": g["minutes_up"].sum(),
            "minutes_down": g["minutes_down"].sum(),
            "stale_minutes": g["stale_minutes"].sum(),
        }
    )
    msgs = out["messages"].where(out["messages"] > 0)
    out["missing_per_10k"] = 1e4 * out["missing_fields"] / msgs
    out["invalid_per_10k"] = 1e4 * out["invalid_values"] / msgs
    seen = (out["minutes_up"] + out["minutes_down"]).where(lambda s: s > 0)
    out["availability_pct"] = 100 * out["minutes_up"] / seen
    return out.reset_index()


# ---------------------------------------------------------------- batch runs
def gantt_rows(runs: pd.DataFrame, usual: pd.DataFrame, as_of: pd.Timestamp) -> pd.DataFrame:
    """One bar per run (start to end, or to ``as_of`` while running), plus a 'projected' bar from ``as_of``
    to start + the job's usual duration for a running run, and whether the projection misses the deadline."""
    if runs.empty:
        return pd.DataFrame(
            columns=["run_id", "job_key", "asset_class_id", "state", "bar_start", "bar_end", "deadline",
                     "projected_end", "projected_late", "status"]
        )
    df = runs.merge(usual[["job_key", "usual_duration_s"]], on="job_key", how="left")
    as_of = pd.Timestamp(as_of)
    start = pd.to_datetime(df["actual_start_ts"])
    end = pd.to_datetime(df["actual_end_ts"])
    running = df["status"].eq("running")
    usual_td = pd.to_timedelta(df["usual_duration_s"].fillna(0), unit="s")
    projected = (start + usual_td).where(running)
    projected = projected.where(projected > as_of, as_of)  # a run past its usual duration: 'any moment now'
    deadline = pd.to_datetime(df["sla_deadline_ts"])
    late = df["is_sla_breached"].fillna(False).astype(bool)
    state = np.select(
        [running & (projected > deadline), running, df["status"].eq("failed"), late],
        ["running, projected late", "running", "failed", "late"],
        default="on time",
    )
    bars = pd.DataFrame(
        {
            "run_id": df["run_id"],
            "job_key": df["job_key"],
            "asset_class_id": df["asset_class_id"],
            "status": df["status"],
            "state": state,
            "bar_start": start,
            "bar_end": end.where(~running, as_of),
            "deadline": deadline,
            "projected_end": projected.where(running),
            "projected_late": running & (projected > deadline),
            "duration_min": (end.where(~running, as_of) - start).dt.total_seconds() / 60,
            "usual_min": df["usual_duration_s"] / 60,
            "records": df["records"],
        }
    )
    proj = bars[running].copy()
    if len(proj):
        proj["state"] = "projected"
        proj["bar_start"] = as_of
        proj["bar_end"] = proj["projected_end"]
        bars = pd.concat([bars, proj], ignore_index=True)
    return bars.dropna(subset=["bar_start"])


# ---------------------------------------------------------------- stages
STAGE_STATES = ("success", "retried", "running", "failed", "not started")


def stage_states(job: Job, attempts: pd.DataFrame, run_id: str) -> pd.DataFrame:
    """Each stage of ``job`` in run ``run_id``: its state (success, retried = succeeded after a retry,
    running, failed, not started), attempts, start, end and duration."""
    rows = []
    mine = attempts[attempts["run_id"] == run_id] if len(attempts) else attempts
    for st in job.topo_stages():
        a = mine[mine["stage_id"] == st.id] if len(mine) else mine
        if a is None or a.empty:
            rows.append({"stage_id": st.id, "state": "not started", "attempts": 0, "started_ts": pd.NaT,
                         "finished_ts": pd.NaT, "duration_s": np.nan, "expected_min": st.minutes})
            continue
        last = a.sort_values(["attempt"]).iloc[-1]
        status = str(last["status"])
        state = "retried" if status == "success" and len(a) > 1 else status
        rows.append(
            {
                "stage_id": st.id,
                "state": state,
                "attempts": len(a),
                "started_ts": pd.to_datetime(a["started_ts"]).min(),
                "finished_ts": pd.to_datetime(last["finished_ts"]),
                "duration_s": float(last["duration_s"]) if pd.notna(last["duration_s"]) else np.nan,
                "expected_min": st.minutes,
            }
        )
    return pd.DataFrame(rows)


def dag_layout(job: Job) -> tuple[dict[str, tuple[float, float]], list[tuple[str, str]]]:
    """Positions of the job's stages (x = depth in the DAG, y spread within a depth) and its edges
    (upstream, downstream)."""
    depth: dict[str, int] = {}
    for st in job.topo_stages():
        depth[st.id] = 1 + max((depth[d] for d in st.depends_on), default=-1)
    by_depth: dict[int, list[str]] = {}
    for sid, d in depth.items():
        by_depth.setdefault(d, []).append(sid)
    pos = {}
    for d, ids in by_depth.items():
        for i, sid in enumerate(ids):
            pos[sid] = (float(d), (len(ids) - 1) / 2 - i)
    edges = [(d, st.id) for st in job.stages for d in st.depends_on]
    return pos, edges


@dataclass(frozen=True)
class Bottleneck:
    stage_id: str
    elapsed_s: float
    usual_s: float | None
    excess_s: float | None  # elapsed - usual
    share_pct: float | None  # of the critical path
    critical_path: str

    def sentence(self) -> str:
        mins = self.elapsed_s / 60
        text = f"**{self.stage_id}** holds the critical path ({self.critical_path}): {mins:.0f} min"
        if self.usual_s and self.excess_s is not None:
            ratio = self.elapsed_s / self.usual_s if self.usual_s else float("nan")
            if self.excess_s > 0:
                text += f", {self.excess_s / 60:.0f} min ({ratio:.1f}x) longer than usual ({self.usual_s / 60:.0f} min)"
            else:
                text += f", within its usual {self.usual_s / 60:.0f} min"
        if self.share_pct is not None and not np.isnan(self.share_pct):
            text += f"; {self.share_pct:.0f} % of the path"
        return text + "."


def bottleneck(rows: pd.DataFrame) -> Bottleneck | None:
    """The stage of a run's critical path that ran longest beyond its usual (else the longest one)."""
    path = rows[rows["is_on_critical_path"].fillna(False).astype(bool)] if len(rows) else rows
    if path is None or path.empty:
        return None
    p = path.copy()
    p["excess"] = p["elapsed_s"].astype(float) - p["baseline_elapsed_s"].astype(float)
    key = p["excess"].where(p["excess"].notna(), -np.inf)
    best = p.loc[key.idxmax()] if key.notna().any() and np.isfinite(key).any() else p.loc[p["elapsed_s"].astype(float).idxmax()]
    usual = best["baseline_elapsed_s"]
    return Bottleneck(
        stage_id=str(best["stage_id"]),
        elapsed_s=float(best["elapsed_s"]),
        usual_s=None if pd.isna(usual) else float(usual),
        excess_s=None if pd.isna(best["excess"]) else float(best["excess"]),
        share_pct=None if pd.isna(best.get("share_of_critical_path_pct")) else float(best["share_of_critical_path_pct"]),
        critical_path=str(best.get("critical_path") or ""),
    )
