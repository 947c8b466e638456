"""Writing incident reports for the incidents of a window: what the asset and ``cms incidents build`` do."""

from __future__ import annotations

import datetime as dt
from collections.abc import Callable
from typing import Any

import pandas as pd

from cms_dagster.domain.model import Ontology
from cms_dagster.incidents.report import build_report, confirmed_incidents, episode_status, incident_id
from cms_dagster.incidents.store import save_report
from cms_dagster.llm import Llm

__all__ = ["episode_versions", "update_reports"]


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


def update_reports(
    warehouse: Any,
    archive: Any,
    ontology: Ontology,
    llm: Llm,
    since: dt.datetime,
    until: pd.Timestamp,
    *,
    progress: Callable[[str], None] = lambda _: None,
) -> list[dict[str, Any]]:
    """Build and store the report of every incident with alarms in [since, until]."""
    eps = confirmed_incidents(warehouse.query, since, (until + pd.Timedelta(seconds=1)).to_pydatetime(), ontology)
    reports = []
    for i, e in enumerate(eps, 1):
        progress(f"incident {i}/{len(eps)}: {incident_id(e)} ({e.alarms} alarms from {e.start:%Y-%m-%d %H:%M})")
        report = build_report(warehouse.query, e, ontology, llm, until=until, marts_schema=warehouse.marts)
        save_report(warehouse, archive, report)
        reports.append(report)
    return reports
