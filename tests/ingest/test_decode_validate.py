"""The receiver's pure functions: body decoding (JSON, protobuf, gzip, limits) and point validation."""

from __future__ import annotations

import gzip
import json

import pytest
from google.protobuf import json_format
from ingest_helpers import batch_request
from opentelemetry.proto.collector.metrics.v1.metrics_service_pb2 import ExportMetricsServiceRequest

from cms_dagster.ingest.auth import ApiKeys, KeyConfigError, load_keys, parse_keys_env, parse_keys_yaml
from cms_dagster.ingest.decode import BodyError, decode_body, gunzip_limited, media_type
from cms_dagster.ingest.validate import TEAM_ATTRIBUTE, check_request
from cms_dagster.otel import otlp


def test_protobuf_requests_become_otlp_json_with_int64_as_strings_and_enums_as_ints() -> None:
    req = batch_request(2)
    msg = json_format.Parse(json.dumps(req), ExportMetricsServiceRequest())
    msg.resource_metrics[0].scope_metrics[0].metrics[0].sum.data_points[0].exemplars.add(
        time_unix_nano=5, as_double=1.0, trace_id=bytes(range(1, 17)), span_id=bytes(range(1, 9))
    )
    pb = msg.SerializeToString()
    got, media = decode_body(pb, "application/x-protobuf", None, 1 << 20)
    assert media == "application/x-protobuf"
    m = got["resourceMetrics"][0]["scopeMetrics"][0]["metrics"][0]
    dp = m["sum"]["dataPoints"][0]
    assert dp["timeUnixNano"] == req["resourceMetrics"][0]["scopeMetrics"][0]["metrics"][0]["sum"]["dataPoints"][0]["timeUnixNano"]
    assert isinstance(dp["timeUnixNano"], str) and dp["asInt"] == "1"
    assert m["sum"]["aggregationTemporality"] == 1 and m["sum"]["isMonotonic"] is True
    assert dp["exemplars"][0]["traceId"] == "0102030405060708090a0b0c0d0e0f10"  # hex, as OTLP/JSON wants


def test_gzip_bodies_are_decoded_and_bombs_stop_at_the_limit() -> None:
    body = json.dumps(batch_request(5)).encode()
    got, _ = decode_body(gzip.compress(body), "application/json; charset=utf-8", "gzip", 1 << 20)
    assert len(got["resourceMetrics"][0]["scopeMetrics"][0]["metrics"][0]["sum"]["dataPoints"]) == 5
    bomb = gzip.compress(b"\x00" * (50 << 20))  # 50 MiB of zeros in ~50 KiB
    with pytest.raises(BodyError) as e:
        gunzip_limited(bomb, 1 << 20)
    assert e.value.status == 413
    assert gunzip_limited(gzip.compress(b"ab") + gzip.compress(b"cd"), 10) == b"abcd"  # several members


@pytest.mark.parametrize(
    "body, ctype, enc, status",
    [
        (b"{", "application/json", None, 400),
        (b"[1, 2]", "application/json", None, 400),
        (b"\xff\xfe garbage", "application/x-protobuf", None, 400),
        (b"not gzip", "application/json", "gzip", 400),
        (gzip.compress(b"{}")[:-6], "application/json", "gzip", 400),
        (b"{}", "text/plain", None, 415),
        (b"{}", None, None, 415),
        (b"{}", "application/json", "br", 415),
        (b"x" * 2000, "application/json", None, 413),
    ],
)
def test_malformed_or_unsupported_bodies_raise_with_the_http_status(body: bytes, ctype: str, enc: str, status: int) -> None:
    with pytest.raises(BodyError) as e:
        decode_body(body, ctype, enc, 1000)
    assert e.value.status == status and e.value.message


def test_media_type_accepts_both_protobuf_names() -> None:
    assert media_type("application/protobuf") == media_type("application/x-protobuf")


def test_valid_points_are_kept_rejected_ones_explained_and_the_team_stamped() -> None:
    checked = check_request(batch_request(3, bad=2), "markets-batch")
    assert (checked.accepted, checked.rejected) == (3, 2)
    assert "crypto" in checked.rejections[0].reason and "2 x" in checked.error_message()
    rm = checked.request["resourceMetrics"][0]
    assert {"key": TEAM_ATTRIBUTE, "value": {"stringValue": "markets-batch"}} in rm["resource"]["attributes"]
    assert len(rm["scopeMetrics"][0]["metrics"][0]["sum"]["dataPoints"]) == 3


