"""Every shared conformance vector (sdks/conformance/vectors) replayed through the Python SDK."""

from __future__ import annotations

import importlib.util
import json
from pathlib import Path
from typing import Any, Dict, List

import pytest

SDK_DIR = Path(__file__).resolve().parents[1]
VECTORS = sorted((SDK_DIR.parent / "conformance" / "vectors").glob("*.json"))


def _runner() -> Any:
    spec = importlib.util.spec_from_file_location("cms_sdk_conformance_runner", SDK_DIR / "conformance.py")
    assert spec and spec.loader
    mod = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(mod)
    return mod


def normalise(req: Dict[str, Any]) -> Dict[str, Any]:
    """The comparison rules of sdks/conformance/README.md: merge equal resources/scopes, sort metrics by
    name, points by (time, attributes), attributes by key."""
    merged: Dict[str, Dict[str, Any]] = {}
    for rm in req.get("resourceMetrics", []):
        res = sorted(rm.get("resource", {}).get("attributes", []), key=lambda a: a["key"])
        for sm in rm.get("scopeMetrics", []):
            key = json.dumps([res, sm.get("scope", {})], sort_keys=True)
            entry = merged.setdefault(key, {"resource": res, "scope": sm.get("scope", {}), "metrics": {}})
            for m in sm.get("metrics", []):
                kind = "sum" if "sum" in m else "gauge"
                body = {k: v for k, v in m[kind].items() if k != "dataPoints"}
                mk = json.dumps([m["name"], m.get("unit", ""), kind, body], sort_keys=True)
                t = entry["metrics"].setdefault(mk, {"name": m["name"], "unit": m.get("unit", ""), "kind": kind, **body, "dataPoints": []})
                for dp in m[kind]["dataPoints"]:
                    t["dataPoints"].append({**dp, "attributes": sorted(dp.get("attributes", []), key=lambda a: a["key"])})
    out = []
    for key in sorted(merged):
        e = merged[key]
        ms = []
        for mk in sorted(e["metrics"]):
            m = e["metrics"][mk]
            m["dataPoints"].sort(key=lambda dp: (int(dp["timeUnixNano"]), json.dumps(dp["attributes"], sort_keys=True)))
            ms.append(m)
        out.append({"resource": e["resource"], "scope": e["scope"], "metrics": ms})
    return {"resources": out}


def differences(expected: Any, actual: Any, path: str = "$") -> List[str]:
    if isinstance(expected, dict) and isinstance(actual, dict):
        if expected == {"stringValue": "*"}:
            ok = isinstance(actual.get("stringValue"), str) and actual["stringValue"] != "" and len(actual) == 1
            return [] if ok else [f"{path}: expected any non-empty stringValue, got {actual}"]
        out: List[str] = []
        for k in sorted(set(expected) | set(actual)):
            if k not in actual:
                out.append(f"{path}.{k}: missing")
            elif k not in expected:
                out.append(f"{path}.{k}: unexpected {actual[k]!r}")
            else:
                out += differences(expected[k], actual[k], f"{path}.{k}")
        return out
    if isinstance(expected, list) and isinstance(actual, list):
        if len(expected) != len(actual):
            return [f"{path}: expected {len(expected)} items, got {len(actual)}"]
        return [d for i, (e, a) in enumerate(zip(expected, actual)) for d in differences(e, a, f"{path}[{i}]")]
    num = (int, float)
    if isinstance(expected, num) and isinstance(actual, num) and not isinstance(expected, bool) and not isinstance(actual, bool):
        return [] if float(expected) == float(actual) else [f"{path}: expected {expected}, got {actual}"]
    if type(expected) is not type(actual) or expected != actual:
        return [f"{path}: expected {expected!r}, got {actual!r}"]
    return []


def test_there_are_vectors_to_check() -> None:
    if not (SDK_DIR.parent / "conformance").is_dir():
        pytest.skip("sdks/conformance is not in this checkout")
    assert VECTORS


@pytest.mark.parametrize("vector", VECTORS, ids=[v.stem for v in VECTORS])
def test_vector_replayed_through_the_python_sdk_gives_the_expected_request(vector: Path) -> None:
    v = json.loads(vector.read_text())
    actual = _runner().replay(v)
    diffs = differences(normalise(v["expected"]), normalise(actual))
    assert not diffs, f"{vector.name}:\n" + "\n".join(diffs[:20])
    json_format = pytest.importorskip("google.protobuf.json_format")
    ms = pytest.importorskip("opentelemetry.proto.collector.metrics.v1.metrics_service_pb2")
    json_format.Parse(json.dumps(actual), ms.ExportMetricsServiceRequest())
