"""Facts CloudWatch does not publish as metrics, recorded as CMS/AWSConfig gauges (semantic conventions §1).

- RDS ``MaxConnections``: the instance's parameter group ``max_connections`` (a number or an RDS formula
  such as ``LEAST({DBInstanceClassMemory/9531392},5000)``), else the engine default for its class, so
  DatabaseConnections / MaxConnections shows connection-pool exhaustion.
- SQS ``VisibilityTimeout``, ``MessageRetentionPeriod``, ``RedriveMaxReceiveCount`` (0 without a redrive
  policy) from GetQueueAttributes.
- Lambda ``MemorySize`` and ``Timeout`` from GetFunctionConfiguration; ``MaxMemoryUsed`` per minute from
  Lambda Insights (``used_memory_max``) where present, otherwise from the ``REPORT`` log lines;
  ``Timeouts`` per minute from ``Task timed out`` log lines (or REPORT ``Status: timeout``), or, without
  logs, the minutes whose Duration maximum reached the configured timeout.
"""

from __future__ import annotations

import json
import re
from collections.abc import Iterable, Mapping
from dataclasses import dataclass, field
from typing import Any

CONFIG_NAMESPACE = "CMS/AWSConfig"
LOG_FILTER_PATTERN = '?"REPORT RequestId" ?"Task timed out"'
MAX_LOG_PAGES = 50  # per function and window span; beyond that the run reports a warning

_GIB = 1024**3
_REPORT_RE = re.compile(r"REPORT RequestId:\s*(?P<rid>\S+).*?Max Memory Used:\s*(?P<mem>\d+)\s*MB", re.S)
_TIMEOUT_RE = re.compile(r"(?P<rid>[0-9a-f]{8}-[0-9a-f-]{27,})?\s*Task timed out after", re.I)
_STATUS_TIMEOUT_RE = re.compile(r"Status:\s*timeout", re.I)
_SIZES = {"micro": 0.5, "small": 1, "medium": 2, "large": 2, "xlarge": 4}
_T_MEMORY = {"micro": 1, "small": 2, "medium": 4, "large": 8, "xlarge": 16, "2xlarge": 32}
_GIB_PER_VCPU = {"m": 4, "r": 8, "x": 16, "z": 8, "c": 2}
_ENGINE_DEFAULT = {
    "mysql": "{DBInstanceClassMemory/12582880}",
    "mariadb": "{DBInstanceClassMemory/12582880}",
    "aurora-mysql": "{DBInstanceClassMemory/12582880}",
    "postgres": "LEAST({DBInstanceClassMemory/9531392},5000)",
    "aurora-postgresql": "LEAST({DBInstanceClassMemory/9531392},5000)",
}


@dataclass
class Facts:
    """Facts of one account and region: per resource name, fact name -> value."""

    rds: dict[str, dict[str, float]] = field(default_factory=dict)
    sqs: dict[str, dict[str, float]] = field(default_factory=dict)
    lambdas: dict[str, dict[str, float]] = field(default_factory=dict)
    warnings: list[str] = field(default_factory=list)


def instance_class_memory(instance_class: str) -> int | None:
    """Memory in bytes of an RDS instance class (``db.r6g.xlarge`` -> 32 GiB), None when unknown."""
    m = re.match(r"^db\.([a-z]+)(\d+)[a-z-]*\.(\w+)$", instance_class or "")
    if not m:
        return None
    family, size = m.group(1), m.group(3)
    if family.startswith("t"):
        gib = _T_MEMORY.get(size)
        return int(gib * _GIB) if gib else None
    per = _GIB_PER_VCPU.get(family[0])
    if per is None:
        return None
    if size in _SIZES:
        vcpu = _SIZES[size]
    else:
        sm = re.match(r"^(\d+)xlarge$", size)
        if not sm:
            return None
        vcpu = 4 * int(sm.group(1))
    return int(vcpu * per * _GIB)


