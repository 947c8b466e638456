"""Deploy the CMS stacks in order with boto3: create or update, wait, print outputs.

Each stack's wired parameters (see :data:`cms_dagster.infra.templates.STACKS`) come from the outputs of
the stacks before it; the collector's code is packaged and uploaded to the artifacts bucket on the way.
Re-running with nothing changed is not an error: each stack reports "no changes". On update, a parameter
not given now keeps the value the stack already has (e.g. SnowflakeIamUserArn set once).
"""

from __future__ import annotations

import re
import tempfile
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from cms_dagster.infra.package import (
    HANDLER_FILE,
    PackageOptions,
    PackageResult,
    artifact_key,
    build_collector_zip,
    check_import,
    handler_module_in,
)
from cms_dagster.infra.templates import (
    STACKS,
    StackSpec,
    load_template,
    template_parameters,
    template_path,
)

CAPABILITIES = ["CAPABILITY_NAMED_IAM"]
ENV_PATTERN = re.compile(r"[a-z][a-z0-9-]{1,15}")  # the templates' AllowedPattern of Environment
NO_UPDATES = "No updates are to be performed"
PACKAGED_PARAMETERS = ("CodeS3Bucket", "CodeS3Key")
# Stack outputs that set CMS's own environment, printed after a deploy.
SETTINGS_FROM_OUTPUTS: tuple[tuple[str, str, str], ...] = (
    ("CMS_RAW_URL", "storage", "RawUrl"),
    ("CMS_PROCESSED_URL", "storage", "ProcessedUrl"),
    ("CMS_ARCHIVE_URL", "storage", "ArchiveUrl"),
    ("CMS_SNS_TOPIC_ARN", "alerting", "CriticalTopicArn"),
    ("DAGSTER_PG_HOST", "orchestrator", "DatabaseEndpoint"),
    ("CMS_DAGSTER_COMPUTE_LOGS_URL", "orchestrator", "ComputeLogsUrl"),
)

Printer = Callable[[str], None]


class DeployError(RuntimeError):
    """A stack could not be deployed; the message says which, why and what to do."""


@dataclass
class StackPlan:
    spec: StackSpec
    name: str
    template: Path
    declared: dict[str, dict[str, Any]]
    parameters: dict[str, str] = field(default_factory=dict)  # values known now
    wired: dict[str, tuple[str, str]] = field(default_factory=dict)  # param -> (stack key, output)
    package_code: bool = False  # build and upload the collector zip for CodeS3Bucket/CodeS3Key


@dataclass
class StackResult:
    name: str
    action: str  # created | updated | unchanged
    outputs: dict[str, str]


def parse_parameter_overrides(items: Sequence[str]) -> dict[str, dict[str, str]]:
    """``["Key=V", "collector.MemorySize=1024"]`` -> ``{"*": {"Key": "V"}, "collector": {"MemorySize": "1024"}}``."""
    overrides: dict[str, dict[str, str]] = {}
    known = {s.key for s in STACKS}
    for item in items:
        key, sep, value = item.partition("=")
        if not sep or not key:
            raise ValueError(f"--parameter {item!r}: expected KEY=VALUE or STACK.KEY=VALUE")
        scope, dot, name = key.rpartition(".")
        if not dot:
            scope, name = "*", key
        elif scope not in known:
            raise ValueError(
                f"--parameter {item!r}: no stack {scope!r}; stacks are {', '.join(sorted(known))}"
            )
        overrides.setdefault(scope, {})[name] = value
    return overrides


