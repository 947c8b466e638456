"""What an application sees through the API: the points each call produces, and that calls never raise."""

from __future__ import annotations

import datetime as dt
import json
from typing import Any, Dict, List

import pytest

from cms_sdk import CmsClient, ManualClock


def client(**kw: Any) -> CmsClient:
    opts: Dict[str, Any] = dict(service_name="pricing-batch", environment="prod", environ={}, start=False, spool_dir="off")
    opts.update(kw)
    return CmsClient(**opts)


def points(req: Dict[str, Any]) -> List[Dict[str, Any]]:
    out = []
    for rm in req["resourceMetrics"]:
        for sm in rm["scopeMetrics"]:
            for m in sm["metrics"]:
                kind = "sum" if "sum" in m else "gauge"
                for dp in m[kind]["dataPoints"]:
                    attrs = {a["key"]: next(iter(a["value"].values())) for a in dp["attributes"]}
                    out.append({"metric": m["name"], "kind": kind, "unit": m["unit"], "attrs": attrs, **dp})
    return out


def test_a_successful_run_reports_start_finish_duration_records_and_bytes() -> None:
    c = client()
    with c.run("derivatives", "eod_valuation", run_id="d.e.1", time="2026-11-20T22:00:00Z") as run:
        run.records(125_000).bytes(1024)
        run.finish(time="2026-11-20T22:30:00.5Z")
    pts = points(c.drain())
    assert [p["metric"] for p in pts] == [
        "cms.batch.run.started",
        "cms.batch.run.finished",
        "cms.batch.run.duration",
        "cms.batch.run.records",
        "cms.batch.run.bytes",
    ]
    fin = pts[1]
    assert fin["attrs"] == {
        "cms.asset_class": "derivatives",
        "cms.job": "eod_valuation",
        "cms.run_id": "d.e.1",
        "cms.status": "success",
        "cms.error_type": "",
    }
    assert pts[2]["asDouble"] == 1800.5 and pts[2]["startTimeUnixNano"] == pts[0]["timeUnixNano"]
    assert pts[3]["asInt"] == "125000" and pts[4]["asInt"] == "1024"


def test_an_exception_in_the_run_fails_it_with_the_exception_class_and_still_propagates() -> None:
    c = client()
    with pytest.raises(KeyError):
        with c.run("fx", "rates_snapshot") as run:
            with run.stage("ingest", type="ingest"):
                raise KeyError("EURUSD")
    pts = points(c.drain())
    finished = [p for p in pts if p["metric"].endswith(".finished")]
    assert [(p["metric"], p["attrs"]["cms.status"], p["attrs"]["cms.error_type"]) for p in finished] == [
        ("cms.stage.run.finished", "failed", "KeyError"),
        ("cms.batch.run.finished", "failed", "KeyError"),
    ]


def test_explicit_fail_then_leaving_the_block_emits_nothing_more() -> None:
    c = client()
    with c.run("fx", "rates_snapshot") as run:
        run.fail("UpstreamDataMissing")
    pts = points(c.drain())
    assert [p["metric"] for p in pts].count("cms.batch.run.finished") == 1
    assert run.status == "failed"


def test_stage_attempts_are_numbered_by_the_sdk_and_dependencies_reach_the_points() -> None:
    c = client()
    run = c.run("equities", "eod_pnl")
    run.stage("validation", type="validation", depends_on=["ingest", "enrichment"]).fail("Timeout")
    with run.stage("validation", type="validation", depends_on=["ingest", "enrichment"]) as st:
        st.add_records(10).add_records(5)
    run.finish()
    starts = [p for p in points(c.drain()) if p["metric"] == "cms.stage.run.started"]
    assert [(p["attrs"]["cms.attempt"], p["attrs"]["cms.retries"]) for p in starts] == [("1", "0"), ("2", "1")]
    assert starts[0]["attrs"]["cms.stage_depends_on"] == "ingest,enrichment"
    assert "cms.scheduled_start" not in starts[0]["attrs"]


