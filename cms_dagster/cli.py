"""The ``cms`` command. Each area registers its own subcommands (``register(subparsers)`` in its cli.py);
this module only assembles them and adds the platform's own: config, simulate, domain, demo."""

from __future__ import annotations

import argparse
import datetime as dt
import importlib
import sys
from collections.abc import Sequence

import orjson

# areas that contribute subcommands, in the order `cms --help` lists them
AREAS = [
    "cms_dagster.demo",
    "cms_dagster.collectors.cli",
    "cms_dagster.ingest.cli",
    "cms_dagster.warehouse.cli",
    "cms_dagster.detect.cli",
    "cms_dagster.rca.cli",
    "cms_dagster.nlq.cli",
    "cms_dagster.incidents.cli",
    "cms_dagster.alerts.cli",
    "cms_dagster.infra.cli",
    "cms_dagster.dashboard.cli",
]

EPILOG = """\
start here:
  make demo                      set everything up, simulate a week, build it all, open the Dagster UI
  cms config                     show the effective settings (secrets masked)
  cms simulate --days 7          write simulated data with incidents into the raw zone

every subcommand has its own --help with examples.
"""


def _cmd_config(args: argparse.Namespace) -> int:
    from cms_dagster import settings

    try:
        rows = settings.describe()
    except ValueError as e:
        print(f"cms config: {e}", file=sys.stderr)
        return 2
    from cms_dagster.infra.dagster_instance import describe as describe_instance

    try:
        instance = describe_instance(settings.load_orchestrator())
    except ValueError as e:
        print(f"cms config: {e}", file=sys.stderr)
        return 2
    if args.json:
        out = {r[1]: {"value": r[2], "source": r[3], "group": r[0]} for r in rows}
        out["dagster_instance"] = {"value": instance, "source": "derived", "group": "orchestrator"}
        print(orjson.dumps(out, option=orjson.OPT_INDENT_2).decode())
        return 0
    print(f"Dagster instance: {instance}")
    group = None
    for g, name, value, source in rows:
        if g != group:
            print(f"\n[{g}]")
            group = g
        shown = value if value else "-"
        print(f"  {name:<28} {shown:<60} ({source})")
    return 0


def _cmd_simulate(args: argparse.Namespace) -> int:
    from cms_dagster import settings
    from cms_dagster.domain import OntologyError, load_ontology
    from cms_dagster.lake import Lake
    from cms_dagster.simulate.incidents import parse_incident_spec, parse_time
    from cms_dagster.simulate.run import simulate

    try:
        s = settings.load()
        ont = load_ontology(s.domain_file or None)
        if not 0 <= args.seed < 2**63:
            raise ValueError(f"--seed {args.seed} is out of range: use a whole number from 0 to 2^63-1")
        if not 1 <= args.days <= 366:
            raise ValueError(f"--days {args.days}: simulate from 1 to 366 days")
        start = parse_time(args.start)
        if not dt.datetime(1971, 1, 1, tzinfo=dt.timezone.utc) <= start <= dt.datetime(2200, 1, 1, tzinfo=dt.timezone.utc):
            raise ValueError(f"--start {args.start}: use a date between 1971 and 2200")
        incidents = (
            [parse_incident_spec(spec, ont, i) for i, spec in enumerate(args.incident)]
            if args.incident
            else None
        )
        end = start + dt.timedelta(days=args.days)
        outside = [i for i in incidents or [] if not (start <= i.start and i.end <= end)]
        if outside:
            i = outside[0]
            raise ValueError(
                f"--incident {i.kind}@{i.start:%Y-%m-%dT%H:%M}Z lasts until {i.end:%Y-%m-%dT%H:%M}Z, outside the simulated "
                f"window {start:%Y-%m-%dT%H:%M}Z..{end:%Y-%m-%dT%H:%M}Z: move it inside or change --start/--days"
            )
        res = simulate(
            ont,
            Lake.from_settings(s),
            days=args.days,
            seed=args.seed,
            start=start,
            incidents=incidents,
            default_incidents_on=not args.no_incidents,
            via_sdk=args.via_sdk or (),
            environment=s.environment,
            progress=None if args.json else print,
        )
    except (ValueError, OntologyError) as e:
        print(f"cms simulate: {e}", file=sys.stderr)
        return 2
    if args.json:
        print(
            orjson.dumps(
                {**res.summary(), "incidents": [i.label() for i in res.incidents]}, option=orjson.OPT_INDENT_2
            ).decode()
        )
    else:
        for inc in res.incidents:
            print(
                f"  {inc.id} {inc.kind:<28} {inc.root_cause:<45} {inc.label()['start']} .. {inc.label()['end']}"
            )
        sm = res.summary()
        print(
            f"{sm['runs']} batch runs ({sm['failed']} failed, {sm['sla_breaches']} SLA breaches), {sm['stage_attempts']} stage attempts"
        )
    return 0


def _cmd_domain_validate(args: argparse.Namespace) -> int:
    from cms_dagster.domain import OntologyError, load_ontology

    try:
        ont = load_ontology(args.file)
    except OntologyError as e:
        print(f"invalid ontology: {e}", file=sys.stderr)
        return 1
    print(
        f"{ont.source}: ok - {len(ont.asset_classes)} asset classes, {len(ont.jobs)} jobs, {len(ont.stages)} stages, "
        f"{len(ont.feeds)} feeds, {len(ont.resources)} resources, {len(ont.dependency_edges())} dependency edges"
    )
    return 0