def plan(
    env: str,
    overrides: Mapping[str, Mapping[str, str]] | None = None,
    *,
    templates_dir: str | Path | None = None,
    stacks: Sequence[StackSpec] = STACKS,
) -> list[StackPlan]:
    """What each stack gets: Environment, the overrides it declares, and the parameters wired from outputs."""
    if not ENV_PATTERN.fullmatch(env):
        raise ValueError(
            f"--env {env!r}: use 2-16 lower-case letters, digits or hyphens, starting with a letter "
            "(it is part of bucket, role and stack names)"
        )
    overrides = overrides or {}
    plans: list[StackPlan] = []
    used_global: set[str] = set()
    for spec in stacks:
        path = template_path(spec, templates_dir)
        declared = template_parameters(load_template(path))
        params: dict[str, str] = {}
        if "Environment" in declared:
            params["Environment"] = env
        for name, value in (overrides.get("*") or {}).items():
            if name in declared:
                params[name] = value
                used_global.add(name)
        for name, value in (overrides.get(spec.key) or {}).items():
            if name not in declared:
                raise ValueError(
                    f"stack {spec.key} declares no parameter {name!r}; it declares: {', '.join(sorted(declared))}"
                )
            params[name] = value
        wired = {p: src for p, src in spec.inputs.items() if p not in params}
        package_code = "CodeS3Key" in declared and "CodeS3Key" not in params
        plans.append(StackPlan(spec, spec.stack_name(env), path, declared, params, wired, package_code))
    unknown = set(overrides.get("*") or {}) - used_global
    if unknown:
        raise ValueError(
            f"no template declares parameter(s) {', '.join(sorted(unknown))}: check the spelling "
            "(`cms infra deploy --dry-run` lists each stack's parameters)"
        )
    return plans


def describe_plan(plans: Sequence[StackPlan]) -> list[str]:
    """Human-readable lines: each stack in order, with its parameters and where each comes from."""
    lines: list[str] = []
    for i, p in enumerate(plans, 1):
        lines.append(f"[{i}/{len(plans)}] {p.name}  ({p.template.name}): {p.spec.summary}")
        for name in sorted(p.declared):
            if name in p.parameters:
                source = repr(p.parameters[name])
            elif name in p.wired:
                stack_key, output = p.wired[name]
                source = f"<output {output} of {_stack_name_like(p, stack_key)}>"
            elif p.package_code and name == "CodeS3Key":
                source = "<uploaded `cms infra package` zip>"
            elif "Default" in p.declared[name]:
                source = f"default {p.declared[name]['Default']!r} (or the stack's current value)"
            else:
                source = "MISSING: pass --parameter " + f"{p.spec.key}.{name}=VALUE"
            lines.append(f"    {name} = {source}")
    return lines


def _stack_name_like(p: StackPlan, key: str) -> str:
    return p.name[: len(p.name) - len(p.spec.key)] + key


def deploy(
    env: str,
    *,
    region: str | None = None,
    endpoint_url: str | None = None,
    overrides: Mapping[str, Mapping[str, str]] | None = None,
    templates_dir: str | Path | None = None,
    build_dir: str | Path | None = None,
    package: PackageOptions | None = None,
    session: Any = None,
    out: Printer = print,
    wait_delay: int = 5,
    wait_max_attempts: int = 720,
) -> dict[str, StackResult]:
    """Create or update every stack in order; returns each stack's action and outputs."""
    import boto3

    plans = plan(env, overrides, templates_dir=templates_dir)
    package = package or PackageOptions()
    session = session or boto3.session.Session(region_name=region)
    region = region or session.region_name
    if not region:
        raise DeployError("no AWS region: pass --region or set AWS_REGION / AWS_DEFAULT_REGION")
    cfn = session.client("cloudformation", region_name=region, endpoint_url=endpoint_url)
    s3 = session.client("s3", region_name=region, endpoint_url=endpoint_url)

    results: dict[str, StackResult] = {}
    by_key: dict[str, StackResult] = {}
    for i, p in enumerate(plans, 1):
        params = dict(p.parameters)
        for name, (stack_key, output) in p.wired.items():
            source = by_key.get(stack_key)
            if source is None or output not in source.outputs:
                raise DeployError(
                    f"{p.name}: parameter {name} needs output {output} of the {stack_key} stack, which "
                    "did not provide it; deploy that stack first or pass --parameter "
                    f"{p.spec.key}.{name}=VALUE"
                )
            params[name] = source.outputs[output]
        if p.package_code:
            bucket = params.get("CodeS3Bucket")
            if not bucket:
                raise DeployError(f"{p.name}: no CodeS3Bucket to upload the collector package to")
            runtime = params.get("Runtime") or str(p.declared.get("Runtime", {}).get("Default", "python3.12"))
            arch = params.get("Architecture") or str(
                p.declared.get("Architecture", {}).get("Default", "arm64")
            )
            params["CodeS3Key"] = _upload_package(s3, bucket, build_dir, package, runtime, arch, out)
        out(f"[{i}/{len(plans)}] {p.name}: deploying {p.template.name}")
        result = deploy_stack(
            cfn,
            p.name,
            p.template.read_text(),
            params,
            declared=p.declared,
            tags={"cms:environment": env, "cms:stack": p.spec.key},
            out=out,
            wait_delay=wait_delay,
            wait_max_attempts=wait_max_attempts,
        )
        results[p.name] = result
        by_key[p.spec.key] = result

    out("")
    out("Outputs")
    for result in results.values():
        out(f"  {result.name} ({result.action})")
        for key in sorted(result.outputs):
            out(f"    {key} = {result.outputs[key]}")
    settings = settings_from_outputs(by_key)
    if settings:
        out("")
        out("CMS settings for this environment")
        for name, value in settings.items():
            out(f"  {name}={value}")
    return results


