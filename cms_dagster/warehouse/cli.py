"""`cms snowflake setup`, `cms domain export-seeds` and `cms dbt prepare`: the warehouse's commands."""

from __future__ import annotations

import argparse
import sys
from pathlib import Path
from typing import Any


def _setup(args: argparse.Namespace) -> int:
    from cms_dagster import settings
    from cms_dagster.warehouse import snowflake_setup

    try:
        s = settings.load()
        statements = snowflake_setup.load_statements(strict=not args.dry_run, settings=s)
    except (ValueError, FileNotFoundError) as e:
        print(f"error: {e}", file=sys.stderr)
        return 2
    if args.dry_run:
        for st in statements:
            print(f"-- {st.where}\n{st.sql};\n")
        print(f"-- {len(statements)} statement(s); nothing was executed (dry run)")
        return 0
    from cms_dagster.warehouse.snowflake_load import connect

    try:
        conn = connect(s)
    except ValueError as e:
        print(f"error: {e}", file=sys.stderr)
        return 2
    try:
        n = snowflake_setup.apply(conn, statements, log=print)
    except RuntimeError as e:
        print(f"error: {e}", file=sys.stderr)
        return 1
    finally:
        conn.close()
    print(f"applied {n} statement(s); the Snowflake environment is up to date")
    return 0


def _export_seeds(args: argparse.Namespace) -> int:
    from cms_dagster.domain.model import OntologyError, load_ontology
    from cms_dagster.warehouse import seeds
    from cms_dagster.warehouse.dbt import dbt_project_dir

    try:
        ont = load_ontology(args.domain)
    except OntologyError as e:
        print(f"error: {e}", file=sys.stderr)
        return 2
    from cms_dagster import settings

    out = Path(args.out) if args.out else dbt_project_dir(settings.load()) / "seeds"
    if args.check:
        stale = seeds.stale_seeds(ont, out)
        if stale:
            print(f"stale seed(s) in {out}: {', '.join(stale)}; run `cms domain export-seeds`", file=sys.stderr)
            return 1
        print(f"seeds in {out} match {ont.source}")
        return 0
    for p in seeds.export_seeds(ont, out):
        print(f"wrote {p}")
    return 0


def _prepare(args: argparse.Namespace) -> int:
    from cms_dagster import settings
    from cms_dagster.warehouse.dbt import prepare

    try:
        path = prepare(settings.process_environment())
    except (RuntimeError, ValueError) as e:
        print(f"error: {e}", file=sys.stderr)
        return 1
    print(f"wrote {path}")
    return 0


def register(subparsers: Any) -> None:
    """Add `snowflake setup` and `dbt prepare` to the `cms` command."""
    fmt = argparse.RawDescriptionHelpFormatter

    sf = subparsers.add_parser(
        "snowflake",
        help="manage the Snowflake environment",
        description="Manage the Snowflake environment CMS runs in.",
        formatter_class=fmt,
    )
    sf_sub = sf.add_subparsers(dest="snowflake_command", required=True)
    setup = sf_sub.add_parser(
        "setup",
        help="create or update warehouses, database, schemas, roles, grants, stages, table and pipe",
        description=(
            "Apply infra/snowflake/*.sql in order: warehouses (XS queries, M transforms; auto-suspend and\n"
            "resume), the database with RAW / STAGING / MARTS, the storage integration, file formats,\n"
            "external and internal stages, RAW.METRIC_POINTS, the Snowpipe with its merge task, access and\n"
            "functional roles (loader, transformer, analyst, admin) and their grants. Every statement is\n"
            "idempotent. Connects with SNOWFLAKE_ACCOUNT, _USER, _PASSWORD or _PRIVATE_KEY_PATH (a role able\n"
            "to USE ROLE ACCOUNTADMIN, SYSADMIN, USERADMIN and SECURITYADMIN); the buckets come from\n"
            "CMS_RAW_URL / CMS_PROCESSED_URL (s3://...) and CMS_SNOWFLAKE_S3_ROLE_ARN."
        ),
        epilog=(
            "examples:\n"
            "  cms snowflake setup --dry-run     # print the statements in order, run nothing\n"
            "  SNOWFLAKE_ACCOUNT=xy12345 SNOWFLAKE_USER=ops SNOWFLAKE_PASSWORD=... \\\n"
            "  CMS_RAW_URL=s3://acme-cms-raw CMS_PROCESSED_URL=s3://acme-cms-processed \\\n"
            "  CMS_SNOWFLAKE_S3_ROLE_ARN=arn:aws:iam::123456789012:role/cms-snowflake cms snowflake setup"
        ),
        formatter_class=fmt,
    )
    setup.add_argument("--dry-run", action="store_true", help="print the statements in order instead of running them")
    setup.set_defaults(func=_setup)

    dbt = subparsers.add_parser(
        "dbt",
        help="the dbt project",
        description="Work with the dbt project (dbt_project/, target from DBT_TARGET or CMS_WAREHOUSE).",
        formatter_class=fmt,
    )
    dbt_sub = dbt.add_subparsers(dest="dbt_command", required=True)
    prep = dbt_sub.add_parser(
        "prepare",
        help="parse the dbt project so Dagster can load it (writes target/manifest.json)",
        description="Run `dbt parse` for the selected target; Dagster's dbt assets load the manifest it writes.",
        epilog="examples:\n  cms dbt prepare\n  DBT_TARGET=snowflake cms dbt prepare",
        formatter_class=fmt,
    )
    prep.set_defaults(func=_prepare)


def register_domain(domain_subparsers: Any) -> None:
    """Add `export-seeds` to `cms domain`."""
    fmt = argparse.RawDescriptionHelpFormatter
    dom_sub = domain_subparsers
    ex = dom_sub.add_parser(
        "export-seeds",
        help="write the ontology as dbt seed CSVs",
        description=(
            "Write the ontology as the dbt seeds the warehouse joins against: asset_classes, jobs, stages,\n"
            "stage_dependencies, feeds, job_feeds, resources, stage_resources (dbt_project/seeds/ by\n"
            "default). Run it after editing the estate YAML, then `dbt seed` (or `dbt build`)."
        ),
        epilog="examples:\n  cms domain export-seeds\n  cms domain export-seeds --check   # exit 1 when the committed seeds are stale",
        formatter_class=fmt,
    )
    ex.add_argument("--domain", help="estate YAML (default: CMS_DOMAIN_FILE or the packaged estate.yaml)")
    ex.add_argument("--out", help="seeds folder (default: dbt_project/seeds)")
    ex.add_argument("--check", action="store_true", help="compare instead of writing; exit 1 when stale")
    ex.set_defaults(func=_export_seeds)
