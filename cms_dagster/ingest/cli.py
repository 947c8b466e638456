"""``cms ingest serve``: the OTLP/HTTP receiver for the business-metrics SDKs."""

from __future__ import annotations

import argparse
import logging
import secrets
import sys

from cms_dagster import settings as settings_mod
from cms_dagster.ingest.auth import KeyConfigError, load_access

SERVE_EPILOG = """\
examples:
  CMS_INGEST_API_KEYS=markets-batch:$(openssl rand -hex 16) cms ingest serve
  cms ingest serve --host 0.0.0.0 --port 4318 --flush-ms 50

SDKs then export to it with
  OTEL_EXPORTER_OTLP_ENDPOINT=http://HOST:4318
  OTEL_EXPORTER_OTLP_HEADERS="authorization=Bearer <key>"

endpoints: POST /v1/metrics (OTLP/HTTP, JSON or protobuf, optionally gzip), GET /health, GET /stats.
A request is answered 200 only once its points are durably in the raw zone (CMS_RAW_URL, a local
directory or s3://); rejected points come back as OTLP partialSuccess and go to quarantine/.
The receiver keeps no state: run several behind a load balancer on the same lake.

A team writes only the services it owns, declared in the keys file (docs/security.md):
  markets-batch:
    keys: [KEY]
    services: [pricing-batch, "batch-*"]
Limits (header size and timeouts, connections, body size, points per request, bodies in flight):
past them a request gets 400, 413 or 429 (with Retry-After); see the flags above and docs/security.md.
"""

KEY_EPILOG = """\
example:
  cms ingest new-key markets-batch >> keys.yaml     # then CMS_INGEST_API_KEYS_FILE=keys.yaml
"""


def register(subparsers: argparse._SubParsersAction) -> None:
    p = subparsers.add_parser(
        "ingest",
        help="OTLP/HTTP receiver for the business-metrics SDKs",
        description="Receive business metrics from the CMS SDKs (or any OpenTelemetry exporter) into the raw zone.",
    )
    sub = p.add_subparsers(dest="ingest_command", required=True, metavar="COMMAND")
    s = sub.add_parser(
        "serve",
        help="serve OTLP/HTTP on /v1/metrics",
        description="Serve OTLP/HTTP metrics on /v1/metrics, authenticated with per-team bearer keys "
        "(CMS_INGEST_API_KEYS or CMS_INGEST_API_KEYS_FILE).",
        epilog=SERVE_EPILOG,
        formatter_class=argparse.RawDescriptionHelpFormatter,
    )
    s.add_argument("--host", default="127.0.0.1", help="address to listen on (default 127.0.0.1; 0.0.0.0 for all)")
    s.add_argument("--port", type=int, default=4318, help="port (default 4318, the OTLP/HTTP port)")
    s.add_argument("--max-body-mb", type=float, default=16.0, help="largest request body, compressed or not (default 16)")
    s.add_argument("--flush-ms", type=int, default=50, help="group-commit window: how long a request may wait for others (default 50)")
    s.add_argument("--max-pending-mb", type=float, default=64.0, help="accepted bytes not yet durable before answering 429 (default 64)")
    s.add_argument("--max-points", type=int, default=50_000, help="data points in one request before answering 413 (default 50000)")
    s.add_argument(
        "--max-inflight-mb", type=float, default=64.0,
        help="request bodies held at once (being read, inflated or waiting to be decoded) before answering 429 (default 64)",
    )
    s.add_argument("--max-header-kb", type=float, default=16.0, help="request line and headers, in KiB, before answering 400 (default 16)")
    s.add_argument("--header-timeout", type=float, default=10.0, help="seconds for a request's headers to arrive in full (default 10)")
    s.add_argument("--idle-timeout", type=float, default=30.0, help="seconds of silence while a body is being sent before closing (default 30)")
    s.add_argument("--max-connections", type=int, default=1000, help="open connections per receiver process (default 1000)")
    s.add_argument("--workers", type=int, default=1, help="receiver processes sharing the port (default 1; e.g. one per core)")
    s.add_argument("--raw-url", default="", help="raw zone to write to (default: CMS_RAW_URL from the settings)")
    s.add_argument("--access-log", action="store_true", help="log every request")
    s.add_argument("--log-level", default="info", choices=["debug", "info", "warning", "error"])
    s.set_defaults(func=cmd_serve)

    k = sub.add_parser(
        "new-key",
        help="print a fresh random API key line for a team",
        description="Print 'team: key' with a new random key, ready for the YAML keys file.",
        epilog=KEY_EPILOG,
        formatter_class=argparse.RawDescriptionHelpFormatter,
    )
    k.add_argument("team", help="team name, e.g. markets-batch")
    k.set_defaults(func=cmd_new_key)


def cmd_serve(args: argparse.Namespace) -> int:
    from cms_dagster.ingest.app import IngestConfig
    from cms_dagster.ingest.server import serve

    logging.basicConfig(level=args.log_level.upper(), format="%(asctime)s %(levelname)s %(name)s: %(message)s")
    s = settings_mod.load()
    try:
        keys, services = load_access(s.ingest_api_keys, s.ingest_api_keys_file)
    except KeyConfigError as e:
        print(f"cms ingest serve: {e}", file=sys.stderr)
        return 2
    if not keys:
        print(
            "cms ingest serve: no API keys configured. Set CMS_INGEST_API_KEYS=team:key,team:key or "
            "CMS_INGEST_API_KEYS_FILE=keys.yaml ('team: key' per line); `cms ingest new-key TEAM` makes one.",
            file=sys.stderr,
        )
        return 2
    config = IngestConfig(
        raw_url=args.raw_url or s.raw_url,
        api_keys=keys,
        services=services,
        max_body_bytes=int(args.max_body_mb * (1 << 20)),
        flush_ms=args.flush_ms,
        max_pending_bytes=int(args.max_pending_mb * (1 << 20)),
        max_points=args.max_points,
        max_inflight_bytes=int(args.max_inflight_mb * (1 << 20)),
        max_header_bytes=int(args.max_header_kb * 1024),
        header_timeout_s=args.header_timeout,
        idle_timeout_s=args.idle_timeout,
        max_connections=args.max_connections,
    )
    try:
        serve(config, args.host, args.port, workers=args.workers, access_log=args.access_log, log_level=args.log_level)
    except RuntimeError as e:
        print(f"cms ingest serve: {e}", file=sys.stderr)
        return 1
    return 0


def cmd_new_key(args: argparse.Namespace) -> int:
    print(f"{args.team}: {secrets.token_urlsafe(24)}")
    return 0
