"""``python -m cms_dagster.ingest serve ...``: the same commands as ``cms ingest`` (used by benchmarks)."""

from __future__ import annotations

import argparse
import sys

from cms_dagster.ingest.cli import register


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="python -m cms_dagster.ingest")
    register(parser.add_subparsers(dest="command", required=True))
    args = parser.parse_args(["ingest", *(sys.argv[1:] if argv is None else argv)])
    return args.func(args)


if __name__ == "__main__":
    sys.exit(main())
