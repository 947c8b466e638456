"""Incident reports: one per incident (confirmed alarm episodes grouped by :mod:`cms_dagster.incidents.grouping`), with ranked causes, blast radius, timeline,
remediation and a checked narrative (LLM or offline). See :mod:`cms_dagster.incidents.report`."""

from cms_dagster.incidents.grouping import Incident, group_episodes, incidents_between
from cms_dagster.incidents.narrative import (
    NARRATIVE_SCHEMA,
    check_narrative,
    offline_narrative,
    write_narrative,
)
from cms_dagster.incidents.report import (
    blast_radius,
    build_report,
    confirmed_episodes,
    confirmed_incidents,
    episode_status,
    find_episode,
    incident_id,
    incident_start,
    scored_until,
    to_markdown,
)
from cms_dagster.incidents.store import get_report, list_reports, save_report, save_reports

__all__ = [
    "NARRATIVE_SCHEMA",
    "Incident",
    "blast_radius",
    "build_report",
    "check_narrative",
    "confirmed_episodes",
    "confirmed_incidents",
    "episode_status",
    "find_episode",
    "get_report",
    "group_episodes",
    "incident_id",
    "incident_start",
    "incidents_between",
    "list_reports",
    "offline_narrative",
    "save_report",
    "save_reports",
    "scored_until",
    "to_markdown",
    "write_narrative",
]
