"""Streamlit plumbing shared by the pages: the warehouse source with cached queries, the sidebar filters
kept in the URL, charts with a table view, clear messages for missing data, links to the Dagster UI."""

from __future__ import annotations

import datetime as dt
from collections.abc import Callable, Sequence
from dataclasses import dataclass, replace
from typing import Any
from urllib.parse import quote

import pandas as pd
import streamlit as st

from cms_dagster import settings as settings_mod
from cms_dagster.dashboard import filters as filters_mod
from cms_dagster.dashboard import queries
from cms_dagster.dashboard.cli import reading
from cms_dagster.domain import load_ontology
from cms_dagster.domain.model import Ontology
from cms_dagster.warehouse.client import Warehouse

CACHE_TTL_S = 30  # cached query results live this long: the live views refresh a little more slowly
LIVE_REFRESH = "60s"  # how often the live views (feed grid, running batches) re-run on their own
_WAREHOUSES: dict[str, Warehouse] = {}


@dataclass(frozen=True)
class Source:
    """Where the dashboard reads: the warehouse (cached queries), its marts schema and the ontology."""

    key: str
    settings: settings_mod.Settings
    ontology: Ontology
    schema: str

    def query(self, sql: str, params: Sequence[Any] = ()) -> pd.DataFrame:
        return _cached_query(self.key, sql, tuple(params)).copy()

    @property
    def warehouse(self) -> Warehouse:
        return _WAREHOUSES[self.key]

    @property
    def where(self) -> str:
        return reading(self.settings)


@st.cache_data(ttl=CACHE_TTL_S, show_spinner=False, max_entries=500)
def _cached_query(key: str, sql: str, params: tuple) -> pd.DataFrame:
    return _WAREHOUSES[key].query(sql, list(params))


@st.cache_resource(show_spinner=False)
def _ontology(path: str) -> Ontology:
    return load_ontology(path or None)


def source() -> Source:
    """The source for this session, from the settings (the environment, read once per run)."""
    s = settings_mod.load()
    key = f"{s.warehouse}:{s.duckdb_path}" if s.warehouse == "duckdb" else "snowflake"
    if key not in _WAREHOUSES:
        _WAREHOUSES[key] = Warehouse(s)
    wh = _WAREHOUSES[key]
    return Source(key=key, settings=s, ontology=_ontology(s.domain_file), schema=wh.marts)


# ---------------------------------------------------------------- messages
def no_warehouse_message(src: Source) -> str | None:
    """Why the dashboard cannot read at all, or None."""
    s = src.settings
    if s.warehouse == "duckdb" and not s.duckdb_path.exists():
        return (
            f"No warehouse yet at {s.duckdb_path}. Build one with `make demo` (or `cms demo --no-serve`), "
            "or point CMS_DUCKDB_PATH / CMS_WAREHOUSE at yours."
        )
    return None


def require_tables(src: Source, page: str) -> bool:
    """Say which marts are missing (a new estate, dbt not run yet) and return False; True when all exist."""
    missing = queries.missing_tables(src.query, src.schema, queries.PAGE_TABLES.get(page, ()))
    if missing:
        st.info(
            f"No data for this page yet: the warehouse has no {', '.join(missing)}. Materialize the dbt assets "
            "(Dagster UI, or `cms demo`), then come back: this page refreshes on its own."
        )
        return False
    return True


def page_extent(src: Source, pages: Sequence[str], nothing_yet: str) -> dict[str, pd.Timestamp | None] | None:
    """The warehouse's data extent for a page that reads the marts of ``pages``; None once the page has said
    why it has nothing to show (marts missing: :func:`require_tables`; marts empty: ``nothing_yet``)."""
    if not all(require_tables(src, p) for p in pages):
        return None
    ext = extent(src)
    if ext["latest"] is None:
        st.info(nothing_yet)
        return None
    return ext


def empty(what: str) -> None:
    st.info(f"No {what} in the selected range and filters. Widen the time range or clear a filter.")


def chart(fig: Any, table: pd.DataFrame, key: str, caption: str | None = None) -> None:
    """A chart with its table view beside it (two tabs)."""
    chart_tab, table_tab = st.tabs(["Chart", "Table"])
    with chart_tab:
        st.plotly_chart(fig, key=f"chart_{key}", theme=None, config={"displaylogo": False})
        if caption:
            st.caption(caption)
    with table_tab, st.container(key=f"table_{key}"):
        st.dataframe(rounded(table), hide_index=True)