def settings_from_outputs(by_key: Mapping[str, StackResult]) -> dict[str, str]:
    settings: dict[str, str] = {}
    for env_name, stack_key, output in SETTINGS_FROM_OUTPUTS:
        result = by_key.get(stack_key)
        if result and output in result.outputs:
            settings[env_name] = result.outputs[output]
    return settings


def _upload_package(
    s3: Any,
    bucket: str,
    build_dir: str | Path | None,
    options: PackageOptions,
    runtime: str,
    architecture: str,
    out: Printer,
) -> str:
    from botocore.exceptions import ClientError

    directory = Path(build_dir) if build_dir else Path(tempfile.mkdtemp(prefix="cms-infra-"))
    result: PackageResult = build_collector_zip(
        directory / "cms-collector.zip",
        vendor=options.vendor,
        wheels=options.wheels,
        allow_local_compiled=options.allow_local_compiled,
    )
    if options.check_import:
        if not handler_module_in(result):
            raise DeployError(
                f"the collector package has no {HANDLER_FILE}: the function would fail on every run "
                "(deploy from a checkout that has it, or pass --skip-import-check)"
            )
        ok, message = check_import(result.path, runtime=runtime, architecture=architecture)
        if not ok:
            raise DeployError(f"collector package: {message} (or pass --skip-import-check)")
        out(f"      collector package import check: {message}")
    key = artifact_key(result)
    try:
        s3.head_object(Bucket=bucket, Key=key)
        out(f"      collector package s3://{bucket}/{key} already uploaded (sha256 {result.sha256})")
    except ClientError as err:
        if err.response.get("Error", {}).get("Code") not in ("404", "NoSuchKey", "NotFound"):
            raise DeployError(f"cannot check s3://{bucket}/{key}: {err}") from err
        s3.upload_file(str(result.path), bucket, key)
        out(
            f"      uploaded collector package s3://{bucket}/{key} ({result.size} bytes, sha256 {result.sha256})"
        )
    return key


def stack_status(cfn: Any, name: str) -> dict[str, Any] | None:
    """The stack's description, or None if it does not exist."""
    from botocore.exceptions import ClientError

    try:
        stacks = cfn.describe_stacks(StackName=name)["Stacks"]
    except ClientError as err:
        if "does not exist" in str(err):
            return None
        raise
    return stacks[0] if stacks else None


