"""Helpers for the SDK conformance tests: run each SDK's runner, normalise and compare OTLP/JSON requests.

Imported by the tests as a plain module (tests/ has no packages): ``from sdk_conformance import ...``.
"""

from __future__ import annotations

import json
import os
import shutil
import subprocess
import sys
from pathlib import Path
from typing import Any

import pytest

REPO = Path(__file__).resolve().parents[2]
SDKS = REPO / "sdks"
VECTORS = sorted((SDKS / "conformance" / "vectors").glob("*.json"))
LANGUAGES = ("java", "node", "python")


def normalise(request: dict[str, Any]) -> dict[str, Any]:
    """A canonical form of an ExportMetricsServiceRequest that ignores how points were grouped and ordered.

    Resources and scopes with equal content are merged; metrics are sorted by name (and kind, unit);
    data points by (timeUnixNano as an integer, attributes); every attribute list by key.
    """
    merged: dict[str, dict[str, Any]] = {}
    for rm in request.get("resourceMetrics", []):
        res_attrs = _sorted_attrs(rm.get("resource", {}).get("attributes", []))
        for sm in rm.get("scopeMetrics", []):
            key = json.dumps([res_attrs, sm.get("scope", {})], sort_keys=True)
            entry = merged.setdefault(key, {"resource": res_attrs, "scope": sm.get("scope", {}), "metrics": {}})
            for m in sm.get("metrics", []):
                kind = next(k for k in ("gauge", "sum", "histogram", "summary", "exponentialHistogram") if k in m)
                body = {k: v for k, v in m[kind].items() if k != "dataPoints"}
                mkey = json.dumps([m["name"], m.get("unit", ""), kind, body], sort_keys=True)
                target = entry["metrics"].setdefault(
                    mkey, {"name": m["name"], "unit": m.get("unit", ""), "kind": kind, **body, "dataPoints": []}
                )
                for dp in m[kind].get("dataPoints", []):
                    target["dataPoints"].append({**dp, "attributes": _sorted_attrs(dp.get("attributes", []))})
    out = []
    for key in sorted(merged):
        entry = merged[key]
        metrics = []
        for mkey in sorted(entry["metrics"]):
            m = entry["metrics"][mkey]
            m["dataPoints"].sort(key=lambda dp: (int(dp.get("timeUnixNano", "0")), json.dumps(dp["attributes"], sort_keys=True)))
            metrics.append(m)
        out.append({"resource": entry["resource"], "scope": entry["scope"], "metrics": metrics})
    return {"resources": out}


def _sorted_attrs(attrs: list[dict[str, Any]]) -> list[dict[str, Any]]:
    return sorted(attrs, key=lambda a: a["key"])


def differences(expected: Any, actual: Any, path: str = "$") -> list[str]:
    """Where ``actual`` differs from ``expected``; ``{"stringValue": "*"}`` matches any non-empty string."""
    if isinstance(expected, dict) and isinstance(actual, dict):
        if expected == {"stringValue": "*"}:
            ok = isinstance(actual.get("stringValue"), str) and actual["stringValue"] != "" and len(actual) == 1
            return [] if ok else [f"{path}: expected any non-empty stringValue, got {actual}"]
        out = []
        for k in sorted(set(expected) | set(actual)):
            if k not in actual:
                out.append(f"{path}.{k}: missing (expected {json.dumps(expected[k])[:120]})")
            elif k not in expected:
                out.append(f"{path}.{k}: unexpected {json.dumps(actual[k])[:120]}")
            else:
                out += differences(expected[k], actual[k], f"{path}.{k}")
        return out
    if isinstance(expected, list) and isinstance(actual, list):
        if len(expected) != len(actual):
            return [f"{path}: expected {len(expected)} items, got {len(actual)}: {json.dumps(actual)[:300]}"]
        out = []
        for i, (e, a) in enumerate(zip(expected, actual, strict=True)):
            out += differences(e, a, f"{path}[{i}]")
        return out
    numeric = (int, float)
    if isinstance(expected, numeric) and isinstance(actual, numeric) and not isinstance(expected, bool) and not isinstance(actual, bool):
        return [] if float(expected) == float(actual) else [f"{path}: expected {expected}, got {actual}"]
    if type(expected) is not type(actual) or expected != actual:
        return [f"{path}: expected {expected!r}, got {actual!r}"]
    return []


def runner_command(language: str, vector: Path) -> list[str] | None:
    """The command that replays ``vector`` with one SDK, or None when that SDK or its toolchain is missing."""
    if language == "java":
        if not shutil.which("java") or not (SDKS / "java" / "build" / "classes").is_dir():
            return None
        return ["java", "-cp", str(SDKS / "java" / "build" / "classes"), "io.cms.sdk.conformance.ConformanceRunner", str(vector)]
    if language == "node":
        if not shutil.which("node") or not (SDKS / "node" / "conformance.mjs").is_file():
            return None
        return ["node", str(SDKS / "node" / "conformance.mjs"), str(vector)]
    script = SDKS / "python" / "conformance.py"
    return [sys.executable, str(script), str(vector)] if script.is_file() else None


def run_sdk(language: str, vector: Path) -> dict[str, Any]:
    """Replays ``vector`` with one SDK's runner and returns the request it printed (skips when unavailable,
    except under ``CI=true``, where a missing toolchain is a failure: CI must check every SDK)."""
    cmd = runner_command(language, vector)
    if cmd is None:
        why = f"the {language} SDK runner or its toolchain is not available here"
        if os.environ.get("CI", "").strip().lower() == "true":
            pytest.fail(f"{why}; CI=true needs every SDK checked (install the JDK and Node.js, run `make test-sdks`)")
        pytest.skip(why)
    proc = subprocess.run(cmd, capture_output=True, text=True, timeout=60, cwd=REPO)
    assert proc.returncode == 0, f"{language} runner failed on {vector.name}:\n{proc.stderr}"
    try:
        return json.loads(proc.stdout)
    except json.JSONDecodeError as e:
        raise AssertionError(f"{language} runner printed no JSON for {vector.name}: {e}\n{proc.stdout[:500]}") from e
