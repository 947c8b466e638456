"""Overview: the state of the estate at a glance (feeds now, batches today, incidents), with links to
the pages that explain each figure."""

from __future__ import annotations

import pandas as pd
import streamlit as st

from cms_dagster.dashboard import queries, transform, ui
from cms_dagster.detect.episodes import NoAlarmsTable, episodes_between

src = ui.source()
filters = st.session_state.get("filters") or ui.sidebar_filters(src)
st.title("CMS operations")
NOW_SPAN = pd.Timedelta(minutes=15)  # "now" for the feeds: their latest quarter of an hour
DAY = pd.Timedelta(hours=24)


def body() -> None:
    ext = ui.page_extent(src, ["batches", "feeds"], "The warehouse holds no data yet: once the first hour is loaded, "
                         "this page fills.")
    if ext is None:
        return
    latest = ext["latest"]
    f = ui.page_filters(filters)
    end = f.window(latest)[1]
    st.caption(f"As of {end - pd.Timedelta(minutes=1):%Y-%m-%d %H:%M} UTC (the latest data{'' if f.end is None else ' before the chosen end'}).")

    feeds = f.feeds(src.ontology)
    rows = queries.feed_minutes(src.query, src.schema, end - NOW_SPAN, end, feeds)
    states = transform.feed_states_from_minutes(rows, src.ontology)
    worst = (rows.assign(rank=states.map(transform.STATE_RANK)).groupby("feed_id")["rank"].max()
             if len(rows) else pd.Series(dtype=int))
    by_state = {s: sorted(worst[worst == transform.STATE_RANK[s]].index) for s in transform.FEED_STATES}
    silent = sorted(set(feeds) - set(worst.index))

    runs = queries.batch_runs(src.query, src.schema, end - DAY, end, f.asset_class, f.job)
    usual = queries.usual_durations(src.query, src.schema, end)
    bars = transform.gantt_rows(runs, usual, min(end, pd.Timestamp(latest)))
    bars = bars[bars["state"] != "projected"]
    finished = runs[runs["status"] != "running"]

    c = st.columns(4)
    c[0].metric("feeds ok", f"{len(by_state['ok'])} / {len(feeds)}")
    c[1].metric("feeds down / stale / delayed", f"{len(by_state['down'])} / {len(by_state['stale'])} / {len(by_state['delayed'])}")
    c[2].metric("runs running (projected late)", f"{int(bars['status'].eq('running').sum())} ({int(bars['projected_late'].sum())})")
    on_time = 100 * finished["is_on_time"].fillna(False).astype(bool).mean() if len(finished) else None
    c[3].metric("on time, last 24 h", "-" if on_time is None else f"{on_time:.0f} %",
                help="successful by the SLA deadline, over the runs scheduled in the last 24 hours that finished")
    for state in ("down", "stale", "delayed"):
        if by_state[state]:
            st.warning(f"Feeds {state} now: {', '.join(by_state[state])}")
    if silent:
        st.info(f"No heartbeat in the last {int(NOW_SPAN.total_seconds() // 60)} min from: {', '.join(silent)}")
    late = bars[bars["projected_late"] | (bars["state"] == "late") | (bars["state"] == "failed")]
    if len(late):
        st.subheader("Runs that need a look")
        st.dataframe(ui.rounded(late[["run_id", "state", "bar_start", "deadline", "duration_min", "usual_min"]]),
                     hide_index=True, key="overview_late")
    st.page_link("views/feeds.py", label="Market data feeds", icon=":material/cell_tower:")
    st.page_link("views/batches.py", label="Batch processing", icon=":material/view_timeline:")
    st.page_link("views/stages.py", label="Critical sub-stages", icon=":material/account_tree:")
    try:
        episodes = [e for e in episodes_between(src.query, (end - DAY).tz_localize("UTC"), end.tz_localize("UTC"),
                                                src.ontology.dependency_edges()) if e.confirmed]
        st.page_link("views/incidents.py", label=f"Incidents: {len(episodes)} confirmed in the last 24 h",
                     icon=":material/crisis_alert:")
    except NoAlarmsTable:
        st.page_link("views/incidents.py", label="Incidents (anomaly detection has not run yet)",
                     icon=":material/crisis_alert:")
    st.markdown(ui.dagster_asset_links(src, ["dbt/fct_batch_runs", "dbt/fct_feed_status"]))


msg = ui.no_warehouse_message(src)
if msg:
    st.info(msg)
else:
    ui.run_guarded(body)
