"""Incidents: open and recent incident reports (`cms incidents`, intelligence.incidents) with their ranked
causes, evidence charts, blast radius, timeline and narrative. Where no report has been written yet (the
incident_report asset has not run), the confirmed alarm episodes with `cms rca incident`'s ranking."""

from __future__ import annotations

import pandas as pd
import streamlit as st

from cms_dagster.dashboard import charts, ui
from cms_dagster.detect.episodes import NoAlarmsTable, episodes_between
from cms_dagster.incidents.store import NoIncidentsTable, list_reports
from cms_dagster.rca.incident import IncidentAnalysis, analyse_incident
from cms_dagster.rca.validate import RcaInputError

src = ui.source()
filters = st.session_state.get("filters") or ui.sidebar_filters(src)
st.title("Incidents")
TOP = 5
EVIDENCE_BEFORE = pd.Timedelta(hours=3)
EVIDENCE_AFTER = pd.Timedelta(hours=2)
# Ranking an incident re-reads a week of evidence (seconds on a month of data): it runs at once for a deep
# link to an incident, and on request when an incident is picked on the page.
_opened_with = st.session_state.get("f_init")  # the filters of the URL the session was opened with
DEEP_LINKED = bool(_opened_with and (_opened_with.incident or _opened_with.at is not None))


def on_request(label: str, key: str) -> bool:
    """True when the slow part should run: the page was deep-linked to the incident, or the user asked."""
    if DEEP_LINKED or st.session_state.get(key):
        return True
    return st.button(label, key=f"{key}_button", on_click=lambda: st.session_state.update({key: True}))


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


def evidence_chart(at: pd.Timestamp, series: set[tuple[str, str]]) -> None:
    """The evidence series around the incident's start, as the ranking saw them."""
    try:
        a = _analyse(src.key, pd.Timestamp(at))
    except RcaInputError as e:
        st.info(f"No evidence series to draw: {e}")
        return
    ev = a.evidence
    if not series:
        series = {(e.node, e.metric) for h in a.hypotheses[:3] for e in h.evidence[:2]}
    ev = ev[[(n, m) in series for n, m in zip(ev["entity"], ev["metric"], strict=True)]]
    times = pd.to_datetime(ev["time"])
    ev = ev.assign(time=times.dt.tz_convert(None) if times.dt.tz is not None else times)
    t0 = pd.Timestamp(at)
    ev = ev[(ev["time"] >= t0 - EVIDENCE_BEFORE) & (ev["time"] <= t0 + EVIDENCE_AFTER)]
    if ev.empty:
        ui.empty("evidence series")
    else:
        ui.chart(charts.evidence_series(ev, t0), ev, "evidence",
                 caption="Values as the ranking saw them (seasonally adjusted where the metric is); dashed: the start.")


