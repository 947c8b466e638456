"""One team cannot touch another's data: ownership of services, reserved CloudWatch names, and point ids
that keep SDK points of different teams, and SDK and CloudWatch points, apart all the way to the warehouse."""

from __future__ import annotations

import datetime as dt
import json
from pathlib import Path
from typing import Any

import orjson
import pytest
from ingest_helpers import AUTH, KEY, T0, TEAM, raw_keys

from cms_dagster.ingest.auth import KeyConfigError, Ownership, load_access, parse_access_yaml
from cms_dagster.lake import Lake, Zone, gzip_bytes, raw_key
from cms_dagster.lake.processing import process_hour
from cms_dagster.otel import otlp
from cms_dagster.otel.ids import point_id
from cms_dagster.warehouse import duckdb_load

URL = "/v1/metrics"
FX_KEY, OPS_KEY = "k-fx-feeds-0123456789", "k-ops-team-0123456789"
FX = {"authorization": f"Bearer {FX_KEY}"}
OPS = {"authorization": f"Bearer {OPS_KEY}"}
SERVICES = {TEAM: ("pricing-*",), "fx-feeds": ("fx-*", "rates")}
CPU = "amazonaws.com/AWS/RDS/CPUUtilization"
CPU_ATTRS = {"Namespace": "AWS/RDS", "MetricName": "CPUUtilization", "Dimensions": {"DBInstanceIdentifier": "orders-db"}}
AWS_RES = {"cloud.provider": "aws", "cloud.account.id": "123456789012", "cloud.region": "us-east-1"}


def gauge(service: str, value: float, t: int = T0, feed: str = "feed-0") -> dict[str, Any]:
    return otlp.request(
        {"service.name": service}, [otlp.gauge("cms.feed.latency", "ms", [otlp.number_point({"cms.feed": feed}, t, value)])]
    )


def cpu(value: float, resource: dict[str, Any] | None = None) -> dict[str, Any]:
    point = otlp.summary_point(CPU_ATTRS, T0 - 60 * 10**9, T0, 1, value, value, value)
    return otlp.request(resource or AWS_RES, [otlp.summary(CPU, "Percent", [point])])


def post(client: Any, body: dict, auth: dict[str, str]) -> Any:
    return client.post(URL, content=orjson.dumps(body), headers={"content-type": "application/json", **auth})


@pytest.fixture
def owned(make_client: Any) -> Any:
    return make_client(api_keys={KEY: TEAM, FX_KEY: "fx-feeds", OPS_KEY: "ops"}, services=SERVICES)


def quarantined_reasons(zone: Zone) -> list[str]:
    out = []
    for k in zone.list("quarantine/"):
        if k.endswith(".rejected.jsonl"):
            out += [json.loads(line)["reason"] for line in zone.get(k).splitlines()]
    return out


def test_a_team_cannot_write_a_service_another_team_owns(owned: Any, zone: Zone) -> None:
    assert post(owned, gauge("pricing-batch", 1.0), AUTH).json() == {}
    r = post(owned, gauge("pricing-batch", 99.0), FX)
    assert r.status_code == 200
    ps = r.json()["partialSuccess"]
    assert ps["rejectedDataPoints"] == "1" and "not owned by team fx-feeds" in ps["errorMessage"]
    r = post(owned, gauge("pricing-batch", 98.0), OPS)  # a team that declares nothing cannot either
    assert "not owned by team ops" in r.json()["partialSuccess"]["errorMessage"]
    assert len(raw_keys(zone)) == 1  # only the owner's point reached the raw zone
    reasons = quarantined_reasons(zone)
    assert len(reasons) == 2 and all("is not owned by team" in x for x in reasons)


def test_a_team_writes_its_own_services_and_an_undeclared_team_only_unclaimed_ones(owned: Any) -> None:
    assert post(owned, gauge("fx-spot", 1.0), FX).json() == {}
    assert post(owned, gauge("rates", 1.0), FX).json() == {}
    assert post(owned, gauge("ops-console", 1.0), OPS).json() == {}  # no team claims it
    r = post(owned, gauge("ops-console", 1.0), AUTH)  # a team with declared services stays inside them
    assert "not owned by team markets-batch" in r.json()["partialSuccess"]["errorMessage"]
    r = post(owned, {"resourceMetrics": [{"resource": {}, "scopeMetrics": gauge("x", 1)["resourceMetrics"][0]["scopeMetrics"]}]}, FX)
    assert "service '' is not owned by team fx-feeds" in r.json()["partialSuccess"]["errorMessage"]


