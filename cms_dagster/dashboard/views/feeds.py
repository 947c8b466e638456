"""Market data feeds: a live availability grid (feed x time bucket: ok, delayed, stale, down), data-quality
indicators (missing fields, invalid values, per feed and over time) and a latency heat map with the SLA."""

from __future__ import annotations

import pandas as pd
import streamlit as st

from cms_dagster.dashboard import charts, queries, transform, ui

src = ui.source()
filters = st.session_state.get("filters") or ui.sidebar_filters(src)
st.title("Market data feeds")


@st.fragment(run_every=ui.LIVE_REFRESH)
def live_grid(f, feeds: list[str]) -> None:
    latest = ui.extent(src)["latest"]
    if latest is None:
        return
    start, end = f.window(latest)
    bucket = transform.bucket_for(end - start)
    if end - start <= pd.Timedelta(hours=24):
        rows = queries.feed_minutes(src.query, src.schema, start, end, feeds)
        states = transform.feed_states_from_minutes(rows, src.ontology)
        grid = transform.availability_grid(rows, states, "minute_ts", bucket, start, end, feeds)
    else:
        rows = queries.feed_hours(src.query, src.schema, start, end, feeds)
        states = transform.feed_states_from_hours(rows, src.ontology)
        grid = transform.availability_grid(rows, states, "hour_ts", bucket, start, end, feeds)
    st.subheader("Availability")
    silent = [fd for fd in feeds if fd not in set(rows["feed_id"])]
    if rows.empty:
        ui.empty("feed heartbeats")
        return
    if silent:
        st.warning(f"No heartbeats in this range from: {', '.join(silent)} (a new feed, or one not sending).")
    worst = grid[grid["bucket_ts"] == grid["bucket_ts"].max()].set_index("feed_id")["state"]
    down_now = [fd for fd, s in worst.items() if s == "down"]
    st.caption(
        f"{start:%Y-%m-%d %H:%M} – {end:%Y-%m-%d %H:%M} UTC, data up to {latest:%Y-%m-%d %H:%M} UTC; refreshes "
        f"every {ui.LIVE_REFRESH}. Down: reported down; stale: data older than the feed's staleness SLA; "
        f"delayed: latency above {transform.LATENCY_SLA_FACTOR:g}x the feed's typical latency."
        + (f" **Down in the latest bucket: {', '.join(down_now)}.**" if down_now else "")
    )
    ui.chart(charts.availability_grid(grid, bucket), grid, "availability")


def body() -> None:
    ext = ui.page_extent(src, ["feeds"], "The warehouse holds no feed heartbeats yet: once the first hour is "
                         "loaded, this page fills.")
    if ext is None:
        return
    latest = ext["latest"]
    f = ui.page_filters(filters)
    feeds = f.feeds(src.ontology)
    live_grid(f, feeds)

    start, end = f.window(latest)
    hours = queries.feed_hours(src.query, src.schema, start.floor("h"), end, feeds)
    st.subheader("Data quality")
    if hours.empty:
        ui.empty("hourly feed figures")
    else:
        summary = transform.quality_summary(hours)
        cols = st.columns(4)
        seen = summary["minutes_up"].sum() + summary["minutes_down"].sum()
        cols[0].metric("availability", f"{100 * summary['minutes_up'].sum() / seen:.2f} %" if seen else "-")
        cols[1].metric("stale minutes", f"{int(summary['stale_minutes'].sum()):,}")
        msgs = summary["messages"].sum()
        cols[2].metric("missing fields / 10k msgs", f"{1e4 * summary['missing_fields'].sum() / msgs:.2f}" if msgs else "-")
        cols[3].metric("invalid values / 10k msgs", f"{1e4 * summary['invalid_values'].sum() / msgs:.2f}" if msgs else "-")
        with st.container(key="table_quality_summary"):
            st.dataframe(ui.rounded(summary), hide_index=True)
        ui.chart(charts.quality_over_time(hours), hours, "quality")

        st.subheader("Latency")
        matrix = transform.latency_matrix(hours, src.ontology).dropna(subset=["latency_p95_ms"])
        if matrix.empty:
            ui.empty("latency figures")
        else:
            ui.chart(charts.latency_heatmap(matrix), matrix, "latency")
    st.markdown(ui.dagster_asset_links(src, ["dbt/fct_feed_status", "dbt/mart_feed_availability"]))


msg = ui.no_warehouse_message(src)
if msg:
    st.info(msg)
else:
    ui.run_guarded(body)