def show_report(r: dict) -> None:
    """One stored incident report: narrative, ranked causes, evidence, blast radius, timeline, remediation."""
    n = r.get("narrative") or {}
    meta = r.get("narrative_meta") or {}
    root = r.get("root_cause") or {}
    st.subheader(f"{r['id']} · {r['status']}")
    c = st.columns(4)
    c[0].metric("root cause", str(root.get("entity", "-")))
    c[1].metric("kind", str(root.get("kind", "-")).replace("_", " "))
    c[2].metric("confidence", f"{float(n.get('confidence') or 0):.0%}")
    c[3].metric("alarms", int((r.get("episode") or {}).get("alarms", 0)))
    st.markdown(f"**Summary.** {ui.escape(n.get('summary', ''))}")
    st.markdown(f"**Impact.** {ui.escape(n.get('impact', ''))}")
    st.caption(f"Narrative: {meta.get('engine', '-')} ({meta.get('model') or '-'}); start {r['start']}, "
               f"end {r.get('end') or 'open'}, as of {r.get('as_of') or '-'}")
    causes = pd.DataFrame(r.get("causes") or [])
    if len(causes):
        causes["evidence_ids"] = causes["evidence_ids"].map(", ".join)
        ui.chart(charts.ranked_causes(causes), causes, "causes")
    evidence = r.get("evidence") or []
    if evidence:
        st.subheader("Evidence")
        with st.container(key="table_report_evidence"):
            st.dataframe(pd.json_normalize(evidence), hide_index=True)
        if on_request("Draw the evidence series (re-reads the warehouse, a few seconds)", "draw_evidence"):
            evidence_chart(pd.Timestamp(r["start"]).tz_convert(None), {(e["entity"], e["metric"]) for e in evidence})
    radius = r.get("blast_radius") or {}
    left, right = st.columns(2)
    with left:
        st.subheader("Blast radius")
        st.markdown(f"Feeds: {ui.escape(', '.join(radius.get('feeds') or []) or 'none')}  \n"
                    f"Jobs: {ui.escape(', '.join(radius.get('jobs') or []) or 'none')}  \n"
                    f"Stages: {len(radius.get('stages') or [])}")
        runs = pd.DataFrame(radius.get("runs") or [])
        if len(runs):
            with st.container(key="table_report_runs"):
                st.dataframe(runs, hide_index=True)
    with right:
        st.subheader("Timeline")
        with st.container(key="table_report_timeline"):
            st.dataframe(pd.DataFrame(r.get("timeline") or [], columns=["at", "event"]), hide_index=True)
    st.subheader("Remediation")
    st.markdown("\n".join(f"{i}. {ui.escape(x)}" for i, x in enumerate(n.get("remediation") or r.get("remediation") or [], 1))
                or "No runbook entry for this kind.")
    if n.get("next_checks"):
        st.markdown("**Next checks**\n" + "\n".join(f"- {ui.escape(x)}" for x in n["next_checks"]))
    for w in (r.get("warnings") or [])[:3]:
        st.caption(w)


def reports_view(start: pd.Timestamp, end: pd.Timestamp) -> bool:
    """The stored incident reports touching [start, end), open ones first; False when there are none."""
    try:
        reports = list_reports(src.query, "open") + list_reports(src.query, "closed", since=start, until=end)
    except NoIncidentsTable:
        return False
    shown = [r for r in reports if r["status"] == "open" or start <= pd.Timestamp(r["start"]).tz_convert(None) < end]
    if not shown:
        return False
    shown.sort(key=lambda r: (r["status"] != "open", -pd.Timestamp(r["start"]).value))
    table = pd.DataFrame(
        [{"id": r["id"], "status": r["status"], "start": pd.Timestamp(r["start"]).tz_convert(None),
          "root cause": r["root_cause"]["entity"], "kind": r["root_cause"]["kind"],
          "alarms": (r.get("episode") or {}).get("alarms"), "summary": (r.get("narrative") or {}).get("summary", "")}
         for r in shown]
    )
    n_open = int((table["status"] == "open").sum())
    st.caption(f"{len(shown)} incident report(s), {n_open} open, {start:%Y-%m-%d %H:%M} – {end:%Y-%m-%d %H:%M} UTC "
               "(`cms incidents list` shows the same).")
    ids = list(table["id"])
    wanted = filters.incident if filters.incident in ids else ids[0]
    chosen = st.selectbox("Incident", ids, index=ids.index(wanted), key="incident_id",
                          format_func=lambda i: f"{i} · {table.loc[ids.index(i), 'status']} · {table.loc[ids.index(i), 'root cause']}")
    ui.page_filters(filters, incident=chosen)
    with st.container(key="table_reports"):
        st.dataframe(table, hide_index=True)
    show_report(shown[ids.index(chosen)])
    st.markdown(ui.dagster_asset_links(src, ["intelligence/incident_report", "intelligence/anomalies"]))
    return True


def body() -> None:
    ext = ui.page_extent(src, ["incidents"], "The warehouse holds no data yet: once the first hours are loaded, "
                         "this page fills.")
    if ext is None:
        return
    start, end = filters.window(ext["latest"])
    if reports_view(start, end):
        return
    st.caption("No incident report written for this range yet (the incident_report asset writes them as alarms "
               "arrive); showing the alarm episodes with `cms rca incident`'s ranking.")
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
    if not on_request("Rank the causes of this incident (reads a week of evidence, a few seconds)", "rank_episode"):
        return
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
    st.subheader("Evidence")
    evidence_chart(pd.Timestamp(at), set())
    st.markdown(ui.dagster_asset_links(src, ["intelligence/anomalies"]))


msg = ui.no_warehouse_message(src)
if msg:
    st.info(msg)
else:
    ui.run_guarded(body)