def test_an_sdk_point_cannot_pose_as_a_cloudwatch_metric(owned: Any, zone: Zone) -> None:
    r = post(owned, cpu(0.0, {**AWS_RES, "service.name": "rates"}), FX)
    ps = r.json()["partialSuccess"]
    assert ps["rejectedDataPoints"] == "1" and "reserved for cloudwatch and metric-stream" in ps["errorMessage"]
    assert raw_keys(zone) == []


def test_forged_points_never_replace_the_owners_or_cloudwatchs_in_the_warehouse(tmp_path: Path) -> None:
    """Even raw SDK batches that never went through the receiver's checks (written straight to the raw
    zone, later than the genuine ones) cannot replace a CloudWatch point or another team's point."""
    lake = Lake(Zone(str(tmp_path / "raw")), Zone(str(tmp_path / "processed")), Zone(str(tmp_path / "archive")))
    hour = dt.datetime.fromtimestamp(T0 / 1e9, dt.timezone.utc).replace(minute=0, second=0)
    genuine_sdk = gauge("pricing-batch", 1.0)
    genuine_sdk["resourceMetrics"][0]["resource"]["attributes"].append({"key": "cms.ingest.team", "value": {"stringValue": TEAM}})
    forged_sdk = gauge("pricing-batch", 99.0)
    forged_sdk["resourceMetrics"][0]["resource"]["attributes"].append({"key": "cms.ingest.team", "value": {"stringValue": "fx-feeds"}})
    lake.raw.put(raw_key("cloudwatch", hour, "20261120T230000Z-cw-1"), gzip_bytes(orjson.dumps(cpu(42.0))))
    lake.raw.put(raw_key("sdk", hour, "20261120T220500Z-ingest-a-1"), gzip_bytes(orjson.dumps(genuine_sdk)))
    lake.raw.put(
        raw_key("sdk", hour, "20261120T235900Z-ingest-b-1"),  # ingested later: would win "latest wins"
        gzip_bytes(orjson.dumps(forged_sdk) + b"\n" + orjson.dumps(cpu(0.0))),
    )
    rep = process_hour(lake, hour.date(), hour.hour)
    assert rep.rejected_points == 1  # the CloudWatch copy from the SDK path
    con = duckdb_load.connect(tmp_path / "w.duckdb")
    load = duckdb_load.load_hour(con, lake.processed, hour.date(), hour.hour)
    assert load.replaced == 0
    rows = con.execute(
        "SELECT metric_name, value, json_extract_string(resource_attributes, '$.\"cms.ingest.team\"') FROM raw.metric_points ORDER BY 1, 2"
    ).fetchall()
    assert rows == [(CPU, 42.0, None), ("cms.feed.latency", 1.0, TEAM), ("cms.feed.latency", 99.0, "fx-feeds")]


def test_the_point_id_of_an_sdk_point_includes_its_team() -> None:
    res = {"service.name": "rates"}
    a = point_id({**res, "cms.ingest.team": "a"}, "cms.app.x", {}, T0, source="sdk")
    b = point_id({**res, "cms.ingest.team": "b"}, "cms.app.x", {}, T0, source="sdk")
    cw = point_id({**res, "cms.ingest.team": "a"}, "cms.app.x", {}, T0, source="cloudwatch")
    assert len({a, b, cw}) == 3
    assert point_id(res, "cms.app.x", {}, T0, source="cloudwatch") == point_id(res, "cms.app.x", {}, T0, source="metric-stream")


def test_services_are_declared_in_the_keys_file_and_the_short_form_still_works(tmp_path: Path) -> None:
    f = tmp_path / "keys.yaml"
    f.write_text(
        "markets-batch:\n  keys: [mkt-key-123456]\n  services: [pricing-batch, 'batch-*']\n"
        "fx-feeds: [old-key-123456, new-key-123456]\nrisk: risk-key-123456\n"
    )
    keys, services = load_access("ops:ops-key-123456", str(f))
    assert keys["mkt-key-123456"] == "markets-batch" and keys["new-key-123456"] == "fx-feeds" and keys["ops-key-123456"] == "ops"
    assert services == {"markets-batch": ("pricing-batch", "batch-*")}
    own = Ownership(services)
    assert own.owns("markets-batch", "batch-fx") and not own.owns("markets-batch", "fx-spot")
    assert own.owns("fx-feeds", "fx-spot") and not own.owns("fx-feeds", "batch-fx")


@pytest.mark.parametrize(
    "text, message",
    [
        ("t:\n  keys: [k-0123456789]\n  services: []\n", "list of service.name globs"),
        ("t:\n  keys: [k-0123456789]\n  owner: x\n", "unknown field"),
        ("t:\n  services: [a]\n", "has no keys"),
    ],
)
def test_a_bad_services_entry_is_explained(text: str, message: str) -> None:
    with pytest.raises(KeyConfigError, match=message):
        parse_access_yaml(text)