def _area_modules() -> list:
    mods = []
    for name in AREAS:
        try:
            mods.append(importlib.import_module(name))
        except ModuleNotFoundError as e:
            if not e.name or not name.startswith(e.name):  # the area exists but something it needs is missing
                raise
    return mods


def build_parser() -> argparse.ArgumentParser:
    p = argparse.ArgumentParser(
        prog="cms",
        description="CMS - Central Metric Store: collect infrastructure, application and business metrics, "
        "find what is wrong and why.",
        epilog=EPILOG,
        formatter_class=argparse.RawDescriptionHelpFormatter,
    )
    p.add_argument("--traceback", action="store_true", help="show the Python traceback of an error (for bug reports)")
    sub = p.add_subparsers(dest="command", metavar="COMMAND")

    c = sub.add_parser(
        "config",
        help="print the effective settings, secrets masked",
        description="Print every setting CMS reads, its effective value and whether it came from the environment or a default. Secrets are masked.",
    )
    c.add_argument("--json", action="store_true", help="machine-readable output")
    c.set_defaults(func=_cmd_config)

    s = sub.add_parser(
        "simulate",
        help="write simulated CloudWatch and business metrics with incidents into the raw zone",
        description="Simulate the estate of the ontology: CloudWatch metrics (RDS, SQS, Lambda, EKS) and SDK business "
        "metrics (batch runs, sub-stages, feeds) as OTLP JSON lines in the raw zone, with injected incidents whose "
        "effects propagate along the ontology, and the ground truth (labels.json, truth/*.csv) in the archive zone. "
        "The same arguments give the same bytes.",
        epilog="examples:\n  cms simulate --days 7 --seed 42\n"
        "  cms simulate --days 2 --incident feed_outage@2026-11-16T05:45,entity=feed:cme-mdp,minutes=40\n"
        "  cms simulate --days 1 --no-incidents --json\n\n"
        "incident kinds: connection_pool_exhaustion, memory_leak, network_latency, delayed_market_data,\n"
        "volume_spike, capacity_constraint, job_failure, feed_outage",
        formatter_class=argparse.RawDescriptionHelpFormatter,
    )
    s.add_argument("--days", type=int, default=7, help="days to simulate (default 7)")
    s.add_argument("--seed", type=int, default=42, help="random seed (default 42)")
    s.add_argument(
        "--start", default="2026-11-16", help="UTC start date/time, ISO-8601 (default 2026-11-16, a Monday)"
    )
    s.add_argument(
        "--incident",
        action="append",
        metavar="KIND@ISO-TIME[,entity=ID][,minutes=N]",
        help="inject an incident (repeatable); replaces the default week's incidents",
    )
    s.add_argument("--no-incidents", action="store_true", help="simulate a quiet period")
    s.add_argument(
        "--via-sdk",
        action="append",
        metavar="ASSET_CLASS",
        help="leave this asset class's batch runs out of the raw zone and archive them as SDK events to send through the receiver",
    )
    s.add_argument("--json", action="store_true", help="print the summary and labels as JSON")
    s.set_defaults(func=_cmd_simulate)

    d = sub.add_parser(
        "domain",
        help="check the estate ontology",
        description="Work with the ontology (asset classes, jobs, stages, feeds, resources, SLAs).",
    )
    dsub = d.add_subparsers(dest="domain_command", metavar="SUBCOMMAND")
    dv = dsub.add_parser("validate", help="validate the ontology YAML; errors name the bad entry")
    dv.add_argument(
        "file", nargs="?", help="YAML file (default: CMS_DOMAIN_FILE or the packaged estate.yaml)"
    )
    dv.set_defaults(func=_cmd_domain_validate)
    d.set_defaults(func=lambda a: (d.print_help(), 1)[1])

    for module in _area_modules():
        module.register(sub)
        # areas may add to `domain` (e.g. export-seeds) through this hook
        if hasattr(module, "register_domain"):
            module.register_domain(dsub)
    return p


def main(argv: Sequence[str] | None = None) -> int:
    parser = build_parser()
    args = parser.parse_args(argv)
    if not getattr(args, "func", None):
        parser.print_help()
        return 1
    try:
        return int(args.func(args) or 0)
    except KeyboardInterrupt:
        print("interrupted", file=sys.stderr)
        return 130
    except (OSError, ValueError, ArithmeticError, UnicodeError, LookupError) as e:
        # bad input that a command did not explain itself: one line, never a traceback
        if args.traceback:
            raise
        what = " ".join(str(getattr(args, a)) for a in ("command",) if getattr(args, a, None))
        print(f"cms {what}: {_one_line(e)} (rerun with cms --traceback ... to see where)", file=sys.stderr)
        return 1


def _one_line(e: BaseException) -> str:
    text = " ".join(str(e).split()) or type(e).__name__
    if isinstance(e, UnicodeDecodeError):
        text = f"the input is not UTF-8 text (byte {e.start}): {text}"
    elif isinstance(e, IsADirectoryError):
        text = f"{e.filename} is a directory: give a file"
    elif isinstance(e, FileNotFoundError) and e.filename:
        text = f"{e.filename} does not exist ({e.strerror}): check the path"
    elif isinstance(e, OverflowError):
        text = f"a date or number is out of range ({text}): use values within years 1971-2200 and 64-bit integers"
    return text[:500]


if __name__ == "__main__":
    sys.exit(main())
