"""Writing incident reports for the incidents of a window: what the asset and ``cms incidents build`` do."""

from __future__ import annotations

import datetime as dt
import multiprocessing
from collections.abc import Callable, Sequence
from concurrent.futures import ProcessPoolExecutor
from typing import Any

import pandas as pd

from cms_dagster.detect.episodes import Episode
from cms_dagster.domain.model import Ontology
from cms_dagster.incidents.report import build_report, confirmed_incidents, episode_status, incident_id
from cms_dagster.incidents.store import save_reports
from cms_dagster.llm import Llm

__all__ = ["episode_versions", "update_reports", "update_reports_in_parallel"]


def episode_versions(
    query: Callable[[str, list], pd.DataFrame],
    ontology: Ontology,
    since: dt.datetime,
    until: pd.Timestamp,
) -> dict[str, str]:
    """Per incident id of the window's incidents, a version string that changes when its report should be
    rewritten: more alarms joined, or the incident closed (a sensor's run key)."""
    out = {}
    hi = (until + pd.Timedelta(seconds=1)).to_pydatetime()
    for e in confirmed_incidents(query, since, hi, ontology):
        out[incident_id(e)] = f"{e.alarms}:{episode_status(e, until)}"
    return out


def _incidents(query: Callable[[str, list], pd.DataFrame], since: dt.datetime, until: pd.Timestamp, ontology: Ontology) -> list[Episode]:
    """The incidents with alarms in [since, until] as episodes."""
    return confirmed_incidents(query, since, (until + pd.Timedelta(seconds=1)).to_pydatetime(), ontology)


def update_reports(
    warehouse: Any,
    archive: Any,
    ontology: Ontology,
    llm: Llm,
    since: dt.datetime,
    until: pd.Timestamp,
    *,
    progress: Callable[[str], None] = lambda _: None,
    incidents: Sequence[Episode] | None = None,
) -> list[dict[str, Any]]:
    """Build the report of every incident with alarms in [since, until], then store them all. ``incidents``:
    those incidents as episodes when the caller has read them already
    (:func:`cms_dagster.incidents.grouping.window_between`); by default they are read here."""
    eps = _incidents(warehouse.query, since, until, ontology) if incidents is None else list(incidents)
    reports = []
    for i, e in enumerate(eps, 1):
        progress(f"incident {i}/{len(eps)}: {incident_id(e)} ({e.alarms} alarms from {e.start:%Y-%m-%d %H:%M})")
        reports.append(build_report(warehouse.query, e, ontology, llm, until=until, marts_schema=warehouse.marts))
    save_reports(warehouse, archive, reports)  # one warehouse write for the window's reports
    return reports


_worker: dict[str, Any] = {}


def _start_worker(settings: Any) -> None:
    from cms_dagster.domain import load_ontology
    from cms_dagster.llm import from_settings as llm_from_settings
    from cms_dagster.warehouse.client import from_settings

    _worker.update(
        warehouse=from_settings(settings), ontology=load_ontology(settings.domain_file or None), llm=llm_from_settings(settings)
    )


def _report_in_worker(episode: Episode, until: pd.Timestamp) -> dict[str, Any]:
    wh = _worker["warehouse"]
    return build_report(wh.query, episode, _worker["ontology"], _worker["llm"], until=until, marts_schema=wh.marts)


def update_reports_in_parallel(
    settings: Any,
    since: dt.datetime,
    until: pd.Timestamp,
    *,
    workers: int = 2,
    progress: Callable[[str], None] = lambda _: None,
    incidents: Sequence[Episode] | None = None,
) -> list[dict[str, Any]]:
    """:func:`update_reports` with the reports built by ``workers`` processes (each reads the warehouse,
    ranks causes and writes its narrative; this process stores every report, the warehouse's one writer).
    The adapters are those ``settings`` select; the same reports as :func:`update_reports`, oldest first."""
    from cms_dagster.domain import load_ontology
    from cms_dagster.lake import Lake
    from cms_dagster.warehouse.client import from_settings

    warehouse = from_settings(settings)
    archive = Lake.from_settings(settings).archive
    eps = _incidents(warehouse.query, since, until, load_ontology(settings.domain_file or None)) if incidents is None else list(incidents)
    if not eps:
        return []
    reports = []
    # spawned, not forked: a fork would copy the open warehouse connection and the threads of this process
    ctx = multiprocessing.get_context("spawn")
    with ProcessPoolExecutor(max_workers=max(1, min(workers, len(eps))), mp_context=ctx, initializer=_start_worker, initargs=(settings,)) as pool:
        for i, report in enumerate(pool.map(_report_in_worker, eps, [until] * len(eps)), 1):
            progress(f"incident {i}/{len(eps)}: {report['id']} ({report['episode']['alarms']} alarms from {report['start']})")
            reports.append(report)
    # one warehouse write (on DuckDB one published snapshot) for the window's reports: a write per report
    # copied the warehouse file for each and made every worker reopen it
    save_reports(warehouse, archive, reports)
    return reports