def evaluate_rds_formula(expr: str, class_memory: int | None) -> int | None:
    """Evaluate an RDS parameter value: a number or a formula over DBInstanceClassMemory."""
    expr = (expr or "").strip()
    if re.fullmatch(r"\d+", expr):
        return int(expr)
    if "DBInstanceClassMemory" in expr and class_memory is None:
        return None
    py = expr.replace("{", "(").replace("}", ")").replace("DBInstanceClassMemory", str(class_memory or 0))
    py = re.sub(r"(?<=\d)/(?=\d)", "//", py)
    if not re.fullmatch(r"(?:LEAST|GREATEST|SUM|[0-9+\-*/(), ])+", py):
        return None
    try:
        value = eval(py, {"__builtins__": {}}, {"LEAST": min, "GREATEST": max, "SUM": lambda *a: sum(a)})  # noqa: S307 - whitelisted characters only
    except Exception:
        return None
    return int(value)


def rds_max_connections(rds: Any, names: Iterable[str]) -> tuple[dict[str, float], list[str]]:
    """MaxConnections of the named RDS instances."""
    wanted = set(names)
    out: dict[str, float] = {}
    warnings: list[str] = []
    if not wanted:
        return out, warnings
    groups: dict[str, str | None] = {}
    kw: dict[str, Any] = {}
    while True:
        resp = rds.describe_db_instances(**kw)
        for db in resp.get("DBInstances") or []:
            name = db.get("DBInstanceIdentifier")
            if name not in wanted:
                continue
            mem = instance_class_memory(db.get("DBInstanceClass", ""))
            value = None
            for pg in db.get("DBParameterGroups") or []:
                gname = pg.get("DBParameterGroupName")
                if not gname or gname.startswith("default."):
                    continue
                if gname not in groups:
                    groups[gname] = _max_connections_parameter(rds, gname)
                if groups[gname] is not None:
                    value = evaluate_rds_formula(groups[gname] or "", mem)
            if value is None:
                engine = (db.get("Engine") or "").lower()
                default = _ENGINE_DEFAULT.get(engine)
                value = evaluate_rds_formula(default, mem) if default else None
            if value is None:
                warnings.append(
                    f"rds:{name}: MaxConnections unknown (engine {db.get('Engine')}, class {db.get('DBInstanceClass')}): "
                    "set max_connections in its parameter group to record it"
                )
            else:
                out[name] = float(value)
        marker = resp.get("Marker")
        if not marker:
            return out, warnings
        kw["Marker"] = marker


def _max_connections_parameter(rds: Any, group: str) -> str | None:
    kw: dict[str, Any] = {"DBParameterGroupName": group}
    while True:
        resp = rds.describe_db_parameters(**kw)
        for p in resp.get("Parameters") or []:
            if p.get("ParameterName") == "max_connections" and p.get("ParameterValue"):
                return str(p["ParameterValue"])
        marker = resp.get("Marker")
        if not marker:
            return None
        kw["Marker"] = marker


def sqs_attributes(sqs: Any, names: Iterable[str]) -> tuple[dict[str, dict[str, float]], list[str]]:
    """VisibilityTimeout, MessageRetentionPeriod and RedriveMaxReceiveCount of the named queues."""
    out: dict[str, dict[str, float]] = {}
    warnings: list[str] = []
    for name in sorted(set(names)):
        try:
            url = sqs.get_queue_url(QueueName=name)["QueueUrl"]
            attrs = sqs.get_queue_attributes(
                QueueUrl=url, AttributeNames=["VisibilityTimeout", "MessageRetentionPeriod", "RedrivePolicy"]
            ).get("Attributes", {})
        except Exception as e:  # a queue deleted since its metrics were listed
            warnings.append(f"sqs:{name}: attributes not read ({_short(e)})")
            continue
        redrive = 0.0
        if attrs.get("RedrivePolicy"):
            try:
                redrive = float(json.loads(attrs["RedrivePolicy"]).get("maxReceiveCount") or 0)
            except ValueError:
                warnings.append(f"sqs:{name}: RedrivePolicy is not JSON: {attrs['RedrivePolicy'][:80]}")
        out[name] = {
            "VisibilityTimeout": float(attrs.get("VisibilityTimeout", 0)),
            "MessageRetentionPeriod": float(attrs.get("MessageRetentionPeriod", 0)),
            "RedriveMaxReceiveCount": redrive,
        }
    return out, warnings


