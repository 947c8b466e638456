"""The dashboard's entry script (``cms dashboard`` runs ``streamlit run`` on it): the navigation, the shared
sidebar (filters kept in the URL, data freshness, links to the Dagster UI) and the page chosen."""

from __future__ import annotations

from pathlib import Path

import streamlit as st

from cms_dagster.dashboard import ui

HERE = Path(__file__).parent
PAGES = [
    ("views/overview.py", "Overview", "overview", ":material/dashboard:"),
    ("views/feeds.py", "Market data feeds", "feeds", ":material/cell_tower:"),
    ("views/batches.py", "Batch processing", "batches", ":material/view_timeline:"),
    ("views/stages.py", "Critical sub-stages", "stages", ":material/account_tree:"),
    ("views/incidents.py", "Incidents", "incidents", ":material/crisis_alert:"),
    ("views/ask.py", "Ask", "ask", ":material/chat:"),
]

st.set_page_config(page_title="CMS operations", page_icon="📈", layout="wide")
nav = st.navigation(
    [st.Page(str(HERE / path), title=title, url_path=url, icon=icon, default=(i == 0))
     for i, (path, title, url, icon) in enumerate(PAGES)]
)
src = ui.source()
st.session_state["filters"] = ui.sidebar_filters(src)
st.sidebar.caption(f"Reading {src.where}")
st.sidebar.markdown(f"[Dagster UI]({ui.dagster_url(src)}) · [asset lineage]({ui.dagster_url(src, '/asset-groups')})")
nav.run()
