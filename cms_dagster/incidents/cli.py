"""`cms incidents list | show | build`: the incident reports in the warehouse, and building them by hand."""

from __future__ import annotations

import argparse
import datetime as dt
import json
import sys
from typing import IO, Any

__all__ = ["register"]

EPILOG = """\
examples:
  cms incidents list                       # newest first: id, start, end, status, top cause, summary
  cms incidents list --json --status open
  cms incidents list --since 24h           # the incidents of the last day (open ones included)
  cms incidents show inc-20261125-2000-3f2a1b
  cms incidents build --since 7d           # write or update the reports of the last week's incidents
  cms incidents build --since 7d --workers 2   # two processes rank causes side by side

Reports are written by the intelligence/incident_report asset, which a sensor materializes for every
incident (confirmed alarm episodes that are one problem: related in the ontology and close in time; one
dynamic partition per incident) as the anomalies asset runs; `build` does the
same from the command line. Each report is stored in the warehouse (intelligence.incidents) and in the
lake's archive zone (incidents/<id>.json).
"""


def _summary(report: dict[str, Any]) -> dict[str, Any]:
    return {
        "id": report["id"],
        "start": report["start"],
        "end": report["end"],
        "status": report["status"],
        "causes": [{"entity": c["entity"], "kind": c["kind"], "confidence": c["confidence"]} for c in report["causes"]],
        "root_cause": report["root_cause"],
        "narrative": {"summary": report["narrative"]["summary"], "engine": report["narrative_meta"]["engine"]},
        "alarms": report["episode"]["alarms"],
    }


def _run_list(args: argparse.Namespace, *, stdout: IO[str] | None = None, stderr: IO[str] | None = None) -> int:
    from cms_dagster import settings as settings_mod
    from cms_dagster.incidents.store import NoIncidentsTable, list_reports
    from cms_dagster.warehouse.client import from_settings

    stdout, stderr = stdout or sys.stdout, stderr or sys.stderr
    try:
        wh = from_settings(settings_mod.load())
        since = None
        if args.since:  # a duration counts back from the detector's latest scored time (data time)
            from cms_dagster.incidents.report import scored_until

            latest = scored_until(wh.query)
            since = _since(args.since, latest.to_pydatetime() if latest is not None else dt.datetime.now(dt.timezone.utc))
        reports = list_reports(wh.query, args.status, since=since)
    except (NoIncidentsTable, ValueError) as exc:
        print(f"error: {exc}", file=stderr)
        return 2
    if args.json:
        stdout.write(json.dumps([_summary(r) for r in reports], indent=2) + "\n")
        return 0
    stdout.write(f"{len(reports)} incident(s)\n")
    for r in reports:
        top = r["root_cause"]
        end = r["end"] or "open"
        stdout.write(f"{r['id']}  {r['start']}  {end:20}  {r['status']:6}  {top['entity']} ({top['kind']})\n")
        stdout.write(f"    {r['narrative']['summary'][:160]}\n")
    if reports:
        stdout.write(f"\ndetails: cms incidents show {reports[0]['id']}\n")
    return 0


def _run_show(args: argparse.Namespace, *, stdout: IO[str] | None = None, stderr: IO[str] | None = None) -> int:
    from cms_dagster import settings as settings_mod
    from cms_dagster.incidents.report import to_markdown
    from cms_dagster.incidents.store import NoIncidentsTable, get_report
    from cms_dagster.warehouse.client import from_settings

    stdout, stderr = stdout or sys.stdout, stderr or sys.stderr
    try:
        report = get_report(from_settings(settings_mod.load()).query, args.id)
    except (NoIncidentsTable, ValueError) as exc:
        print(f"error: {exc}", file=stderr)
        return 2
    if report is None:
        print(f"error: no incident {args.id!r}: `cms incidents list` shows the ids", file=stderr)
        return 2
    stdout.write((json.dumps(report, indent=2) if args.json else to_markdown(report)) + "\n")
    return 0


def _since(text: str, now: dt.datetime) -> dt.datetime:
    import pandas as pd

    try:
        return now - pd.Timedelta(text).to_pytimedelta()
    except ValueError:
        pass
    try:
        t = dt.datetime.fromisoformat(text.replace("Z", "+00:00"))
    except ValueError:
        raise ValueError(f"--since {text!r} is neither a duration (24h, 7d) nor an ISO-8601 time") from None
    return t.replace(tzinfo=dt.timezone.utc) if t.tzinfo is None else t.astimezone(dt.timezone.utc)