def lambda_configurations(lam: Any, names: Iterable[str]) -> tuple[dict[str, dict[str, float]], list[str]]:
    """MemorySize (MB) and Timeout (s) of the named functions."""
    out: dict[str, dict[str, float]] = {}
    warnings: list[str] = []
    for name in sorted(set(names)):
        try:
            cfg = lam.get_function_configuration(FunctionName=name)
        except Exception as e:
            warnings.append(f"lambda:{name}: configuration not read ({_short(e)})")
            continue
        out[name] = {"MemorySize": float(cfg.get("MemorySize", 0)), "Timeout": float(cfg.get("Timeout", 0))}
    return out, warnings


@dataclass
class LogMinute:
    invocations: int = 0
    max_memory_mb: float | None = None
    timeouts: int = 0


def parse_log_events(events: Iterable[Mapping[str, Any]]) -> dict[int, LogMinute]:
    """Per minute (epoch s of its start): REPORT lines seen, the largest Max Memory Used, timeouts."""
    minutes: dict[int, LogMinute] = {}
    timed_out: dict[int, set[str]] = {}
    for ev in events:
        msg = ev.get("message") or ""
        t = int(ev.get("timestamp") or 0) // 1000
        minute = t - t % 60
        m = _REPORT_RE.search(msg)
        if m:
            lm = minutes.setdefault(minute, LogMinute())
            lm.invocations += 1
            mem = float(m.group("mem"))
            lm.max_memory_mb = mem if lm.max_memory_mb is None else max(lm.max_memory_mb, mem)
            if _STATUS_TIMEOUT_RE.search(msg):
                timed_out.setdefault(minute, set()).add(m.group("rid"))
            continue
        tm = _TIMEOUT_RE.search(msg)
        if tm:
            rid = tm.group("rid") or f"{ev.get('logStreamName', '')}@{ev.get('timestamp')}"
            timed_out.setdefault(minute, set()).add(rid)
    for minute, rids in timed_out.items():
        minutes.setdefault(minute, LogMinute()).timeouts = len(rids)
    return minutes


def lambda_log_minutes(logs: Any, function: str, start_s: int, end_s: int) -> tuple[dict[int, LogMinute] | None, list[str]]:
    """REPORT and timeout lines of ``/aws/lambda/<function>`` in [start, end); None when there is no log group."""
    kw: dict[str, Any] = {
        "logGroupName": f"/aws/lambda/{function}",
        "startTime": start_s * 1000,
        "endTime": end_s * 1000 - 1,
        "filterPattern": LOG_FILTER_PATTERN,
    }
    events: list[Mapping[str, Any]] = []
    for _ in range(MAX_LOG_PAGES):
        try:
            resp = logs.filter_log_events(**kw)
        except Exception as e:
            if _code(e) == "ResourceNotFoundException":
                return None, []
            raise
        events.extend(resp.get("events") or [])
        token = resp.get("nextToken")
        if not token:
            return parse_log_events(events), []
        kw["nextToken"] = token
    return parse_log_events(events), [
        f"lambda:{function}: more than {MAX_LOG_PAGES} pages of REPORT lines; MaxMemoryUsed and Timeouts "
        "are partial for this window (install Lambda Insights to read memory from metrics instead)"
    ]


def _code(e: Exception) -> str:
    return (getattr(e, "response", None) or {}).get("Error", {}).get("Code", "")


def _short(e: Exception) -> str:
    return _code(e) or type(e).__name__
