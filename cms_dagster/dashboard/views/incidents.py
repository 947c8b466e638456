"""Incidents: recent problems (confirmed alarm episodes of the detector) with their ranked causes, the
evidence behind them and a short narrative. The ranking is `cms rca incident`'s (analyse_incident)."""

from __future__ import annotations

import pandas as pd
import streamlit as st

from cms_dagster.dashboard import charts, ui
from cms_dagster.detect.episodes import NoAlarmsTable, episodes_between
from cms_dagster.rca.incident import IncidentAnalysis, analyse_incident
from cms_dagster.rca.validate import RcaInputError

src = ui.source()
filters = st.session_state.get("filters") or ui.sidebar_filters(src)
st.title("Incidents")
TOP = 5
EVIDENCE_BEFORE = pd.Timedelta(hours=3)
EVIDENCE_AFTER = pd.Timedelta(hours=2)


@st.cache_data(ttl=600, show_spinner="Ranking the causes ...", max_entries=50)
def _analyse(key: str, at: pd.Timestamp) -> IncidentAnalysis:
    s = ui.source()
    return analyse_incident(s.query, at.tz_localize("UTC"), ontology=s.ontology, top_k=TOP)


def narrative(a: IncidentAnalysis) -> str:
    """A few plain sentences from the ranking: the likely cause, what it explains, the alternatives."""
    if not a.hypotheses:
        return "No series moved enough around this start to name a cause."
    h = a.hypotheses[0]
    when = f" from {h.onset:%H:%M} UTC" if h.onset is not None and pd.notna(h.onset) else ""
    text = f"Most likely **{h.kind.replace('_', ' ')}** on **{h.entity}**{when} (score {h.score:.2f}). {h.reason}"
    if h.explains:
        text += f" It explains what was seen on {', '.join(h.explains[:5])}" + (" and more." if len(h.explains) > 5 else ".")
    others = [f"{x.entity} ({x.kind.replace('_', ' ')}, {x.score:.2f})" for x in a.hypotheses[1:3]]
    if others:
        text += f" Next candidates: {'; '.join(others)}."
    return text


def body() -> None:
    if not ui.require_tables(src, "incidents"):
        return
    ext = ui.extent(src)
    if ext["latest"] is None:
        st.info("The warehouse holds no data yet: once the first hours are loaded, this page fills.")
        return
    start, end = filters.window(ext["latest"])
    try:
        episodes = episodes_between(src.query, start.tz_localize("UTC"), end.tz_localize("UTC"),
                                    src.ontology.dependency_edges())
    except NoAlarmsTable:
        st.info("No alarms yet: anomaly detection has not run on this warehouse (materialize "
                "intelligence/anomalies in the Dagster UI, or `cms demo`).")
        return
    confirmed = [e for e in episodes if e.confirmed]
    st.caption(
        f"Confirmed alarm episodes {start:%Y-%m-%d %H:%M} – {end:%Y-%m-%d %H:%M} UTC ({len(confirmed)} of "
        f"{len(episodes)} alarm groups). Pick one to rank its causes; `cms rca incident --at START` does the same."
    )
    if not confirmed:
        ui.page_filters(filters)
        ui.empty("confirmed incidents")
        return
    table = pd.DataFrame(
        [{"start": e.start.tz_convert(None), "minutes": round((e.end - e.start).total_seconds() / 60),
          "alarms": e.alarms, "peak score": round(e.peak_score, 3), "entities": ", ".join(e.entities[:6])
          + (f" +{len(e.entities) - 6}" if len(e.entities) > 6 else "")} for e in reversed(confirmed)]
    )
    starts = list(table["start"])
    wanted = filters.at if filters.at is not None and filters.at in starts else starts[0]
    at = st.selectbox("Incident", starts, index=starts.index(wanted), key="incident_at",
                      format_func=lambda t: f"{t:%Y-%m-%d %H:%M} UTC · {table.loc[starts.index(t), 'entities']}")
    ui.page_filters(filters, at=at)
    fig = charts.episodes(table)
    ui.chart(fig, table, "episodes")

    try:
        a = _analyse(src.key, pd.Timestamp(at))
    except RcaInputError as e:
        st.warning(f"Cannot rank this incident: {e}")
        return
    st.subheader(f"Ranked causes of the incident from {pd.Timestamp(at):%Y-%m-%d %H:%M} UTC")
    st.markdown(narrative(a))
    for w in a.warnings[:3]:
        st.caption(w)
    hyp = pd.DataFrame([h.to_dict() for h in a.hypotheses])
    if hyp.empty:
        return
    ui.chart(charts.ranked_causes(hyp), hyp.drop(columns=["evidence"]), "causes")
    wanted_series = {(e.node, e.metric) for h in a.hypotheses[:3] for e in h.evidence[:2]}
    ev = a.evidence
    t0 = pd.Timestamp(at)
    ev = ev[[(n, m) in wanted_series for n, m in zip(ev["entity"], ev["metric"], strict=True)]]
    times = pd.to_datetime(ev["time"])
    times = times.dt.tz_convert(None) if times.dt.tz is not None else times
    ev = ev.assign(time=times)
    ev = ev[(ev["time"] >= t0 - EVIDENCE_BEFORE) & (ev["time"] <= t0 + EVIDENCE_AFTER)]
    st.subheader("Evidence")
    if ev.empty:
        ui.empty("evidence series")
    else:
        ui.chart(charts.evidence_series(ev, t0), ev, "evidence",
                 caption="Values as the ranking saw them (seasonally adjusted where the metric is); dashed: the start.")
    st.markdown(ui.dagster_asset_links(src, ["intelligence/anomalies"]))


msg = ui.no_warehouse_message(src)
if msg:
    st.info(msg)
else:
    ui.run_guarded(body)