def test_a_client_cannot_spoof_the_team_attribute() -> None:
    req = otlp.request({"service.name": "s", "cms.ingest.team": "someone-else"}, [otlp.gauge("cms.app.x", "1", [otlp.number_point({}, 5, 1.0)])])
    res = check_request(req, "fx-feeds").request["resourceMetrics"][0]["resource"]["attributes"]
    assert [a["value"]["stringValue"] for a in res if a["key"] == TEAM_ATTRIBUTE] == ["fx-feeds"]


def test_numbers_sent_as_json_numbers_are_normalised_to_otlp_json_strings() -> None:
    req = {
        "resourceMetrics": [{"resource": {"attributes": []}, "scopeMetrics": [{"metrics": [
            {"name": "cms.app.n", "unit": "1", "sum": {"aggregationTemporality": 1, "isMonotonic": True, "dataPoints": [
                {"attributes": [{"key": "lot", "value": {"intValue": 100}}], "timeUnixNano": 1795212060000000000,
                 "startTimeUnixNano": 1795212000000000000, "asInt": 7}]}},
            {"name": "cms.app.h", "unit": "ms", "histogram": {"dataPoints": [
                {"timeUnixNano": "5", "count": 3, "sum": 6.0, "bucketCounts": [1, 2], "explicitBounds": [1.0]}]}},
        ]}]}]
    }
    checked = check_request(req)
    n, h = checked.request["resourceMetrics"][0]["scopeMetrics"][0]["metrics"]
    dp = n["sum"]["dataPoints"][0]
    assert (dp["timeUnixNano"], dp["startTimeUnixNano"], dp["asInt"]) == ("1795212060000000000", "1795212000000000000", "7")
    assert dp["attributes"][0]["value"] == {"intValue": "100"}
    assert h["histogram"]["dataPoints"][0]["count"] == "3" and h["histogram"]["dataPoints"][0]["bucketCounts"] == ["1", "2"]


@pytest.mark.parametrize(
    "metric, reason",
    [
        ({"name": "cms.app.x", "gauge": {"dataPoints": [{"asDouble": 1.0}]}}, "no timeUnixNano"),
        ({"name": "cms.app.x", "gauge": {"dataPoints": [{"timeUnixNano": "5"}]}}, "neither asDouble nor asInt"),
        ({"name": "cms.app.x", "gauge": {"dataPoints": [{"timeUnixNano": "5", "asDouble": "NaN"}]}}, "not finite"),
        ({"name": "cms.app.x", "gauge": {"dataPoints": [{"timeUnixNano": "5", "asDouble": 1, "attributes": "a=b"}]}}, "bad attributes"),
        ({"name": "cms.batch.run.started", "gauge": {"dataPoints": [{"timeUnixNano": "5", "asInt": "1"}]}}, "must be a sum"),
        ({"name": "cms.feed.up", "gauge": {"dataPoints": [{"timeUnixNano": "5", "asInt": "1"}]}}, "cms.feed"),
        ({"name": "cms.unknown", "gauge": {"dataPoints": [{"timeUnixNano": "5", "asInt": "1"}]}}, "unknown cms metric"),
        ({"name": "cms.app.x", "exponentialHistogram": {"dataPoints": [{"timeUnixNano": "5"}]}}, "no supported data"),
        ({"name": "cms.app.x", "gauge": {"dataPoints": ["x"]}}, "not an object"),
    ],
)
def test_points_breaking_the_conventions_are_rejected_with_a_reason(metric: dict, reason: str) -> None:
    req = {"resourceMetrics": [{"resource": {}, "scopeMetrics": [{"metrics": [metric]}]}]}
    checked = check_request(req, "t")
    assert checked.request is None and checked.accepted == 0
    assert reason in checked.rejections[0].reason


@pytest.mark.parametrize(
    "req",
    [
        {"resourceMetrics": "x"},
        {"resourceMetrics": [5]},
        {"resourceMetrics": [{"resource": {"attributes": [{"value": {}}]}}]},
        {"resourceMetrics": [{"scopeMetrics": [{"metrics": [{"name": 5, "gauge": {}}]}]}]},
        {"resourceMetrics": [{"scopeMetrics": [{"metrics": [{"name": "a", "gauge": {"dataPoints": {}}}]}]}]},
    ],
)
def test_a_wrong_structure_above_the_points_is_a_400(req: dict) -> None:
    with pytest.raises(BodyError) as e:
        check_request(req, "t")
    assert e.value.status == 400


def test_an_empty_request_is_valid_and_stores_nothing() -> None:
    assert check_request({}).request is None and check_request({"resourceMetrics": []}).rejections == []


