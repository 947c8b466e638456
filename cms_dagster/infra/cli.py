"""`cms infra`: list, lint, package and deploy the CloudFormation stacks of CMS."""

from __future__ import annotations

import argparse
import sys
from pathlib import Path
from typing import Any

from cms_dagster.infra import deploy as deploy_mod
from cms_dagster.infra.package import (
    HANDLER,
    HANDLER_FILE,
    PackageOptions,
    build_collector_zip,
    check_import,
    handler_module_in,
)
from cms_dagster.infra.templates import STACKS, template_files, template_path, templates_dir
from cms_dagster.infra.validate import DEFAULT_REGIONS, lint_templates


def register(subparsers: Any) -> None:
    """Add ``infra`` (with templates, validate, package, deploy) to an argparse subparsers object."""
    infra = subparsers.add_parser(
        "infra",
        help="list, lint, package and deploy the CloudFormation stacks",
        description=(
            "Infrastructure as code for running CMS in an AWS account: the storage, alerting, collector, "
            "monitoring, Snowflake-access and orchestrator stacks in infra/cloudformation/, deployed in "
            "that order; and the Dagster instance (`cms infra instance`) that production runs on."
        ),
        epilog="example: cms infra validate && cms infra deploy --env dev --dry-run",
        formatter_class=argparse.RawDescriptionHelpFormatter,
    )
    sub = infra.add_subparsers(dest="infra_command", metavar="COMMAND")
    sub.required = True

    p = sub.add_parser(
        "templates",
        help="list the stacks in deploy order",
        description="List the stacks in deploy order with their template files and what each holds.",
        epilog="example: cms infra templates",
    )
    _templates_dir_arg(p)
    p.set_defaults(func=cmd_templates)

    p = sub.add_parser(
        "validate",
        help="run cfn-lint on every template",
        description="Lint every template in infra/cloudformation/ with cfn-lint; exit 1 on any finding.",
        epilog="example: cms infra validate --region eu-west-1",
    )
    _templates_dir_arg(p)
    p.add_argument(
        "--region",
        action="append",
        dest="regions",
        metavar="REGION",
        help=f"region to check resource availability in (repeatable; default {', '.join(DEFAULT_REGIONS)})",
    )
    p.set_defaults(func=cmd_validate)

    p = sub.add_parser(
        "package",
        help="build the collector function's deployment zip",
        description=(
            f"Build the collector Lambda's zip (handler {HANDLER}): the cms_dagster code, without Dagster "
            "wiring, dashboard and infrastructure code. boto3 comes with the Lambda runtime. The same "
            "sources give the same bytes; prints the path, SHA-256 and size."
        ),
        epilog="example: cms infra package --output dist/cms-collector.zip",
    )
    p.add_argument(
        "--output", type=Path, help="where to write the zip (default $CMS_HOME/build/cms-collector.zip)"
    )
    _package_args(p)
    p.set_defaults(func=cmd_package)

    p = sub.add_parser(
        "deploy",
        help="create or update the stacks in order and print their outputs",
        description=(
            "Deploy cms-<env>-storage, -alerting, -collector, -monitoring and -snowflake-access in order "
            "with boto3. Parameters an earlier stack knows are wired from its outputs; the collector zip "
            "is built and uploaded to the artifacts bucket. A stack with nothing to change reports "
            "'no changes'. On update, a parameter not given keeps the stack's current value."
        ),
        epilog=(
            "examples:\n"
            "  cms infra deploy --env dev --dry-run\n"
            "  cms infra deploy --env prod --region eu-west-1 \\\n"
            "      --parameter CriticalEmail=oncall@example.com \\\n"
            "      --parameter collector.CrossAccountRoleArns=arn:aws:iam::111122223333:role/cms-read\n"
            "  cms infra deploy --env test --endpoint-url http://127.0.0.1:5000   # moto server"
        ),
        formatter_class=argparse.RawDescriptionHelpFormatter,
    )
    p.add_argument("--env", required=True, help="environment name (stacks are cms-<env>-<stack>)")
    p.add_argument(
        "--endpoint-url", help="AWS endpoint for CloudFormation and S3 (a moto server, a private endpoint)"
    )
    p.add_argument("--region", help="AWS region (default: AWS_REGION / AWS_DEFAULT_REGION / profile)")
    p.add_argument(
        "--parameter",
        action="append",
        default=[],
        metavar="[STACK.]KEY=VALUE",
        help="template parameter; KEY=VALUE goes to every stack declaring KEY (repeatable)",
    )
    p.add_argument(
        "--dry-run", action="store_true", help="print the plan (stacks, parameters, sources); call no AWS API"
    )
    p.add_argument(
        "--build-dir", type=Path, help="where the collector zip is built (default $CMS_HOME/build)"
    )
    _package_args(p)
    _templates_dir_arg(p)
    p.set_defaults(func=cmd_deploy)

    p = sub.add_parser(
        "instance",
        help="the Dagster instance (dagster.yaml) the settings select",
        description=(
            "Print the dagster.yaml that the CMS_DAGSTER_*, DAGSTER_PG_* and CMS_K8S_* settings select: the "
            "embedded default (SQLite, local runs) or production (PostgreSQL storage, compute logs in S3, "
            "the queued run coordinator with per-tag limits, a pod per run on EKS). The password stays a "
            "reference to DAGSTER_PG_PASSWORD. On Kubernetes the Helm chart writes the instance from "
            "infra/helm/values.yaml instead."
        ),
        epilog=(
            "examples:\n"
            "  cms infra instance\n"
            "  CMS_DAGSTER_STORAGE=postgres DAGSTER_PG_HOST=db.internal cms infra instance --write\n"
        ),
        formatter_class=argparse.RawDescriptionHelpFormatter,
    )
    p.add_argument("--write", action="store_true", help="write it to $DAGSTER_HOME/dagster.yaml instead of printing it")
    p.set_defaults(func=cmd_instance)


