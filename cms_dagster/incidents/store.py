"""Where incident reports are kept: the warehouse's ``intelligence.incidents`` table (one row per incident,
replaced when the report is updated) and the lake's archive zone as JSON (``incidents/<id>.json``).

Plain Python; no Dagster. ``Warehouse`` is :class:`cms_dagster.warehouse.client.Warehouse`.
"""

from __future__ import annotations

import json
from collections.abc import Callable
from typing import Any

import pandas as pd

from cms_dagster.lake.layout import incident_key

__all__ = ["INCIDENTS_TABLE", "NoIncidentsTable", "get_report", "lake_key", "list_reports", "save_report", "save_reports"]

INCIDENTS_TABLE = "intelligence.incidents"


class NoIncidentsTable(LookupError):
    def __init__(self) -> None:
        super().__init__(
            "no incident reports yet (the warehouse has no intelligence.incidents table): materialize the "
            "intelligence/incident_report asset (its sensor does it as alarms arrive, or `cms demo`)"
        )


def lake_key(incident: str) -> str:
    return incident_key(incident)


def _row(report: dict[str, Any]) -> dict[str, Any]:
    def ts(v: str | None) -> Any:
        return pd.Timestamp(v).tz_convert("UTC").tz_localize(None) if v else pd.NaT

    return {
        "id": report["id"],
        "start_ts": ts(report["start"]),
        "end_ts": ts(report["end"]),
        "status": report["status"],
        "root_entity": report["root_cause"]["entity"],
        "root_kind": report["root_cause"]["kind"],
        "summary": report["narrative"]["summary"],
        "narrative_engine": report["narrative_meta"]["engine"],
        "as_of_ts": ts(report.get("as_of")),
        "report_json": json.dumps(report, sort_keys=True),
    }


def _rows(reports: list[dict[str, Any]]) -> pd.DataFrame:
    df = pd.DataFrame([_row(r) for r in reports])
    for c in ("start_ts", "end_ts", "as_of_ts"):
        df[c] = df[c].astype("datetime64[us]")
    return df


def save_report(warehouse: Any, archive: Any, report: dict[str, Any]) -> str:
    """Store (or replace) the report in the warehouse and the lake; returns the lake URI."""
    return save_reports(warehouse, archive, [report])[0]


def save_reports(warehouse: Any, archive: Any, reports: list[dict[str, Any]]) -> list[str]:
    """Store (or replace) several reports: the lake's JSON one by one, the warehouse's rows in one write
    (on DuckDB, one published snapshot for all of them). Returns the lake URIs."""
    if not reports:
        return []
    uris = []
    for report in reports:
        key = lake_key(report["id"])
        archive.put(key, json.dumps(report, indent=2, sort_keys=True).encode())
        uris.append(archive.uri(key))
    warehouse.replace_rows(INCIDENTS_TABLE, _rows(reports), "id")
    return uris


def _read(query: Callable[[str, list], pd.DataFrame], sql: str, params: list) -> pd.DataFrame:
    try:
        return query(sql, params)
    except Exception as exc:
        if "incidents" in str(exc).lower():
            raise NoIncidentsTable() from None
        raise


def _naive_utc(t: Any) -> Any:
    ts = pd.Timestamp(t)
    return (ts.tz_convert("UTC").tz_localize(None) if ts.tzinfo else ts).to_pydatetime()


def list_reports(
    query: Callable[[str, list], pd.DataFrame],
    status: str | None = None,
    *,
    since: Any = None,
    until: Any = None,
) -> list[dict[str, Any]]:
    """The stored reports (newest first), in full: with ``status``, only those; with ``since`` and/or
    ``until`` (datetimes, UTC when naive), only the incidents that overlap [since, until) (an open
    incident reaches to now). The filter runs in the warehouse: only those reports are read."""
    sql = f"select report_json from {INCIDENTS_TABLE}"
    where: list[str] = []
    params: list = []
    if status:
        where.append("status = ?")
        params.append(status)
    if until is not None:
        where.append("start_ts < ?")
        params.append(_naive_utc(until))
    if since is not None:
        where.append("(end_ts is null or end_ts >= ?)")
        params.append(_naive_utc(since))
    if where:
        sql += " where " + " and ".join(where)
    df = _read(query, sql + " order by start_ts desc, id", params)
    return [json.loads(x) for x in df["report_json"]]


def get_report(query: Callable[[str, list], pd.DataFrame], incident: str) -> dict[str, Any] | None:
    df = _read(query, f"select report_json from {INCIDENTS_TABLE} where id = ?", [incident])
    return json.loads(df["report_json"].iloc[0]) if len(df) else None
