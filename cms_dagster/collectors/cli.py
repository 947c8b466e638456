"""``cms collect``: a one-off CloudWatch collection that prints the run summary."""

from __future__ import annotations

import argparse
import datetime as dt
import json
import sys
from typing import Any

DESCRIPTION = """\
Collect CloudWatch metrics (RDS, SQS, Lambda, EKS Container Insights) for the hour windows covering
[--start, --end) into the raw zone as OTLP JSON lines, with the fewest GetMetricData calls (500 queries
per call), and print what it did: metrics discovered, API calls by operation, datapoints, bytes, raw keys
written and the estimated CloudWatch cost. Re-running a window overwrites its batches (no duplicates).

Where it collects from: CMS_AWS_REGIONS, CMS_AWS_ROLE_ARNS (accounts assumed into via STS),
CMS_CW_NAMESPACES, CMS_CW_RESOURCE_FILTER, CMS_CW_STATISTICS and the standard AWS_* variables
(AWS_ENDPOINT_URL included). With none of CMS_AWS_REGIONS, CMS_AWS_ROLE_ARNS, AWS_ENDPOINT_URL set, nothing
is collected: in the embedded mode the simulator stands in for CloudWatch."""

EPILOG = """\
examples:
  cms collect                                   # the previous complete hour
  cms collect --start 2026-11-20T00:00Z --end 2026-11-21T00:00Z --json
  CMS_AWS_REGIONS=eu-west-1,us-east-1 cms collect --skip-done --start 2026-11-20T00:00Z"""


def register(subparsers: Any) -> None:
    p = subparsers.add_parser(
        "collect",
        help="collect CloudWatch metrics into the raw zone (one-off run)",
        description=DESCRIPTION,
        epilog=EPILOG,
        formatter_class=argparse.RawDescriptionHelpFormatter,
    )
    p.add_argument("--start", help="ISO-8601 UTC start (rounded down to the hour); default: the previous complete hour")
    p.add_argument("--end", help="ISO-8601 UTC end (rounded up to the hour); default: start + 1 hour")
    p.add_argument("--json", action="store_true", help="print the run summary as JSON")
    p.add_argument("--skip-done", action="store_true", help="leave windows that already have a checkpoint alone")
    p.set_defaults(func=run)


def parse_time(value: str, what: str) -> dt.datetime:
    v = value.strip()
    if v.endswith("Z") or v.endswith("z"):
        v = v[:-1] + "+00:00"
    try:
        t = dt.datetime.fromisoformat(v)
    except ValueError:
        raise SystemExit(f"cms collect: {what} {value!r} is not an ISO-8601 time: write e.g. 2026-11-20T14:00Z") from None
    return t.replace(tzinfo=dt.timezone.utc) if t.tzinfo is None else t.astimezone(dt.timezone.utc)


def run(args: argparse.Namespace) -> int:
    from cms_dagster import lake, settings
    from cms_dagster.collectors.collector import CollectorConfig, collect
    from cms_dagster.collectors.targets import NOT_CONFIGURED
    from cms_dagster.collectors.windows import previous_hour

    s = settings.load()
    if args.start:
        start = parse_time(args.start, "--start")
        end = parse_time(args.end, "--end") if args.end else start + dt.timedelta(hours=1)
    elif args.end:
        end = parse_time(args.end, "--end")
        start = end - dt.timedelta(hours=1)
    else:
        start, end = previous_hour()
    if end <= start:
        print(f"cms collect: --end {end.isoformat()} must be after --start {start.isoformat()}", file=sys.stderr)
        return 2
    if not s.aws_configured:
        reason = NOT_CONFIGURED
        if args.json:
            print(json.dumps({"skipped": reason}))
        else:
            print(f"nothing collected: {reason}")
        return 0
    try:
        config = CollectorConfig.from_settings(s)
    except ValueError as e:
        print(f"cms collect: {e}", file=sys.stderr)
        return 2
    summary = collect(config, lake.Zone(s.raw_url), start, end, skip_done=args.skip_done)
    if args.json:
        print(json.dumps(summary.as_dict(), indent=2))
    else:
        print(summary.human())
        for k in summary.raw_keys:
            print(f"  wrote {lake.Zone(s.raw_url).uri(k)}")
    return 0 if summary.ok else 1
