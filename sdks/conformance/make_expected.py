"""Reference model of the conformance DSL: fills each vector's ``expected`` from its ``calls``.

This is the shared contract of README.md written as code, independent of the three SDKs. Run it after
editing a vector's calls, review the diff of ``expected`` by hand, and commit both:

    .venv/bin/python sdks/conformance/make_expected.py            # rewrite vectors/*.json
    .venv/bin/python sdks/conformance/make_expected.py --check    # exit 1 if a file would change
"""

from __future__ import annotations

import argparse
import json
import math
import re
import sys
from dataclasses import dataclass, field
from datetime import datetime, timezone
from pathlib import Path
from typing import Any

VECTORS = Path(__file__).resolve().parent / "vectors"
_TIME = re.compile(r"^(\d{4}-\d{2}-\d{2}T\d{2}:\d{2}:\d{2})(?:\.(\d{1,9}))?Z$")


def parse_time(text: str) -> int:
    """RFC 3339 UTC text with a ``Z`` -> nanoseconds since the epoch, exactly."""
    m = _TIME.match(text)
    if not m:
        raise ValueError(f"time {text!r} is not RFC 3339 UTC like 2026-11-20T22:01:00.250Z")
    whole = datetime.strptime(m.group(1), "%Y-%m-%dT%H:%M:%S").replace(tzinfo=timezone.utc)
    frac = (m.group(2) or "").ljust(9, "0")
    return int(whole.timestamp()) * 1_000_000_000 + int(frac)


def format_time(ns: int) -> str:
    """Nanoseconds -> ``YYYY-MM-DDTHH:MM:SS.mmmZ`` (milliseconds, truncated)."""
    secs, rem = divmod(ns, 1_000_000_000)
    stamp = datetime.fromtimestamp(secs, tz=timezone.utc).strftime("%Y-%m-%dT%H:%M:%S")
    return f"{stamp}.{rem // 1_000_000:03d}Z"


def is_integral(v: Any) -> bool:
    return isinstance(v, int) and not isinstance(v, bool) or isinstance(v, float) and v.is_integer()


def any_value(v: Any) -> dict[str, Any]:
    if isinstance(v, bool):
        return {"boolValue": v}
    if isinstance(v, (int, float)):
        return {"intValue": str(int(v))} if is_integral(v) else {"doubleValue": v}
    return {"stringValue": str(v)}


def attrs(pairs: list[tuple[str, Any]]) -> list[dict[str, Any]]:
    return [{"key": k, "value": any_value(v)} for k, v in pairs]


@dataclass
class Emitter:
    metrics: dict[str, dict[str, Any]] = field(default_factory=dict)

    def point(
        self,
        name: str,
        unit: str,
        kind: str,
        value: Any,
        time: int,
        pairs: list[tuple[str, Any]],
        start: int | None = None,
        force_double: bool = False,
    ) -> None:
        if name not in self.metrics:
            body: dict[str, Any] = {"dataPoints": []}
            if kind == "sum":
                body.update(aggregationTemporality=1, isMonotonic=True)
            self.metrics[name] = {"name": name, "unit": unit, kind: body}
        dp: dict[str, Any] = {"attributes": attrs(pairs)}
        if start is not None:
            dp["startTimeUnixNano"] = str(start)
        dp["timeUnixNano"] = str(time)
        if force_double or not is_integral(value):
            dp["asDouble"] = float(value)
        else:
            dp["asInt"] = str(int(value))
        self.metrics[name][kind]["dataPoints"].append(dp)


@dataclass
class Run:
    base: list[tuple[str, Any]]
    start: int
    records: int | None = None
    bytes: int | None = None
    ended: bool = False
    attempts: dict[str, int] = field(default_factory=dict)
    stages: dict[str, Stage] = field(default_factory=dict)


@dataclass
class Stage:
    base: list[tuple[str, Any]]
    start: int
    records: int | None = None
    ended: bool = False


def end_run(em: Emitter, run: Run, time: int, error_type: str | None) -> None:
    if run.ended:
        return
    run.ended = True
    status = "failed" if error_type is not None else "success"
    with_status = [*run.base, ("cms.status", status)]
    em.point("cms.batch.run.finished", "{run}", "sum", 1, time,
             [*with_status, ("cms.error_type", error_type or "")], start=run.start)
    em.point("cms.batch.run.duration", "s", "gauge", (time - run.start) / 1e9, time, with_status,
             start=run.start, force_double=True)
    if run.records is not None:
        em.point("cms.batch.run.records", "{record}", "sum", run.records, time, with_status, start=run.start)
    if run.bytes is not None:
        em.point("cms.batch.run.bytes", "By", "sum", run.bytes, time, with_status, start=run.start)


def end_stage(em: Emitter, st: Stage, time: int, error_type: str | None) -> None:
    if st.ended:
        return
    st.ended = True
    status = "failed" if error_type is not None else "success"
    with_status = [*st.base, ("cms.status", status)]
    em.point("cms.stage.run.finished", "{run}", "sum", 1, time,
             [*with_status, ("cms.error_type", error_type or "")], start=st.start)
    em.point("cms.stage.run.duration", "s", "gauge", (time - st.start) / 1e9, time, with_status,
             start=st.start, force_double=True)
    if st.records is not None:
        em.point("cms.stage.run.records", "{record}", "sum", st.records, time, with_status, start=st.start)


def custom_name(name: str) -> str:
    return name if name.startswith("cms.app.") else "cms.app." + name


