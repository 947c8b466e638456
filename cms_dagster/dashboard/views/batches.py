"""Batch processing: a timeline of active and recent runs per asset class (running runs growing, projected
end against the SLA deadline), duration trends against the usual, success and failure rates by asset
class, SLA compliance (per job, per asset class, over days), records per minute and volume."""

from __future__ import annotations

import pandas as pd
import streamlit as st

from cms_dagster.dashboard import charts, queries, transform, ui

src = ui.source()
filters = st.session_state.get("filters") or ui.sidebar_filters(src)
st.title("Batch processing")
GANTT_SPAN = pd.Timedelta(hours=24)  # the timeline shows at most the last day of the range


@st.fragment(run_every=ui.LIVE_REFRESH)
def live_timeline(f) -> None:
    latest = ui.extent(src)["latest"]
    if latest is None:
        return
    start, end = f.window(latest)
    start = max(start, end - GANTT_SPAN)
    st.subheader("Active and recent runs")
    runs = queries.batch_runs(src.query, src.schema, start, end, f.asset_class, f.job)
    if runs.empty:
        ui.empty("batch runs")
        return
    as_of = min(end, pd.Timestamp(latest))
    usual = queries.usual_durations(src.query, src.schema, end)
    bars = transform.gantt_rows(runs, usual, as_of)
    running = bars[bars["status"].eq("running") & bars["state"].ne("projected")]
    late = running[running["projected_late"]]
    st.caption(
        f"Runs scheduled {start:%Y-%m-%d %H:%M} – {end:%Y-%m-%d %H:%M} UTC and any still running; refreshes every "
        f"{ui.LIVE_REFRESH}. {len(running)} running"
        + (f", **{len(late)} projected to miss the SLA: {', '.join(late['run_id'])}**" if len(late) else "")
        + ". A running run's projected end is its start plus the job's usual (28-day median) duration."
    )
    table = bars[bars["state"] != "projected"].drop(columns=["bar_start", "bar_end"]).merge(
        runs[["run_id", "actual_start_ts", "actual_end_ts"]], on="run_id")
    ui.chart(charts.gantt(bars, as_of), table, "gantt")


def body() -> None:
    ext = ui.page_extent(src, ["batches"], "The warehouse holds no batch runs yet: once the first runs are loaded, "
                         "this page fills.")
    if ext is None:
        return
    latest = ext["latest"]
    f = ui.page_filters(filters)
    live_timeline(f)
    start, end = f.window(latest)
    d0, d1 = start.date(), (end - pd.Timedelta(seconds=1)).date()
    perf = queries.batch_performance(src.query, src.schema, d0, d1, f.asset_class)
    sla = queries.sla_compliance(src.query, src.schema, d0, d1, f.asset_class, f.job)
    if perf.empty and sla.empty:
        ui.empty("batch figures")
        return
    st.caption(f"Days {d0} – {d1} (UTC day of the scheduled start).")

    left, right = st.columns(2)
    with left:
        st.subheader("Duration against the usual")
        trend = perf.dropna(subset=["duration_index"])
        if trend.empty:
            ui.empty("successful runs with a usual duration")
        else:
            ui.chart(charts.duration_trend(trend), trend[["run_date", "asset_class_id", "duration_index",
                                                          "duration_index_7d", "p50_duration_s"]], "duration",
                     caption="Successful runs' duration over their job's 28-day median, per asset class and day.")
    with right:
        st.subheader("Success and failure")
        g = perf.groupby("asset_class_id")[["successful_runs", "failed_runs", "runs", "breaches"]].sum()
        finished = (g["successful_runs"] + g["failed_runs"]).where(lambda s: s > 0)
        rates = g.assign(**{"success %": 100 * g["successful_runs"] / finished,
                            "failure %": 100 * g["failed_runs"] / finished}).reset_index()
        if rates.empty:
            ui.empty("finished runs")
        else:
            ui.chart(charts.success_rates(rates), ui.rounded(rates), "rates")

    st.subheader("SLA compliance")
    if sla.empty:
        ui.empty("runs with an SLA")
    else:
        by_job = sla.groupby("job_key").agg(runs=("runs", "sum"), on_time=("on_time_runs", "sum"),
                                            breaches=("breaches", "sum"), failed=("failed_runs", "sum"),
                                            baseline_28d_on_time_pct=("baseline_28d_on_time_pct", "last"))
        by_job["on_time_pct"] = 100 * by_job["on_time"] / by_job["runs"]
        cols = st.columns(3)
        cols[0].metric("on time", f"{100 * by_job['on_time'].sum() / max(by_job['runs'].sum(), 1):.1f} %")
        cols[1].metric("SLA breaches", int(by_job["breaches"].sum()))
        cols[2].metric("failed runs", int(by_job["failed"].sum()))
        ui.chart(charts.sla_heatmap(sla), sla, "sla_jobs")
        daily = sla.groupby(["run_date", "asset_class_id"])[["runs", "on_time_runs"]].sum().reset_index()
        daily["on_time_pct"] = 100 * daily["on_time_runs"] / daily["runs"]
        ui.chart(charts.sla_by_asset_class(daily), ui.rounded(daily), "sla_classes")
        with st.container(key="table_sla_by_job"):
            st.dataframe(ui.rounded(by_job.reset_index()), hide_index=True)

    st.subheader("Volume and throughput")
    vol = perf.dropna(subset=["records"])
    if vol.empty:
        ui.empty("processed records")
    else:
        ui.chart(charts.volume(vol), vol[["run_date", "asset_class_id", "records", "bytes", "records_per_minute"]],
                 "volume")
    st.markdown(ui.dagster_asset_links(src, ["dbt/fct_batch_runs", "dbt/mart_batch_performance",
                                             "dbt/mart_sla_compliance"]))


msg = ui.no_warehouse_message(src)
if msg:
    st.info(msg)
else:
    ui.run_guarded(body)