def _run_build(args: argparse.Namespace, *, stdout: IO[str] | None = None, stderr: IO[str] | None = None) -> int:
    from cms_dagster import settings as settings_mod
    from cms_dagster.detect.episodes import NoAlarmsTable
    from cms_dagster.domain import load_ontology
    from cms_dagster.incidents.run import update_reports, update_reports_in_parallel
    from cms_dagster.lake import Lake
    from cms_dagster.llm import LlmError
    from cms_dagster.llm import from_settings as llm_from_settings
    from cms_dagster.warehouse.client import from_settings

    stdout, stderr = stdout or sys.stdout, stderr or sys.stderr
    try:
        s = settings_mod.load()
        wh = from_settings(s)
        from cms_dagster.incidents.report import scored_until

        until = scored_until(wh.query)
        if until is None:
            raise NoAlarmsTable()
        since = _since(args.since, until.to_pydatetime())
        if args.workers < 1:
            raise ValueError(f"--workers {args.workers}: give 1 or more processes")
        import pandas as pd

        from cms_dagster.incidents.grouping import window_between

        ontology = load_ontology(s.domain_file or None)
        # one read of the alarms (and the two weeks before, for the schedule) for the reports and the list
        # of what the schedule explains
        window = window_between(wh.query, since, (until + pd.Timedelta(seconds=1)).to_pydatetime(), ontology)
        incidents = [i.as_episode() for i in window.incidents]
        explained = window.explained

        def progress(message: str) -> None:
            print(message, file=stderr)

        if args.workers > 1:
            reports = update_reports_in_parallel(s, since, until, workers=args.workers, progress=progress, incidents=incidents)
        else:
            reports = update_reports(
                wh, Lake.from_settings(s).archive, ontology, llm_from_settings(s), since, until, progress=progress,
                incidents=incidents,
            )
    except (NoAlarmsTable, ValueError, LlmError) as exc:
        print(f"error: {exc}", file=stderr)
        return 2
    stdout.write(f"{len(reports)} incident report(s) written or updated\n")
    for r in reports:
        stdout.write(f"{r['id']}  {r['status']:6}  {r['root_cause']['entity']} ({r['root_cause']['kind']})\n")
    if explained:
        stdout.write(
            f"{len(explained)} confirmed episode(s) explained by the schedule (each of their entities had one at that "
            "time on earlier days or weeks): no report\n"
        )
        for e in explained:
            names = ", ".join(e.entities[:3]) + (" ..." if len(e.entities) > 3 else "")
            stdout.write(f"  {e.start:%Y-%m-%d %H:%M}  {names}\n")
    return 0


def register(subparsers: argparse._SubParsersAction) -> None:
    """Add ``incidents`` (``list``, ``show``, ``build``) to a ``cms`` argparse subparsers object."""
    p = subparsers.add_parser(
        "incidents",
        help="incident reports: ranked causes, blast radius, timeline, remediation, narrative",
        description="Read the incident reports (one per incident: confirmed alarm episodes that are one problem) or build them by hand.",
        epilog=EPILOG,
        formatter_class=argparse.RawDescriptionHelpFormatter,
    )
    sub = p.add_subparsers(dest="incidents_command", metavar="SUBCOMMAND", required=True)
    ls = sub.add_parser(
        "list", help="the incidents, newest first", description="List the incident reports, newest first.",
        epilog=EPILOG, formatter_class=argparse.RawDescriptionHelpFormatter,
    )
    ls.add_argument("--json", action="store_true", help="a JSON list (id, start, end, status, causes, narrative)")
    ls.add_argument("--status", choices=["open", "closed"], help="only open or closed incidents")
    ls.add_argument(
        "--since", help="only incidents still going at or after this time: a duration before the detector's "
        "latest scored time (24h, 7d) or an ISO time"
    )
    ls.set_defaults(func=_run_list)
    show = sub.add_parser(
        "show", help="one report in full", description="Print one incident report (Markdown, or --json).",
        epilog=EPILOG, formatter_class=argparse.RawDescriptionHelpFormatter,
    )
    show.add_argument("id", help="an incident id from `cms incidents list`")
    show.add_argument("--json", action="store_true", help="the whole report as JSON")
    show.set_defaults(func=_run_show)
    build = sub.add_parser(
        "build", help="write or update the reports of recent confirmed episodes",
        description="Write or update the report of every incident with alarms since --since (before the "
        "detector's latest scored time), as the incident_report asset does.",
        epilog=EPILOG, formatter_class=argparse.RawDescriptionHelpFormatter,
    )
    build.add_argument("--since", default="7d", help="a duration before the latest scored time (7d) or an ISO time")
    build.add_argument("--workers", type=int, default=1, help="processes that build reports side by side (default 1)")
    build.set_defaults(func=_run_build)
