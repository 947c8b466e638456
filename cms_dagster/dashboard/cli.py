"""``cms dashboard``: serve the operations dashboard (Streamlit) on the warehouse CMS reads."""

from __future__ import annotations

import argparse
import os
import sys
from pathlib import Path
from typing import TYPE_CHECKING, Any

if TYPE_CHECKING:
    from cms_dagster.settings import Settings

APP = Path(__file__).with_name("app.py")


def streamlit_command(host: str, port: int) -> list[str]:
    """The ``streamlit run`` command line that serves the dashboard headless on host:port."""
    return [
        sys.executable, "-m", "streamlit", "run", str(APP),
        "--server.address", host,
        "--server.port", str(port),
        "--server.headless", "true",
        "--browser.gatherUsageStats", "false",
        "--server.fileWatcherType", "none",
        "--client.toolbarMode", "minimal",
        "--theme.base", "light",
    ]


def reading(settings: Settings) -> str:
    """Which warehouse the dashboard reads, in words (the CLI's first line and the sidebar say it)."""
    if settings.warehouse == "duckdb":
        return f"DuckDB {settings.duckdb_path}"
    return "Snowflake (container session)" if settings.snowflake_auth == "container" else "Snowflake"


def run_dashboard(args: argparse.Namespace) -> int:
    from cms_dagster import settings as settings_mod

    try:
        s = settings_mod.load()
    except ValueError as e:
        print(f"cms dashboard: {e}", file=sys.stderr)
        return 2
    if not 0 < args.port < 65536:
        print(f"cms dashboard: --port {args.port} is not a TCP port (1-65535)", file=sys.stderr)
        return 2
    where = reading(s)
    if s.warehouse == "duckdb" and not s.duckdb_path.exists():
        print(f"cms dashboard: no warehouse at {s.duckdb_path} yet; the pages will say so until `cms demo` "
              "(or the Dagster assets) build it", file=sys.stderr)
    print(f"[cms dashboard] serving http://{args.host}:{args.port} (reading {where}; Ctrl-C to stop)", flush=True)
    cmd = streamlit_command(args.host, args.port)
    # become the Streamlit server (not its parent), so stopping this process stops the server
    os.execv(cmd[0], cmd)
    return 0  # not reached


def register(subparsers: Any) -> None:
    p = subparsers.add_parser(
        "dashboard",
        help="serve the operations dashboard (feeds, batches, sub-stages, incidents, ask)",
        description="Serve the financial operations dashboard (Streamlit) on the warehouse of the settings "
        "(CMS_WAREHOUSE, CMS_DUCKDB_PATH or SNOWFLAKE_*): market data feeds, batch processing, critical "
        "sub-stages, incidents and questions. Every page takes its filters from the URL, so a link can open "
        "a page with its filters set. It reads while Dagster writes and refreshes its live views on its own.",
        epilog="examples:\n  cms dashboard                       http://127.0.0.1:8501\n"
        "  cms dashboard --port 8600 --host 0.0.0.0\n"
        "  deep link: http://127.0.0.1:8501/batches?range=7d&asset_class=fx\n"
        "             http://127.0.0.1:8501/stages?job=derivatives.eod_valuation&day=2026-11-20",
        formatter_class=argparse.RawDescriptionHelpFormatter,
    )
    p.add_argument("--port", type=int, default=8501, help="TCP port (default 8501)")
    p.add_argument("--host", default="127.0.0.1", help="address to listen on (default 127.0.0.1)")
    p.set_defaults(func=run_dashboard)
