"""One evaluation: the symptoms and episodes of a window become alerts, dispatched through the rules."""

from __future__ import annotations

import datetime as dt
from collections.abc import Mapping
from typing import Any

import pandas as pd

from cms_dagster.alerts.channels import Channel
from cms_dagster.alerts.router import AlertStore, DispatchReport, dispatch
from cms_dagster.alerts.rules import Alert, RoutingRules
from cms_dagster.alerts.symptoms import episode_alerts, symptom_alerts
from cms_dagster.detect.episodes import NoAlarmsTable
from cms_dagster.domain.model import Ontology
from cms_dagster.incidents.grouping import DEFAULT_FAR
from cms_dagster.incidents.report import confirmed_incidents, incident_id

__all__ = ["collect_alerts", "data_until", "evaluate_alerts"]


def collect_alerts(
    query: Any, ontology: Ontology, since: dt.datetime, until: pd.Timestamp, *, marts_schema: str = "marts", dagster_url: str = ""
) -> list[Alert]:
    """Symptom alerts of [since, until) tagged with their incident, and warnings for unexplained incidents."""
    symptoms = symptom_alerts(query, ontology, since, until.to_pydatetime(), marts_schema=marts_schema, dagster_url=dagster_url)
    try:
        eps = confirmed_incidents(query, since, (until + pd.Timedelta(seconds=1)).to_pydatetime(), ontology)
    except NoAlarmsTable:
        eps = []
    # an incident's warning resolves when the incident closes (no episode can join it any more)
    tagged, warnings = episode_alerts(
        eps, symptoms, ontology, incident_id, until=until, dagster_url=dagster_url, close_after=DEFAULT_FAR
    )
    return tagged + warnings


def evaluate_alerts(
    query: Any,
    ontology: Ontology,
    rules: RoutingRules,
    store: AlertStore,
    channels: Mapping[str, Channel],
    since: dt.datetime,
    until: pd.Timestamp,
    *,
    marts_schema: str = "marts",
    dagster_url: str = "",
    **options: Any,
) -> DispatchReport:
    alerts = collect_alerts(query, ontology, since, until, marts_schema=marts_schema, dagster_url=dagster_url)
    return dispatch(alerts, rules, store, channels, until, dagster_url=dagster_url, **options)


def data_until(query: Any, marts_schema: str = "marts") -> pd.Timestamp | None:
    """The end of the latest minute of feed data in the warehouse (data time)."""
    try:
        last = query(f"select max(minute_ts) as t from {marts_schema}.fct_feed_status", [])["t"].iloc[0]
    except Exception as exc:
        if "fct_feed_status" in str(exc).lower():
            return None
        raise
    if last is None or pd.isna(last):
        return None
    t = pd.Timestamp(last)
    t = t.tz_localize("UTC") if t.tzinfo is None else t.tz_convert("UTC")
    return t + pd.Timedelta(minutes=1)