def rounded(df: pd.DataFrame, digits: int = 2) -> pd.DataFrame:
    """Floats rounded for reading; other columns as they are."""
    floats = df.select_dtypes("float").columns
    return df.assign(**{c: df[c].round(digits) for c in floats}) if len(floats) else df


# ---------------------------------------------------------------- filters in the sidebar and the URL
def _state_from_params(f: filters_mod.Filters) -> None:
    st.session_state["f_range"] = f.range
    st.session_state["f_asset_class"] = f.asset_class or ""
    st.session_state["f_job"] = f.job or ""
    st.session_state["f_feed"] = f.feed or ""
    st.session_state["f_end"] = "" if f.end is None else f.end.strftime("%Y-%m-%dT%H:%MZ")


def sidebar_filters(src: Source) -> filters_mod.Filters:
    """The shared filters (time range, end, asset class, job, feed), initialised from the URL and written
    back to it, so every view can be linked to with its filters set."""
    ont = src.ontology
    if "f_init" not in st.session_state:
        parsed, problems = filters_mod.from_params(st.query_params.to_dict(), ont)
        st.session_state["f_init"] = parsed
        st.session_state["f_problems"] = problems
        _state_from_params(parsed)
    base: filters_mod.Filters = st.session_state["f_init"]
    for p in st.session_state.get("f_problems", []):
        st.sidebar.warning(p)
    sb = st.sidebar
    sb.selectbox("Time range", list(filters_mod.RANGES), key="f_range")
    classes = [""] + list(ont.asset_classes)
    sb.selectbox("Asset class", classes, key="f_asset_class", format_func=lambda v: v or "all")
    ac = st.session_state["f_asset_class"] or None
    jobs = [""] + sorted(k for k, j in ont.jobs.items() if not ac or j.asset_class == ac)
    if st.session_state.get("f_job") not in jobs:
        st.session_state["f_job"] = ""
    sb.selectbox("Job", jobs, key="f_job", format_func=lambda v: v or "all")
    sb.selectbox("Feed", [""] + sorted(ont.feeds), key="f_feed", format_func=lambda v: v or "all")
    sb.text_input("Ending at (UTC, empty = latest data)", key="f_end", placeholder="2026-11-18T14:00Z")
    end_text = st.session_state["f_end"].strip()
    end = None
    if end_text:
        try:
            end = filters_mod.parse_time(end_text)
        except ValueError as e:
            sb.warning(f"{e}; showing the latest data")
    f = replace(
        base,
        range=st.session_state["f_range"],
        asset_class=ac,
        job=st.session_state["f_job"] or None,
        feed=st.session_state["f_feed"] or None,
        end=end,
    )
    return f


def page_filters(f: filters_mod.Filters, **page_values: Any) -> filters_mod.Filters:
    """The filters with a page's own values (day, run, stage, at), written to the URL."""
    f = replace(f, **page_values)
    params = f.to_params()
    if dict(st.query_params.to_dict()) != params:
        st.query_params.from_dict(params)
    return f


def extent(src: Source) -> dict[str, pd.Timestamp | None]:
    try:
        return queries.data_extent(src.query, src.schema)
    except Exception:  # the marts are not there yet: pages say so through require_tables
        return {"first": None, "latest": None}


# ---------------------------------------------------------------- links
def dagster_url(src: Source, path: str = "") -> str:
    return src.settings.dagster_url.rstrip("/") + path


def dagster_asset_links(src: Source, assets: Sequence[str]) -> str:
    """Markdown links to the Dagster UI's pages of the given assets (``dbt/fct_batch_runs``)."""
    links = [f"[{a.split('/')[-1]}]({dagster_url(src, '/assets/' + quote(a))})" for a in assets]
    return "Dagster UI: " + ", ".join(links) + f" · [runs]({dagster_url(src, '/runs')})"


def run_guarded(body: Callable[[], None]) -> None:
    """Run a page body; a failure to read the warehouse becomes one clear line instead of a traceback."""
    try:
        body()
    except Exception as e:  # noqa: BLE001 - shown to the user, with what to do
        first = str(e).strip().splitlines()[0] if str(e).strip() else type(e).__name__
        st.error(
            f"Could not read the warehouse: {first}. Check CMS_WAREHOUSE / CMS_DUCKDB_PATH (`cms config`) "
            "and that the dbt assets have been built."
        )


def escape(text: object) -> str:
    """Data as inert Markdown: no emphasis, code, links or HTML of its own."""
    s = " ".join(str(text).split())
    for ch in "\\`*_[]<>#|$":
        s = s.replace(ch, "\\" + ch)
    return s


def latest_day(latest: pd.Timestamp | None) -> dt.date | None:
    return None if latest is None else pd.Timestamp(latest).date()
