"""The shared test vectors are valid OTLP, and every SDK turns the same calls into the same request."""

from __future__ import annotations

import json
import subprocess
import sys
from pathlib import Path
from typing import Any

import pytest
from google.protobuf import json_format
from opentelemetry.proto.collector.metrics.v1.metrics_service_pb2 import ExportMetricsServiceRequest
from sdk_conformance import LANGUAGES, SDKS, VECTORS, differences, normalise, run_sdk

SECTION2_METRICS = {
    "cms.batch.run.started", "cms.batch.run.finished", "cms.batch.run.duration", "cms.batch.run.records",
    "cms.batch.run.bytes", "cms.stage.run.started", "cms.stage.run.finished", "cms.stage.run.duration",
    "cms.stage.run.records", "cms.feed.up", "cms.feed.latency", "cms.feed.staleness", "cms.feed.messages",
    "cms.feed.missing_fields", "cms.feed.invalid_values",
}


def parse_otlp(request: dict[str, Any]) -> ExportMetricsServiceRequest:
    """Parses OTLP/JSON with the official protobuf schema; unknown fields are an error."""
    return json_format.Parse(json.dumps(request), ExportMetricsServiceRequest())


def load(vector: Path) -> dict[str, Any]:
    return json.loads(vector.read_text())


def metric_names(request: dict[str, Any]) -> set[str]:
    return {m["name"] for rm in request["resourceMetrics"] for sm in rm["scopeMetrics"] for m in sm["metrics"]}


@pytest.mark.parametrize("vector", VECTORS, ids=[v.stem for v in VECTORS])
def test_expected_request_is_valid_otlp(vector: Path) -> None:
    msg = parse_otlp(load(vector)["expected"])
    points = [
        dp
        for rm in msg.resource_metrics
        for sm in rm.scope_metrics
        for m in sm.metrics
        for dp in (m.sum.data_points if m.HasField("sum") else m.gauge.data_points)
    ]
    assert points, f"{vector.name} expects no data points"
    assert all(dp.time_unix_nano > 0 for dp in points)


def test_vectors_cover_every_business_metric_and_custom_kinds() -> None:
    seen = set().union(*(metric_names(load(v)["expected"]) for v in VECTORS))
    assert SECTION2_METRICS <= seen, f"no vector emits {sorted(SECTION2_METRICS - seen)}"
    kinds = {
        ("sum" if "sum" in m else "gauge")
        for v in VECTORS
        for rm in load(v)["expected"]["resourceMetrics"]
        for sm in rm["scopeMetrics"]
        for m in sm["metrics"]
        if m["name"].startswith("cms.app.")
    }
    assert kinds == {"sum", "gauge"}


def test_expected_sums_are_delta_monotonic() -> None:
    for v in VECTORS:
        for rm in load(v)["expected"]["resourceMetrics"]:
            for sm in rm["scopeMetrics"]:
                for m in sm["metrics"]:
                    if "sum" in m:
                        assert m["sum"]["aggregationTemporality"] == 1 and m["sum"]["isMonotonic"] is True, m["name"]


def test_expected_requests_match_the_reference_model() -> None:
    proc = subprocess.run(
        [sys.executable, str(SDKS / "conformance" / "make_expected.py"), "--check"], capture_output=True, text=True
    )
    assert proc.returncode == 0, f"vectors whose expected differs from make_expected.py: {proc.stdout}{proc.stderr}"


def test_normalise_ignores_grouping_and_order() -> None:
    expected = load(VECTORS[0])["expected"]
    rm = expected["resourceMetrics"][0]
    split = {
        "resourceMetrics": [
            {"resource": {"attributes": list(reversed(rm["resource"]["attributes"]))},
             "scopeMetrics": [{"scope": sm["scope"], "metrics": [m]}]}
            for sm in rm["scopeMetrics"]
            for m in reversed(sm["metrics"])
        ]
    }
    assert differences(normalise(expected), normalise(split)) == []


@pytest.mark.slow
@pytest.mark.usefixtures("java_build")
@pytest.mark.parametrize("language", LANGUAGES)
@pytest.mark.parametrize("vector", VECTORS, ids=[v.stem for v in VECTORS])
def test_sdk_produces_the_expected_request(language: str, vector: Path) -> None:
    actual = run_sdk(language, vector)
    parse_otlp(actual)
    resource = {a["key"]: a["value"] for a in actual["resourceMetrics"][0]["resource"]["attributes"]}
    assert resource["telemetry.sdk.language"] == {"stringValue": "nodejs" if language == "node" else language}
    problems = differences(normalise(load(vector)["expected"]), normalise(actual))
    assert not problems, f"{language} differs from {vector.name}:\n" + "\n".join(problems[:20])


def test_comparison_catches_wrong_types_values_and_missing_points() -> None:
    expected = load(VECTORS[0])["expected"]
    metrics = expected["resourceMetrics"][0]["scopeMetrics"][0]["metrics"]

    def mutated(change) -> dict[str, Any]:
        copy = json.loads(json.dumps(expected))
        change(copy["resourceMetrics"][0]["scopeMetrics"][0]["metrics"])
        return copy

    def int_as_number(ms: list[dict[str, Any]]) -> None:
        ms[0]["sum"]["dataPoints"][0]["asInt"] = 1

    def wrong_status(ms: list[dict[str, Any]]) -> None:
        ms[1]["sum"]["dataPoints"][0]["attributes"][-2]["value"] = {"stringValue": "failed"}

    def missing_point(ms: list[dict[str, Any]]) -> None:
        ms.pop()

    assert metrics[0]["name"] == "cms.batch.run.started"
    for change in (int_as_number, wrong_status, missing_point):
        assert differences(normalise(expected), normalise(mutated(change))), change.__name__
    sdk_version = json.loads(json.dumps(expected))
    sdk_version["resourceMetrics"][0]["resource"]["attributes"][-1]["value"] = {"stringValue": ""}
    assert differences(normalise(expected), normalise(sdk_version))