def test_api_keys_from_env_and_yaml_with_rotation(tmp_path) -> None:  # type: ignore[no-untyped-def]
    f = tmp_path / "keys.yaml"
    f.write_text("fx-feeds: [old-key-123456, new-key-123456]\nrisk: risk-key-123456\n")
    keys = load_keys("markets:mkt-key-123456", str(f))
    assert keys == {"mkt-key-123456": "markets", "old-key-123456": "fx-feeds", "new-key-123456": "fx-feeds", "risk-key-123456": "risk"}
    api = ApiKeys(keys)
    assert api.team_for("Bearer new-key-123456") == "fx-feeds" and api.team_for("bearer mkt-key-123456") == "markets"
    assert api.team_for("Bearer nope") is None and api.team_for("Basic mkt-key-123456") is None and api.team_for(None) is None


@pytest.mark.parametrize(
    "text, message",
    [("markets", "not 'team:key'"), ("a:short", "shorter than"), ("a:samekey123,b:samekey123", "two teams")],
)
def test_bad_key_configuration_is_explained(text: str, message: str) -> None:
    with pytest.raises(KeyConfigError, match=message):
        parse_keys_env(text)


def test_keys_file_must_be_a_mapping() -> None:
    with pytest.raises(KeyConfigError, match="mapping"):
        parse_keys_yaml("- a\n- b\n")


RICH = {"resourceMetrics": [{"resource": {"attributes": [
    {"key": "a", "value": {"arrayValue": {"values": [{"intValue": "5"}, {"doubleValue": 1.5}, {"boolValue": True}, {"bytesValue": "AQI="},
                                                     {"kvlistValue": {"values": [{"key": "x", "value": {"stringValue": "y"}}]}}, {}]}}},
    {"key": "e", "value": {"arrayValue": {}}}], "droppedAttributesCount": 2}, "schemaUrl": "s",
    "scopeMetrics": [{"scope": {"name": "n", "version": "v", "attributes": [{"key": "k", "value": {"stringValue": ""}}]}, "schemaUrl": "u", "metrics": [
        {"name": "h", "unit": "ms", "description": "d", "histogram": {"aggregationTemporality": 2, "dataPoints": [
            {"timeUnixNano": "5", "count": "3", "sum": 0.0, "bucketCounts": ["1", "2"], "explicitBounds": [1.0], "min": 0.0, "max": "Infinity",
             "flags": 1, "exemplars": [{"timeUnixNano": "5", "asInt": "3", "traceId": "AQIDBAUGBwgJCgsMDQ4PEA==", "spanId": "AQIDBAUGBwg=",
                                        "filteredAttributes": [{"key": "q", "value": {"intValue": "-1"}}]}]}]}},
        {"name": "s", "summary": {"dataPoints": [{"timeUnixNano": "5", "count": "0", "sum": 2.5,
                                                  "quantileValues": [{"quantile": 0.0, "value": 1.0}, {"quantile": 1.0, "value": 0.0}]}]}},
        {"name": "g", "gauge": {}},
        {"name": "x", "sum": {"isMonotonic": False, "dataPoints": [{"asDouble": "NaN"}, {"asInt": "0"}, {"asDouble": 0}]}},
        {"name": "none"}]}]}, {}]}


def _reference(msg: ExportMetricsServiceRequest) -> dict:
    """json_format's generic conversion, with trace/span ids as OTLP/JSON's hex."""
    import base64

    d = json_format.MessageToDict(msg, use_integers_for_enums=True)
    for rm in d.get("resourceMetrics", []):
        rm.get("resource", {}).pop("entityRefs", None)
        for sm in rm.get("scopeMetrics", []):
            for m in sm.get("metrics", []):
                m.pop("metadata", None)
                m.pop("exponentialHistogram", None)
                for b in m.values():
                    for p in (b.get("dataPoints", []) if isinstance(b, dict) else []):
                        for e in p.get("exemplars", []):
                            for f in ("traceId", "spanId"):
                                if f in e:
                                    e[f] = base64.b64decode(e[f]).hex()
    return d


def test_the_fast_protobuf_conversion_matches_json_format() -> None:
    import random

    from cms_dagster.ingest.pbjson import request_to_dict

    msgs = [json_format.ParseDict(RICH, ExportMetricsServiceRequest()), json_format.ParseDict(batch_request(20, bad=3), ExportMetricsServiceRequest())]
    rng = random.Random(7)
    for _ in range(3000):  # random bytes that happen to parse: unknown fields, odd oneofs, empty messages
        m = ExportMetricsServiceRequest()
        try:
            m.ParseFromString(bytes(rng.getrandbits(8) for _ in range(rng.randint(1, 60))))
        except Exception:
            continue
        msgs.append(m)
    for m in msgs:
        fast = request_to_dict(m)
        for rm in fast.get("resourceMetrics", []):
            for sm in rm.get("scopeMetrics", []):
                for met in sm.get("metrics", []):
                    met.pop("exponentialHistogram", None)
        assert fast == _reference(m)
