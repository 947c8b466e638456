"""Critical sub-stages: the day's runs stage by stage (the stage DAG from the ontology, coloured by state),
the bottleneck (the stage holding the critical path, and how much longer than usual), the utilisation of
the resources each stage uses (CloudWatch series) and per-stage trends."""

from __future__ import annotations

import datetime as dt

import pandas as pd
import streamlit as st

from cms_dagster.dashboard import charts, queries, transform, ui

src = ui.source()
filters = st.session_state.get("filters") or ui.sidebar_filters(src)
st.title("Critical sub-stages")
ont = src.ontology


def _pick(label: str, options: list[str], wanted: str | None, key: str, fmt=str) -> str:
    index = options.index(wanted) if wanted in options else 0
    return st.selectbox(label, options, index=index, key=key, format_func=fmt)


def body() -> None:
    ext = ui.page_extent(src, ["stages"], "The warehouse holds no batch runs yet: once the first runs are loaded, "
                         "this page fills.")
    if ext is None:
        return
    f = filters
    last_day = ui.latest_day(ext["latest"] if f.end is None else f.end)
    first_day = ui.latest_day(ext["first"]) or last_day
    c1, c2, c3 = st.columns([1, 2, 2])
    day = c1.date_input("Day (UTC)", value=min(max(f.day or last_day, first_day), last_day),
                        min_value=first_day, max_value=last_day, key="stage_day")
    day_start = pd.Timestamp(day)
    runs = queries.batch_runs(src.query, src.schema, day_start, day_start + pd.Timedelta(days=1), f.asset_class, f.job)
    if runs.empty:
        ui.page_filters(f, day=day)
        ui.empty(f"batch runs on {day}")
        return
    jobs = list(dict.fromkeys(runs.sort_values("actual_start_ts", ascending=False)["job_key"]))
    with c2:
        job_key = _pick("Job", jobs, f.job, "stage_job")
    job_runs = runs[runs["job_key"] == job_key].sort_values("actual_start_ts", ascending=False)
    labels = {r.run_id: f"{r.actual_start_ts:%H:%M} {r.status}" for r in job_runs.itertuples()}
    with c3:
        run_id = _pick("Run", list(labels), f.run, "stage_run", fmt=lambda r: f"{labels[r]} · {r}")
    job = ont.job(job_key)
    order = [s.id for s in job.topo_stages()]

    attempts = queries.stage_attempts(src.query, src.schema, list(job_runs["run_id"]))
    bn_rows = queries.stage_bottlenecks(src.query, src.schema, list(job_runs["run_id"]))
    states = pd.concat(
        [transform.stage_states(job, attempts, r).assign(run_id=r, run_label=labels[r]) for r in job_runs["run_id"]],
        ignore_index=True,
    )
    st.subheader(f"{job.name} on {day}")
    ui.chart(charts.stage_grid(states, order), states, "stage_grid")

    mine = states[states["run_id"] == run_id]
    run_bn = bn_rows[bn_rows["run_id"] == run_id]
    critical = set(run_bn.loc[run_bn["is_on_critical_path"].fillna(False).astype(bool), "stage_id"])
    bott = transform.bottleneck(run_bn)
    st.subheader("Stage DAG and bottleneck")
    st.markdown(f"Run `{run_id}`: " + (bott.sentence() if bott else "no stage has finished yet, so no critical path."))
    as_of = pd.Timestamp(ext["latest"])
    for r in mine[mine["state"] == "running"].itertuples():
        so_far = (as_of - pd.Timestamp(r.started_ts)).total_seconds() / 60
        st.warning(f"**{r.stage_id}** is still running: {so_far:.0f} min so far, expected {r.expected_min:.0f} min.")
    pos, edges = transform.dag_layout(job)
    ui.chart(charts.stage_dag(pos, edges, mine, critical, bott), mine.drop(columns=["run_label"]), "dag")
    if len(run_bn):
        with st.container(key="table_bottleneck_rows"):
            st.dataframe(run_bn, hide_index=True)

    st.subheader("Resource utilisation")
    stage_ids = order
    wanted = f.stage if f.stage in stage_ids else (bott.stage_id if bott else stage_ids[0])
    stage_id = _pick("Stage", stage_ids, wanted, "stage_stage")
    stage = job.stage(stage_id)
    srow = mine[mine["stage_id"] == stage_id].iloc[0]
    run_row = job_runs[job_runs["run_id"] == run_id].iloc[0]
    t0 = srow["started_ts"] if pd.notna(srow["started_ts"]) else run_row["actual_start_ts"]
    t1 = srow["finished_ts"] if pd.notna(srow["finished_ts"]) else min(pd.Timestamp(ext["latest"]), pd.Timestamp(t0) + pd.Timedelta(hours=2))
    pad = pd.Timedelta(minutes=45)
    series = queries.resource_series(src.query, src.schema, list(stage.resources), pd.Timestamp(t0) - pad, pd.Timestamp(t1) + pad)
    st.caption(f"{stage_id} uses {', '.join(stage.resources) or 'no declared resource'}; shaded: the stage in this run.")
    if series.empty:
        ui.empty(f"CloudWatch series for {', '.join(stage.resources)}")
    else:
        ui.chart(charts.resource_utilisation(series, (t0, t1)), series, "resources")

    st.subheader("Per-stage trends")
    start, end = f.window(ext["latest"])
    d0 = min(start.date(), day - dt.timedelta(days=6))
    trends = queries.stage_trends(src.query, src.schema, job_key, d0, day)
    if trends.empty:
        ui.empty("finished stages")
    else:
        trends["median_elapsed_min"] = trends["median_elapsed_s"] / 60
        ui.chart(charts.stage_trend(trends), ui.rounded(trends), "stage_trends")
    ui.page_filters(f, day=day, job=job_key, run=run_id, stage=stage_id)
    st.markdown(ui.dagster_asset_links(src, ["dbt/fct_stage_runs", "dbt/mart_stage_bottlenecks",
                                             "dbt/fct_infra_metrics"]))


msg = ui.no_warehouse_message(src)
if msg:
    st.info(msg)
else:
    ui.run_guarded(body)