def deploy_stack(
    cfn: Any,
    name: str,
    body: str,
    parameters: Mapping[str, str],
    *,
    declared: Mapping[str, Any] | None = None,
    tags: Mapping[str, str] | None = None,
    out: Printer = print,
    wait_delay: int = 5,
    wait_max_attempts: int = 720,
) -> StackResult:
    """Create the stack, or update it; "no updates" is a success. Waits until it is complete."""
    from botocore.exceptions import ClientError, WaiterError

    tag_list = [{"Key": k, "Value": v} for k, v in (tags or {}).items()]
    waiter_config = {"Delay": wait_delay, "MaxAttempts": wait_max_attempts}
    current = stack_status(cfn, name)
    if current is not None and current["StackStatus"] == "ROLLBACK_COMPLETE":
        raise DeployError(
            f"{name} is in ROLLBACK_COMPLETE (its first creation failed) and cannot be updated: delete it "
            f"(aws cloudformation delete-stack --stack-name {name}) and deploy again"
        )
    if current is not None and current["StackStatus"].endswith("_IN_PROGRESS"):
        raise DeployError(
            f"{name} is busy ({current['StackStatus']}): wait until it settles, then deploy again"
        )

    if current is None:
        cfn_params = [{"ParameterKey": k, "ParameterValue": v} for k, v in parameters.items()]
        out(f"      creating {name}...")
        cfn.create_stack(
            StackName=name,
            TemplateBody=body,
            Parameters=cfn_params,
            Capabilities=CAPABILITIES,
            Tags=tag_list,
        )
        action, waiter_name = "created", "stack_create_complete"
    else:
        cfn_params = update_parameters(current, declared or {}, parameters)
        if _same_template(cfn, name, body) and _same_parameters(current, cfn_params):
            out(f"      {name}: no changes")
            return StackResult(name, "unchanged", _outputs(current))
        out(f"      updating {name}...")
        try:
            cfn.update_stack(
                StackName=name,
                TemplateBody=body,
                Parameters=cfn_params,
                Capabilities=CAPABILITIES,
                Tags=tag_list,
            )
        except ClientError as err:
            if NO_UPDATES in str(err):
                out(f"      {name}: no changes")
                return StackResult(name, "unchanged", _outputs(current))
            raise DeployError(f"{name}: update rejected: {err}") from err
        action, waiter_name = "updated", "stack_update_complete"

    try:
        cfn.get_waiter(waiter_name).wait(StackName=name, WaiterConfig=waiter_config)
    except WaiterError as err:
        reasons = failure_reasons(cfn, name)
        raise DeployError(
            f"{name}: {'creation' if action == 'created' else 'update'} failed ({err}).\n  "
            + "\n  ".join(reasons or ["no failure events found"])
        ) from err
    described = stack_status(cfn, name) or {}
    out(f"      {name}: {described.get('StackStatus', action)}")
    return StackResult(name, action, _outputs(described))


def update_parameters(
    current: Mapping[str, Any], declared: Mapping[str, Any], given: Mapping[str, str]
) -> list[dict[str, Any]]:
    """Parameters of an update: the given values, and ``UsePreviousValue`` for every other parameter
    the stack has at a value other than the template's default.

    A parameter at its default is left out: CloudFormation applies the default, the same value (and a
    default changed in the template takes effect).
    """
    params: list[dict[str, Any]] = [{"ParameterKey": k, "ParameterValue": v} for k, v in given.items()]
    for p in current.get("Parameters") or []:
        name = p["ParameterKey"]
        if name in given or name not in declared:
            continue
        default = declared[name].get("Default")
        if default is None or str(default) != str(p.get("ParameterValue", "")):
            params.append({"ParameterKey": name, "UsePreviousValue": True})
    return params


def _same_template(cfn: Any, name: str, body: str) -> bool:
    try:
        current = cfn.get_template(StackName=name, TemplateStage="Original")["TemplateBody"]
    except Exception:  # noqa: BLE001 - then let CloudFormation decide
        return False
    return isinstance(current, str) and current == body


def _same_parameters(current: Mapping[str, Any], cfn_params: Sequence[Mapping[str, Any]]) -> bool:
    """True when every given value is the stack's current one (kept and defaulted ones are by construction)."""
    values = {p["ParameterKey"]: _list_value(str(p.get("ParameterValue", ""))) for p in current.get("Parameters") or []}
    return all(
        p.get("UsePreviousValue") or values.get(p["ParameterKey"]) == _list_value(p["ParameterValue"])
        for p in cfn_params
    )


def _list_value(value: str) -> str:
    """A List<...> parameter as ``a,b``: CloudFormation describes it so, some stand-ins as ``['a', 'b']``."""
    if value.startswith("[") and value.endswith("]"):
        return ",".join(v.strip().strip("'\"") for v in value[1:-1].split(",") if v.strip())
    return ",".join(v.strip() for v in value.split(",")) if "," in value else value


def failure_reasons(cfn: Any, name: str, limit: int = 10) -> list[str]:
    """The latest FAILED events of a stack: which resource and why."""
    try:
        events = cfn.describe_stack_events(StackName=name)["StackEvents"]
    except Exception:  # noqa: BLE001 - best effort while reporting another error
        return []
    failed = [e for e in events if str(e.get("ResourceStatus", "")).endswith("FAILED")]
    return [
        f"{e.get('LogicalResourceId')} ({e.get('ResourceType')}): {e.get('ResourceStatusReason', '')}"
        for e in failed[:limit]
    ]


def _outputs(stack: Mapping[str, Any]) -> dict[str, str]:
    return {o["OutputKey"]: str(o.get("OutputValue", "")) for o in stack.get("Outputs") or []}