def test_default_run_id_and_scheduled_start_from_a_datetime_use_milliseconds_utc() -> None:
    clock = ManualClock("2026-11-20T18:00:05.123456Z")
    c = client(clock=clock)
    c.run("fx", "rates_snapshot", scheduled_start=dt.datetime(2026, 11, 20, 18, 0, tzinfo=dt.timezone.utc))
    (p,) = points(c.drain())
    assert p["attrs"]["cms.run_id"] == "fx.rates_snapshot.2026-11-20T18:00:05.123Z"
    assert p["attrs"]["cms.scheduled_start"] == "2026-11-20T18:00:00.000Z"
    assert p["timeUnixNano"] == "1795197605123456000"


def test_feed_heartbeat_emits_up_and_only_the_figures_given() -> None:
    c = client()
    feed = c.feed("bloomberg-bpipe", provider="bloomberg")
    feed.heartbeat(up=True, latency_ms=12.5, messages=100, time="2026-11-20T14:00:00Z")
    feed.heartbeat(up=False, time="2026-11-20T14:01:00Z")
    pts = points(c.drain())
    assert [(p["metric"], p.get("asInt", p.get("asDouble"))) for p in pts] == [
        ("cms.feed.up", "1"),
        ("cms.feed.up", "0"),
        ("cms.feed.latency", 12.5),
        ("cms.feed.messages", "100"),
    ]
    msgs = pts[-1]
    assert int(msgs["timeUnixNano"]) - int(msgs["startTimeUnixNano"]) == 60 * 10**9


def test_custom_metrics_get_the_cms_app_prefix_and_invalid_values_are_counted_not_raised() -> None:
    c = client()
    c.gauge("queue_depth", 3, {"desk": "rates"}, unit="{message}")
    c.counter("cms.app.trades", 2, {"venue": "ebs", "lot": 100, "partial": False})
    c.gauge("bad", float("nan"))
    c.counter("bad", -1)
    c.counter("bad", "seven")  # type: ignore[arg-type]
    pts = points(c.drain())
    assert [(p["metric"], p["kind"]) for p in pts] == [("cms.app.queue_depth", "gauge"), ("cms.app.trades", "sum")]
    assert pts[0]["asDouble"] == 3.0
    assert pts[1]["attrs"] == {"venue": "ebs", "lot": "100", "partial": False}
    assert c.stats()["invalid"] == 3


def test_api_misuse_never_raises_into_the_caller() -> None:
    c = client()
    c.gauge("x", 1.0, attributes=42)  # type: ignore[arg-type]
    run = c.run("fx", "j", time=object())  # type: ignore[arg-type]
    run.records(-5)
    run.stage("s").finish()
    run.finish()
    c.counter("y", 1, time="not a time")
    s = c.stats()
    assert s["internal_errors"] >= 3 and s["invalid"] >= 1


def test_output_is_valid_otlp_for_the_official_schema() -> None:
    json_format = pytest.importorskip("google.protobuf.json_format")
    ms = pytest.importorskip("opentelemetry.proto.collector.metrics.v1.metrics_service_pb2")
    c = client(service_version="1.2.3", resource_attributes={"k8s.namespace.name": "pricing"})
    with c.run("commodities", "curve_build", scheduled_start="2026-11-20T06:00:00Z") as run:
        with run.stage("loading", type="loading", depends_on=[]) as st:
            st.records(0)
        run.add_bytes(2048)
    c.feed("ice", "ice").heartbeat(True, latency_ms=1, staleness_s=0.5, messages=3, missing_fields=0, invalid_values=1)
    c.gauge("g", 0.25, {"a": 1.5, "b": True})
    c.counter("n", 4)
    req = c.drain()
    msg = json_format.Parse(json.dumps(req), ms.ExportMetricsServiceRequest())
    assert sum(len(m.sum.data_points) + len(m.gauge.data_points) for m in msg.resource_metrics[0].scope_metrics[0].metrics) == 16
    res = {a["key"]: a["value"]["stringValue"] for a in req["resourceMetrics"][0]["resource"]["attributes"]}
    assert res["telemetry.sdk.language"] == "python" and res["k8s.namespace.name"] == "pricing"


def test_a_full_queue_drops_new_points_and_counts_them_without_blocking() -> None:
    c = client(max_queue_size=10)
    for i in range(100):
        c.gauge("g", float(i))
    s = c.stats()
    assert (s["queue_size"], s["dropped"], s["enqueued"]) == (10, 90, 10)
    assert s["calls"] == 100 and s["avg_call_overhead_us"] > 0