def cmd_instance(args: argparse.Namespace) -> int:
    from cms_dagster import settings as settings_mod
    from cms_dagster.infra import dagster_instance

    try:
        o = settings_mod.load_orchestrator()
        s = settings_mod.load()
        if args.write:
            path = dagster_instance.write(o, s.dagster_home)
            print(f"wrote {path} ({dagster_instance.describe(o)})")
        else:
            print(dagster_instance.render(o), end="")
    except (ValueError, OSError) as e:
        print(f"cms infra instance: {e}", file=sys.stderr)
        return 2
    return 0


def _package_args(p: argparse.ArgumentParser) -> None:
    g = p.add_argument_group("collector package")
    g.add_argument(
        "--vendor",
        action="append",
        default=[],
        metavar="PACKAGE",
        help="also pack this pure-Python package from the current environment (repeatable)",
    )
    g.add_argument(
        "--wheel",
        action="append",
        default=[],
        metavar="FILE",
        help="also pack this wheel, built for the function's runtime and architecture (repeatable)",
    )
    g.add_argument(
        "--allow-local-compiled",
        action="store_true",
        help="let --vendor pack compiled packages of this machine (only if it matches the function's runtime)",
    )
    g.add_argument(
        "--skip-import-check",
        action="store_true",
        help="do not check that the handler imports from the zip in a Lambda-like interpreter",
    )


def _package_options(args: argparse.Namespace) -> PackageOptions:
    return PackageOptions(
        vendor=tuple(args.vendor),
        wheels=tuple(str(w) for w in args.wheel),
        allow_local_compiled=args.allow_local_compiled,
        check_import=not args.skip_import_check,
    )


def _templates(args: argparse.Namespace) -> str | None:
    """--templates-dir, else CMS_INFRA_DIR (settings), else None: the checkout's infra/cloudformation."""
    from cms_dagster import settings

    return args.templates_dir or settings.load().infra_dir or None


def _templates_dir_arg(p: argparse.ArgumentParser) -> None:
    p.add_argument(
        "--templates-dir",
        type=Path,
        help="directory of the templates (default: infra/cloudformation of the checkout, or $CMS_INFRA_DIR)",
    )


def _build_dir() -> Path:
    from cms_dagster import settings

    return settings.load().home / "build"


def cmd_templates(args: argparse.Namespace) -> int:
    try:
        directory = templates_dir(_templates(args))
        for i, spec in enumerate(STACKS, 1):
            path = template_path(spec, directory)
            print(f"{i}. cms-<env>-{spec.key:<17} {path}")
            print(f"   {spec.summary}")
    except FileNotFoundError as err:
        print(f"error: {err}", file=sys.stderr)
        return 1
    return 0


def cmd_validate(args: argparse.Namespace) -> int:
    try:
        paths = template_files(_templates(args))
    except FileNotFoundError as err:
        print(f"error: {err}", file=sys.stderr)
        return 1
    if not paths:
        print(f"error: no templates in {templates_dir(_templates(args))}", file=sys.stderr)
        return 1
    results = lint_templates(paths, tuple(args.regions or DEFAULT_REGIONS))
    failed = 0
    for path, findings in results.items():
        if findings:
            failed += 1
            print(f"FAIL {path}: {len(findings)} finding(s)")
            for finding in findings:
                print(f"  {finding}")
        else:
            print(f"ok   {path}")
    print(f"{len(results) - failed}/{len(results)} templates clean (cfn-lint)")
    return 1 if failed else 0


def cmd_package(args: argparse.Namespace) -> int:
    output = args.output or _build_dir() / "cms-collector.zip"
    options = _package_options(args)
    try:
        result = build_collector_zip(
            output,
            vendor=options.vendor,
            wheels=options.wheels,
            allow_local_compiled=options.allow_local_compiled,
        )
    except (ValueError, FileNotFoundError) as err:
        print(f"error: {err}", file=sys.stderr)
        return 1
    print(result.summary())
    print(f"  handler {HANDLER}")
    if not options.check_import:
        return 0
    if not handler_module_in(result):
        print(f"import check FAILED: the zip has no {HANDLER_FILE}", file=sys.stderr)
        return 1
    ok, message = check_import(result.path)
    print(f"import check {'ok' if ok else 'FAILED'}: {message}", file=sys.stdout if ok else sys.stderr)
    return 0 if ok else 1


def cmd_deploy(args: argparse.Namespace) -> int:
    try:
        overrides = deploy_mod.parse_parameter_overrides(args.parameter)
        if args.dry_run:
            plans = deploy_mod.plan(args.env, overrides, templates_dir=_templates(args))
            print(f"Plan for environment {args.env!r} (dry run: no AWS call)")
            for line in deploy_mod.describe_plan(plans):
                print(line)
            return 0
        deploy_mod.deploy(
            args.env,
            region=args.region,
            endpoint_url=args.endpoint_url,
            overrides=overrides,
            templates_dir=_templates(args),
            build_dir=args.build_dir or _build_dir(),
            package=_package_options(args),
        )
    except (ValueError, FileNotFoundError) as err:
        print(f"error: {err}", file=sys.stderr)
        return 2
    except deploy_mod.DeployError as err:
        print(f"deploy failed: {err}", file=sys.stderr)
        return 1
    except Exception as err:  # botocore: credentials, endpoint, access denied
        if type(err).__module__.startswith("botocore"):
            print(f"deploy failed: {err}", file=sys.stderr)
            return 1
        raise
    return 0
