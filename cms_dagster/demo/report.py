"""What the demo shows at the end: the week's incidents with their reports, the alerts in the outbox, and
where to look next (places, and commands that work as printed)."""

from __future__ import annotations

import argparse
import os
import shutil
import sys
import time
from collections.abc import Callable
from pathlib import Path

from cms_dagster import settings as settings_mod
from cms_dagster.demo.build import _say
from cms_dagster.lake.layout import OUTBOX_PREFIX


def _cms_command() -> str:
    """How the user calls cms: `cms` when that is on PATH and the one running, else its path."""
    exe = Path(sys.executable).parent / "cms"
    on_path = shutil.which("cms")
    if on_path and Path(on_path).resolve() == exe.resolve():
        return "cms"
    try:
        return str(exe.relative_to(Path.cwd()))
    except ValueError:
        return str(exe)


def show_incidents_and_alerts(
    s: settings_mod.Settings,
    say: Callable[[str], None] = _say,
    *,
    build: bool = True,
    days: int = 8,
    workers: int | None = None,
) -> dict[str, int]:
    """Write the incident reports of the ``days`` up to the detector's latest scored time and route their
    alerts (as `cms incidents build` and `cms alerts evaluate` do, with ``workers`` processes for the
    reports, one per core up to 4 by default; ``build=False``: only read what an earlier run wrote), then
    list the incidents and the alerts in the outbox. benchmarks/incidents_step.py times it."""
    import pandas as pd

    from cms_dagster.alerts.channels import OutboxChannel, channels_from_settings
    from cms_dagster.alerts.router import AlertStore
    from cms_dagster.alerts.rules import load_rules
    from cms_dagster.alerts.run import data_until, evaluate_alerts
    from cms_dagster.domain import load_ontology
    from cms_dagster.incidents.report import scored_until
    from cms_dagster.incidents.run import update_reports_in_parallel
    from cms_dagster.incidents.store import NoIncidentsTable, list_reports
    from cms_dagster.lake import Lake
    from cms_dagster.warehouse.client import from_settings

    wh = from_settings(s)
    archive = Lake.from_settings(s).archive
    ont = load_ontology(s.domain_file or None)
    until = scored_until(wh.query)
    if until is None:
        say("no alarms scored: no incident reports")
        return {"incidents": 0, "messages": 0}
    inhibited = sum(1 for st in AlertStore(archive).all() if (st.get("muted") or "").startswith("inhibited"))
    if build:
        t = time.time()
        say("writing the incident reports of every incident (confirmed alarm episodes grouped)")
        # one process per core: ranking the causes of a week's incidents is most of this step
        reports = update_reports_in_parallel(
            s, (until - pd.Timedelta(days=days)).to_pydatetime(), until, workers=workers or min(4, os.cpu_count() or 1)
        )
        say(f"  {len(reports)} report(s) in {time.time() - t:.0f} s")
        data_end = data_until(wh.query, wh.marts) or until
        rep = evaluate_alerts(
            wh.query, ont, load_rules(s.alert_rules_file or None), AlertStore(archive),
            channels_from_settings(s, archive), (data_end - pd.Timedelta(days=days)).to_pydatetime(), data_end,
            marts_schema=wh.marts, dagster_url=s.dagster_url,
        )
        inhibited = len(rep.inhibited)
    else:
        try:
            reports = list_reports(wh.query, since=(until - pd.Timedelta(days=days)).to_pydatetime())
        except NoIncidentsTable:
            reports = []
    messages = OutboxChannel(archive).read()
    print(f"\nThe week's incidents ({len(reports)}; cms incidents show ID for a report)", flush=True)
    for r in sorted(reports, key=lambda r: r["start"]):
        top = r["root_cause"]
        print(f"  {r['id']}  {r['status']:6}  {top['entity']} ({top['kind']})", flush=True)
    pages = [m for m in messages if m["page"] and m["status"] == "firing"]
    print(
        f"\nAlerts in the outbox: {len(messages)} message(s), {len(pages)} page(s), "
        f"{inhibited} muted by inhibition ({archive.uri(OUTBOX_PREFIX)}; cms alerts list)",
        flush=True,
    )
    for m in messages[-10:]:
        print(f"  {m['at']}  {m['title'][:100]}", flush=True)
    return {"incidents": len(reports), "messages": len(messages)}


def where_to_look(s: settings_mod.Settings, args: argparse.Namespace, cms: str = "cms") -> list[str]:
    """The "Where to look" block: places, and commands that work as printed (from the repository root)."""
    py = str(Path(cms).parent / "python") if "/" in cms else "python"
    query = (
        f"{py} -c \"import duckdb; print(duckdb.connect('{s.duckdb_path}', read_only=True)"
        ".sql('select count(*) as points from raw.metric_points'))\""
    )
    return [
        "",
        "Where to look",
        f"  Dagster UI        http://{args.host}:{args.port}   (the graph: Lineage, in the top bar)",
        f"  dashboard         http://{args.host}:{args.dashboard_port}   (feeds, batches, sub-stages, incidents, ask)",
        f"  raw zone          {s.raw_url}/otel/metrics/",
        f"  quarantine        {s.raw_url}/quarantine/",
        f"  processed zone    {s.processed_url}/points/",
        f"  warehouse         {s.duckdb_path}",
        f"  ground truth      {s.archive_url}/simulations/seed-{args.seed}/labels.json",
        f"  alert outbox      {s.archive_url}/{OUTBOX_PREFIX}",
        "",
        "Commands (from this directory; while the demo serves, its runs may hold the warehouse for a moment)",
        f"  points loaded     {query}",
        f"  what is wrong     {cms} detect alarms --since 7d",
        f"  and why           {cms} rca incident --latest",
        f"  incidents         {cms} incidents list",
        f"  alerts            {cms} alerts list",
        f"  settings          {cms} config",
        "",
    ]
