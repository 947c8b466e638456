"""`cms alerts list | test | evaluate`: the alerts raised, a test message per channel, an evaluation by hand."""

from __future__ import annotations

import argparse
import datetime as dt
import json
import sys
from typing import IO, Any

__all__ = ["register"]

EPILOG = """\
examples:
  cms alerts list                          # every alert: severity, page or not, source, data time, resolved
  cms alerts list --json
  cms alerts test --channel outbox         # send a test message through one channel (outbox, sns, slack, ...)
  cms alerts evaluate --since 7d           # raise and route the alerts of the last week's data by hand

Alerts page on symptoms (a feed down or stale past its SLA, a batch run failed or late, a failing ERROR
asset check); incidents (confirmed alarm episodes grouped) with no symptom are warnings. Routing, grouping, inhibition, repeat interval
and silences come from one YAML file (CMS_ALERT_RULES_FILE, default: the packaged alert_rules.yaml); the
channels from CMS_ALERT_CHANNELS. In Dagster, sensors and job hooks do this as data arrives.
"""


def _context() -> tuple[Any, Any, Any]:
    from cms_dagster import settings as settings_mod
    from cms_dagster.alerts.router import AlertStore
    from cms_dagster.lake import Lake

    s = settings_mod.load()
    archive = Lake.from_settings(s).archive
    return s, archive, AlertStore(archive)


def alert_rows(store: Any) -> list[dict[str, Any]]:
    rows = []
    for st in store.all():
        a = st["alert"]
        rows.append(
            {
                "id": a["id"],
                "dedup_key": a["dedup_key"],
                "severity": a["severity"],
                "page": a["page"],
                "source": a["source"],
                "summary": a["summary"],
                "at": a["at"],
                "resolved_at": a["resolved_at"],
                "status": st["status"],
                "incident_id": a["incident_id"],
                "channels": st.get("channels", []),
                "muted": st.get("muted"),
                "notifications": st.get("notifications", 0),
                "link": a["link"],
            }
        )
    return sorted(rows, key=lambda r: (r["at"], r["dedup_key"]))


def _run_list(args: argparse.Namespace, *, stdout: IO[str] | None = None, stderr: IO[str] | None = None) -> int:
    stdout, stderr = stdout or sys.stdout, stderr or sys.stderr
    try:
        _, _, store = _context()
    except ValueError as exc:
        print(f"error: {exc}", file=stderr)
        return 2
    rows = alert_rows(store)
    if args.json:
        stdout.write(json.dumps(rows, indent=2) + "\n")
        return 0
    pages = sum(r["page"] for r in rows)
    stdout.write(f"{len(rows)} alert(s), {pages} paging\n")
    for r in rows:
        state = r["muted"] or ("resolved " + r["resolved_at"] if r["resolved_at"] else "firing")
        stdout.write(f"{r['at']}  {r['severity']:8} {'PAGE' if r['page'] else '    '}  {r['summary'][:90]}  [{state}]\n")
    return 0


def _run_test(args: argparse.Namespace, *, stdout: IO[str] | None = None, stderr: IO[str] | None = None) -> int:
    from cms_dagster.alerts.channels import ChannelError, channels_from_settings

    stdout, stderr = stdout or sys.stdout, stderr or sys.stderr
    try:
        s, archive, _ = _context()
        if args.channel not in ("outbox", *s.alert_channels):
            raise ChannelError(
                f"channel {args.channel!r} is not enabled: add it to CMS_ALERT_CHANNELS (now {','.join(s.alert_channels)})"
            )
        channel = channels_from_settings(s, archive)[args.channel]
        now = dt.datetime.now(dt.timezone.utc).replace(microsecond=0).isoformat().replace("+00:00", "Z")
        message = {
            "id": f"msg-test-{now}",
            "status": "firing",
            "severity": "warning",
            "page": False,
            "title": f"[TEST] CMS alert channel {args.channel}",
            "text": "A test message from `cms alerts test`: nothing is wrong.",
            "link": s.dagster_url,
            "at": now,
            "dedup_key": f"test:{args.channel}",
            "channels": [args.channel],
            "alerts": [],
            "incident_ids": [],
        }
        ref = channel.send(message)
    except (ChannelError, ValueError) as exc:
        print(f"error: {exc}", file=stderr)
        return 2
    except Exception as exc:  # a channel's own failure: say which, no traceback
        print(f"error: {args.channel} failed: {type(exc).__name__}: {exc}", file=stderr)
        return 1
    stdout.write(f"sent a test message through {args.channel}: {ref}\n")
    return 0