def replay(vector: dict[str, Any]) -> dict[str, Any]:
    em = Emitter()
    runs: dict[str, Run] = {}
    for call in vector["calls"]:
        op = call["op"]
        t = parse_time(call["time"]) if "time" in call else None
        if op == "run_start":
            run_id = call.get("run_id") or f"{call['asset_class']}.{call['job']}.{format_time(t)}"
            base = [("cms.asset_class", call["asset_class"]), ("cms.job", call["job"]), ("cms.run_id", run_id)]
            if call.get("scheduled_start") is not None:
                base.append(("cms.scheduled_start", call["scheduled_start"]))
            runs[call["run"]] = Run(base=base, start=t)
            em.point("cms.batch.run.started", "{run}", "sum", 1, t, base, start=t)
        elif op in ("run_set", "run_add"):
            run = runs[call["run"]]
            for key in ("records", "bytes"):
                if call.get(key) is not None:
                    old = getattr(run, key) or 0
                    setattr(run, key, call[key] if op == "run_set" else old + call[key])
        elif op in ("run_finish", "run_close"):
            end_run(em, runs[call["run"]], t, None)
        elif op == "run_fail":
            end_run(em, runs[call["run"]], t, call["error_type"])
        elif op == "stage_start":
            run = runs[call["run"]]
            name = call["stage"]
            attempt = call.get("attempt") or run.attempts.get(name, 0) + 1
            run.attempts[name] = max(run.attempts.get(name, 0), attempt)
            base = [p for p in run.base if p[0] != "cms.scheduled_start"]
            base.append(("cms.stage", name))
            if call.get("stage_type") is not None:
                base.append(("cms.stage_type", call["stage_type"]))
            base += [("cms.attempt", attempt), ("cms.retries", attempt - 1)]
            if call.get("depends_on") is not None:
                base.append(("cms.stage_depends_on", ",".join(call["depends_on"])))
            run.stages[name] = Stage(base=base, start=t)
            em.point("cms.stage.run.started", "{run}", "sum", 1, t, base, start=t)
        elif op in ("stage_set", "stage_add"):
            st = runs[call["run"]].stages[call["stage"]]
            st.records = call["records"] if op == "stage_set" else (st.records or 0) + call["records"]
        elif op in ("stage_finish", "stage_close"):
            end_stage(em, runs[call["run"]].stages[call["stage"]], t, None)
        elif op == "stage_fail":
            end_stage(em, runs[call["run"]].stages[call["stage"]], t, call["error_type"])
        elif op == "heartbeat":
            pairs = [("cms.feed", call["feed"]), ("cms.provider", call["provider"])]
            start = t - int(call.get("interval_s", 60) * 1_000_000_000)
            em.point("cms.feed.up", "1", "gauge", 1 if call["up"] else 0, t, pairs)
            for key, name, unit in (("latency_ms", "cms.feed.latency", "ms"), ("staleness_s", "cms.feed.staleness", "s")):
                if call.get(key) is not None:
                    em.point(name, unit, "gauge", call[key], t, pairs, force_double=True)
            for key, name, unit in (
                ("messages", "cms.feed.messages", "{message}"),
                ("missing_fields", "cms.feed.missing_fields", "{field}"),
                ("invalid_values", "cms.feed.invalid_values", "{value}"),
            ):
                if call.get(key) is not None:
                    em.point(name, unit, "sum", call[key], t, pairs, start=start)
        elif op == "gauge":
            v = call["value"]
            if math.isfinite(v):
                em.point(custom_name(call["name"]), call.get("unit", "1"), "gauge", v, t,
                         list((call.get("attributes") or {}).items()), force_double=True)
        elif op == "counter":
            v = call["value"]
            if math.isfinite(v) and v >= 0:
                start = parse_time(call["start_time"]) if call.get("start_time") else t
                em.point(custom_name(call["name"]), call.get("unit", "1"), "sum", v, t,
                         list((call.get("attributes") or {}).items()), start=start)
        else:
            raise ValueError(f"unknown op {op!r} in vector {vector['name']!r}")
    res = vector["resource"]
    resource = [("service.name", res["service_name"])]
    if res.get("service_version"):
        resource.append(("service.version", res["service_version"]))
    resource += [
        ("cms.environment", res["environment"]),
        ("telemetry.sdk.name", "cms-sdk"),
        ("telemetry.sdk.language", "*"),
        ("telemetry.sdk.version", "*"),
    ]
    return {
        "resourceMetrics": [
            {
                "resource": {"attributes": attrs(resource)},
                "scopeMetrics": [{"scope": {"name": "cms-sdk"}, "metrics": list(em.metrics.values())}],
            }
        ]
    }


def dump(vector: dict[str, Any]) -> str:
    """The vector as JSON text with one call per line and ``expected`` indented."""
    head = {k: v for k, v in vector.items() if k not in ("calls", "expected")}
    lines = ["{"]
    lines += [f"  {json.dumps(k)}: {json.dumps(v)}," for k, v in head.items()]
    calls = ",\n".join("    " + json.dumps(c) for c in vector["calls"])
    lines.append(f'  "calls": [\n{calls}\n  ],')
    expected = json.dumps(vector["expected"], indent=2).replace("\n", "\n  ")
    lines.append(f'  "expected": {expected}')
    lines.append("}")
    return "\n".join(lines) + "\n"


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--check", action="store_true", help="only report vectors whose expected is stale")
    args = parser.parse_args(argv)
    stale = []
    for path in sorted(VECTORS.glob("*.json")):
        vector = json.loads(path.read_text())
        vector["expected"] = replay(vector)
        text = dump(vector)
        if path.read_text() != text:
            stale.append(path.name)
            if not args.check:
                path.write_text(text)
    verb = "stale" if args.check else "rewritten"
    print(f"{len(stale)} {verb}: {', '.join(stale) or '-'}")
    return 1 if args.check and stale else 0


if __name__ == "__main__":
    sys.exit(main())
