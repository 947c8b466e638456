import datetime as dt

import orjson

from cms_dagster.otel import otlp
from cms_dagster.otel.flatten import flatten_lines
from cms_dagster.otel.ids import point_id

UTC = dt.timezone.utc
T0 = 1_763_300_000_000_000_000


def _flat(reqs: list[dict], source: str = "sdk", **kw):
    lines = [orjson.dumps(r) for r in reqs]
    return flatten_lines(
        lines,
        source=source,
        raw_key="k",
        ingested_at=dt.datetime(2026, 11, 16, tzinfo=UTC),
        day=dt.date(2026, 11, 16),
        hour=0,
        **kw,
    )


def _cw(resource: dict, t: int, dims=None) -> dict:
    attrs = {
        "Namespace": "AWS/RDS",
        "MetricName": "CPUUtilization",
        "Dimensions": dims or {"DBInstanceIdentifier": "orders-db"},
    }
    return otlp.request(
        resource,
        [
            otlp.summary(
                "amazonaws.com/AWS/RDS/CPUUtilization",
                "Percent",
                [otlp.summary_point(attrs, t - 60 * 10**9, t, 1, 42.0, 40.0, 44.0)],
            )
        ],
    )


def test_every_point_becomes_one_row_with_a_unique_id() -> None:
    res = {"service.name": "batch-fx", "cms.environment": "demo"}
    pts = [
        otlp.number_point({"cms.feed": f"feed-{i % 3}"}, T0 + i * 60 * 10**9, float(i)) for i in range(500)
    ]
    counts = [otlp.number_point({"cms.feed": "feed-0"}, T0 + i * 10**9, i) for i in range(100)]
    req = otlp.request(
        res, [otlp.gauge("cms.feed.latency", "ms", pts), otlp.sum_("cms.feed.messages", "{message}", counts)]
    )
    flat = _flat([req, req])  # the same request twice in one batch: one row per point id
    assert flat.points == 600 and not flat.rejected
    ids = flat.table.column("point_id").to_pylist()
    assert len(set(ids)) == 600
    row = flat.table.slice(1, 1).to_pylist()[0]
    assert row["metric_kind"] == "gauge" and row["value"] == 1.0 and row["feed"] == "feed-1"
    assert (
        row["entity_id"] == "feed:feed-1"
        and row["service_name"] == "batch-fx"
        and row["environment"] == "demo"
    )
    assert row["ts"] == dt.datetime.fromtimestamp((T0 + 60 * 10**9) / 1e9, UTC)


def test_duplicates_in_one_request_keep_the_last_copy_every_time() -> None:
    res = {"service.name": "batch-fx"}
    copies = [otlp.number_point({"cms.feed": "feed-0"}, T0, float(v)) for v in (1, 2, 3, 4, 5)]
    req = otlp.request(res, [otlp.gauge("cms.feed.latency", "ms", copies)])
    for _ in range(6):
        flat = _flat([req])
        assert flat.table.column("value").to_pylist() == [5.0]  # the last in the request wins
    later = otlp.request(res, [otlp.gauge("cms.feed.latency", "ms", [otlp.number_point({"cms.feed": "feed-0"}, T0, 9.0)])])
    assert _flat([req, later]).table.column("value").to_pylist() == [9.0]  # and the last line of the batch


def test_point_id_ignores_delivery_details_but_not_identity() -> None:
    polled = _cw(
        {"cloud.provider": "aws", "cloud.account.id": "123456789012", "cloud.region": "us-east-1"}, T0
    )
    streamed = _cw(
        {
            "cloud.region": "us-east-1",
            "cloud.account.id": "123456789012",
            "cloud.provider": "aws",
            "aws.exporter.arn": "arn:aws:cloudwatch:us-east-1:123456789012:metric-stream/cms",
        },
        T0,
    )
    other_db = _cw(
        {"cloud.provider": "aws", "cloud.account.id": "123456789012", "cloud.region": "us-east-1"},
        T0,
        {"DBInstanceIdentifier": "risk-db"},
    )
    a, b, c = (_flat([r], source="cloudwatch").table.to_pylist()[0] for r in (polled, streamed, other_db))
    assert a["point_id"] == b["point_id"] != c["point_id"]
    assert (a["value"], a["min"], a["max"], a["count"], a["sum"]) == (42.0, 40.0, 44.0, 1.0, 42.0)
    assert a["entity_id"] == "rds:orders-db" and c["entity_id"] == "rds:risk-db"
    # the documented rule, computed independently
    assert a["point_id"] == point_id(
        {"cloud.provider": "aws", "cloud.account.id": "123456789012", "cloud.region": "us-east-1"},
        "amazonaws.com/AWS/RDS/CPUUtilization",
        {
            "Namespace": "AWS/RDS",
            "MetricName": "CPUUtilization",
            "Dimensions": {"DBInstanceIdentifier": "orders-db"},
        },
        T0,
    )


def test_bad_lines_and_points_are_rejected_with_reasons_and_the_rest_kept() -> None:
    good = otlp.request(
        {"service.name": "s"}, [otlp.gauge("cms.app.queue_depth", "1", [otlp.number_point({}, T0, 3.0)])]
    )
    no_run = otlp.request(
        {"service.name": "s"},
        [otlp.sum_("cms.batch.run.started", "{run}", [otlp.number_point({"cms.asset_class": "fx"}, T0, 1)])],
    )
    bad_ac = otlp.request(
        {"service.name": "s"},
        [
            otlp.sum_(
                "cms.batch.run.started",
                "{run}",
                [otlp.number_point({"cms.asset_class": "crypto", "cms.job": "j", "cms.run_id": "r"}, T0, 1)],
            )
        ],
    )
    lines = [
        orjson.dumps(good),
        b"{not json",
        orjson.dumps([1, 2]),
        orjson.dumps(no_run),
        orjson.dumps(bad_ac),
        orjson.dumps({"resourceMetrics": 5}),
    ]
    flat = flatten_lines(
        lines,
        source="sdk",
        raw_key="k",
        ingested_at=dt.datetime(2026, 11, 16, tzinfo=UTC),
        day=dt.date(2026, 11, 16),
        hour=0,
    )
    assert flat.points == 1
    reasons = {r.line: r.reason for r in flat.rejected}
    assert reasons[2].startswith("malformed JSON")
    assert "not a JSON object" in reasons[3]
    assert "lacks required attribute(s) cms.job, cms.run_id" in reasons[4]
    assert "'crypto' is not one of" in reasons[5]
    assert "resourceMetrics" in reasons[6]


def test_values_outside_the_contract_are_rejected_not_crashing() -> None:
    huge = otlp.request({"service.name": "s"}, [otlp.gauge("cms.app.x", "1", [otlp.number_point({}, 2**63, 1.0)])])
    typed = otlp.request({"service.name": 42, "cloud.region": 1.5}, [otlp.gauge("cms.app.x", "1", [otlp.number_point({}, T0, 1.0)])])
    bad_unit = {"resourceMetrics": [{"resource": {}, "scopeMetrics": [{"metrics": [{"name": "cms.app.x", "unit": 5, "gauge": {"dataPoints": []}}]}]}]}
    flat = _flat([huge, typed, bad_unit])
    assert flat.points == 1
    row = flat.table.to_pylist()[0]
    assert (row["service_name"], row["region"]) == ("42", "1.5")
    assert {r.reason for r in flat.rejected} == {"timeUnixNano/startTimeUnixNano out of range", "metric name and unit must be strings"}