def _run_evaluate(args: argparse.Namespace, *, stdout: IO[str] | None = None, stderr: IO[str] | None = None) -> int:
    import pandas as pd

    from cms_dagster.alerts.channels import ChannelError, channels_from_settings
    from cms_dagster.alerts.rules import RulesError, load_rules
    from cms_dagster.alerts.run import data_until, evaluate_alerts
    from cms_dagster.domain import load_ontology
    from cms_dagster.warehouse.client import from_settings

    stdout, stderr = stdout or sys.stdout, stderr or sys.stderr
    try:
        s, archive, store = _context()
        wh = from_settings(s)
        until = data_until(wh.query, wh.marts)
        if until is None:
            raise ValueError("the warehouse has no feed data yet: `cms demo` or the hourly assets load it")
        since = (until - pd.Timedelta(args.since)).to_pydatetime()
        report = evaluate_alerts(
            wh.query, load_ontology(s.domain_file or None), load_rules(s.alert_rules_file or None), store, channels_from_settings(s, archive),
            since, until, marts_schema=wh.marts, dagster_url=s.dagster_url,
        )
    except (ValueError, RulesError, ChannelError) as exc:
        print(f"error: {exc}", file=stderr)
        return 2
    d = report.to_dict()
    stdout.write(
        f"{d['messages']} message(s) sent; {len(d['inhibited'])} inhibited, {len(d['silenced'])} silenced, "
        f"{len(d['failed'])} delivery failure(s) kept for retry\n"
    )
    return 0


def register(subparsers: argparse._SubParsersAction) -> None:
    """Add ``alerts`` (``list``, ``test``, ``evaluate``) to a ``cms`` argparse subparsers object."""
    p = subparsers.add_parser(
        "alerts", help="alerts: list them, test a channel, evaluate by hand",
        description="The alerts CMS raised (pages on symptoms, warnings for unexplained anomalies) and their channels.",
        epilog=EPILOG, formatter_class=argparse.RawDescriptionHelpFormatter,
    )
    sub = p.add_subparsers(dest="alerts_command", metavar="SUBCOMMAND", required=True)
    ls = sub.add_parser("list", help="every alert, oldest first", description="List every alert, oldest first.",
                        epilog=EPILOG, formatter_class=argparse.RawDescriptionHelpFormatter)
    ls.add_argument("--json", action="store_true", help="a JSON list (id, dedup_key, severity, page, source, at, ...)")
    ls.set_defaults(func=_run_list)
    test = sub.add_parser("test", help="send a test message through one channel",
                          description="Send a test message through one channel and say what it answered.",
                          epilog=EPILOG, formatter_class=argparse.RawDescriptionHelpFormatter)
    test.add_argument("--channel", required=True, choices=["outbox", "sns", "slack", "webhook", "pagerduty"])
    test.set_defaults(func=_run_test)
    ev = sub.add_parser("evaluate", help="raise and route the alerts of recent data",
                        description="Raise the alerts of the data up to its latest minute and route them.",
                        epilog=EPILOG, formatter_class=argparse.RawDescriptionHelpFormatter)
    ev.add_argument("--since", default="24h", help="how far back from the latest data (24h, 7d)")
    ev.set_defaults(func=_run_evaluate)
