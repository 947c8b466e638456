"""Incident reports: one per confirmed alarm episode, with ranked causes, blast radius, timeline,
remediation and a checked narrative (LLM or offline). See :mod:`cms_dagster.incidents.report`."""

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
    episode_status,
    find_episode,
    incident_id,
    incident_start,
    scored_until,
    to_markdown,
)
from cms_dagster.incidents.store import get_report, list_reports, save_report

__all__ = [
    "NARRATIVE_SCHEMA",
    "blast_radius",
    "build_report",
    "check_narrative",
    "confirmed_episodes",
    "episode_status",
    "find_episode",
    "get_report",
    "incident_id",
    "incident_start",
    "list_reports",
    "offline_narrative",
    "save_report",
    "scored_until",
    "to_markdown",
    "write_narrative",
]
