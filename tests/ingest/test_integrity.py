"""Integrity of what the receiver and the processing step keep: quarantine only grows, one request's bad
content never fails another's, and a 503 means nothing of that request was stored."""

from __future__ import annotations

import asyncio
import datetime as dt
import gzip
import threading
from typing import Any

import orjson
from ingest_helpers import AUTH, batch_request, raw_keys

from cms_dagster.ingest.stats import Stats
from cms_dagster.ingest.validate import Rejection
from cms_dagster.ingest.writer import Committer, LakeWriteError, quarantine_record
from cms_dagster.lake import Lake, Zone, gzip_bytes, raw_key
from cms_dagster.lake.processing import process_hour

URL = "/v1/metrics"
FX_AUTH = {"authorization": "Bearer k-fx-feeds-0123456789"}


def post(client: Any, body: bytes | dict, auth: dict[str, str] = AUTH) -> Any:
    data = body if isinstance(body, bytes) else orjson.dumps(body)
    return client.post(URL, content=data, headers={"content-type": "application/json", **auth})


def quarantine_files(zone: Zone) -> dict[str, bytes]:
    return {k: zone.get(k) for k in zone.list("quarantine/")}


def deep_attribute_body(levels: int) -> bytes:
    """A request whose one (rejected) point carries an attribute nested ``levels`` AnyValue levels deep
    (four JSON levels each), written by hand: no encoder writes JSON that deep."""
    req = batch_request(1, run="deep", bad=1)
    text = orjson.dumps(req).decode()
    deep = '{"kvlistValue":{"values":[{"key":"k","value":' * levels + '{"stringValue":"x"}' + "}]}}" * levels
    marker = '"cms.asset_class","value":{"stringValue":"crypto"}}'
    assert marker in text
    return text.replace(marker, marker + ',{"key":"deep","value":' + deep + "}", 1).encode()


# -- quarantine only grows ---------------------------------------------------------------------------


def test_processing_keeps_the_receivers_quarantine_and_never_replaces_its_own(client: Any, zone: Zone, tmp_path: Any) -> None:
    assert post(client, batch_request(2, run="q", bad=2)).status_code == 200
    received = quarantine_files(zone)
    assert len(received) == 2 and all(".received." in k for k in received)
    (key,) = raw_keys(zone)
    day, hour = dt.date.fromisoformat(key.split("dt=")[1][:10]), int(key.split("hour=")[1][:2])
    lake = Lake(zone, Zone(str(tmp_path / "processed")), Zone(str(tmp_path / "archive")))
    rep = process_hour(lake, day, hour)  # processing itself rejects nothing here
    assert rep.points == 2 and rep.rejected_points == 0
    assert quarantine_files(zone) == received  # the receiver's files are untouched

    # a batch the processing step does reject: its quarantine is kept across re-runs, and a re-run that
    # rejects something else adds a file instead of replacing the first
    when = dt.datetime(day.year, day.month, day.day, hour, tzinfo=dt.timezone.utc)
    bad_key = raw_key("sdk", when, "20261120T220000Z-ingest-test-1")
    zone.put(bad_key, gzip_bytes(b'{"resourceMetrics": [\n'))
    process_hour(lake, day, hour)
    first = quarantine_files(zone)
    assert set(received) < set(first) and len(first) == len(received) + 2
    process_hour(lake, day, hour)
    assert quarantine_files(zone) == first  # same rejections: nothing rewritten, nothing removed
    Zone(zone.url).delete(bad_key)
    zone.put(bad_key, gzip_bytes(b'{"resourceMetrics": 5}\n'))
    process_hour(lake, day, hour)
    after = quarantine_files(zone)
    assert {k: after[k] for k in first} == first and len(after) == len(first) + 2


def test_a_quarantine_file_is_never_overwritten(zone: Zone) -> None:
    assert zone.put_new("quarantine/x.rejected.jsonl", b"first\n") is True
    assert zone.put_new("quarantine/x.rejected.jsonl", b"second\n") is False
    assert zone.get("quarantine/x.rejected.jsonl") == b"first\n"


# -- one request's content never affects another ------------------------------------------------------


def test_a_deeply_nested_request_gets_400_and_other_teams_are_not_affected(client: Any, zone: Zone) -> None:
    deep = deep_attribute_body(80)  # 320+ JSON levels: orjson reads it but cannot write it back
    answers: dict[str, int] = {}

    def send(name: str, body: bytes, auth: dict[str, str]) -> None:
        answers[name] = post(client, body, auth).status_code

    threads = [threading.Thread(target=send, args=("deep", deep, AUTH))]
    threads += [threading.Thread(target=send, args=(f"fx{i}", orjson.dumps(batch_request(2, run=f"fx{i}")), FX_AUTH)) for i in range(4)]
    for t in threads:
        t.start()
    for t in threads:
        t.join(30)
    assert answers.pop("deep") == 400
    assert set(answers.values()) == {200}
    r = post(client, deep)
    assert r.status_code == 400 and "nested deeper than" in r.json()["message"]
    stats = client.get("/stats", headers=AUTH).json()
    assert stats["flush_errors"] == 0 and client.get("/health").status_code == 200


def test_a_rejected_point_that_cannot_be_encoded_is_quarantined_with_a_note_and_the_flush_succeeds() -> None:
    rec = orjson.loads(quarantine_record(1, "bad", {"team": "t", "point": {1, 2}}))
    assert rec["reason"] == "bad" and rec["payload"]["team"] == "t" and "cannot be encoded" in rec["payload"]["payload_not_stored"]


class _SelectiveFailZone(Zone):
    """A local zone whose puts fail for keys containing ``fail_on``."""

    def __init__(self, url: str, fail_on: str) -> None:
        super().__init__(url)
        object.__setattr__(self, "fail_on", fail_on)

    def _check(self, key: str) -> None:
        if self.fail_on in key:  # type: ignore[attr-defined]
            raise OSError(f"simulated: {key} not writable")

    def put(self, key: str, data: bytes) -> None:
        self._check(key)
        super().put(key, data)

    def put_new(self, key: str, data: bytes) -> bool:
        self._check(key)
        return super().put_new(key, data)


def test_a_failing_quarantine_write_never_fails_the_flush(make_client: Any, raw_dir: str) -> None:
    client = make_client(zone=_SelectiveFailZone(raw_dir, "quarantine/"))
    r = post(client, batch_request(2, run="qf", bad=1))
    assert r.status_code == 200 and r.json()["partialSuccess"]["rejectedDataPoints"] == "1"
    assert len(raw_keys(Zone(raw_dir))) == 1
    stats = client.get("/stats", headers=AUTH).json()
    assert stats["quarantine_write_errors"] == 1 and stats["flush_errors"] == 0


def _run_committer(zone: Zone, submits: list[tuple[dt.datetime, bytes | None, list[Rejection]]]) -> list[Any]:
    async def main() -> list[Any]:
        c = Committer(zone, Stats("test-0000"), flush_s=0.05)
        await c.start()
        futs = [c.submit(received, line, 1, rej, "markets-batch") for received, line, rej in submits]
        out = await asyncio.gather(*futs, return_exceptions=True)
        await c.close()
        return out

    return asyncio.run(main())


def test_a_503_means_nothing_of_that_request_was_stored(tmp_path: Any) -> None:
    zone = _SelectiveFailZone(str(tmp_path / "raw"), "hour=05/")
    line = orjson.dumps(batch_request(1, run="h"))
    at4 = dt.datetime(2026, 11, 20, 4, 59, 59, tzinfo=dt.timezone.utc)
    at5 = dt.datetime(2026, 11, 20, 5, 0, 1, tzinfo=dt.timezone.utc)
    ok, failed = _run_committer(zone, [(at4, line, []), (at5, line, [])])  # one flush, two hours
    assert ok == 1  # stored, so acknowledged
    assert isinstance(failed, LakeWriteError)  # not stored, so 503
    keys = raw_keys(Zone(zone.url))
    assert len(keys) == 1 and "hour=04/" in keys[0]


def test_a_request_whose_rejected_point_cannot_be_encoded_does_not_fail_the_others_in_its_flush(tmp_path: Any) -> None:
    zone = Zone(str(tmp_path / "raw"))
    now = dt.datetime.now(dt.timezone.utc)
    bad = [Rejection("unknown", 1, {"metric": "m", "point": {"odd": {1, 2}}})]
    good = orjson.dumps(batch_request(1, run="good"))
    results = _run_committer(zone, [(now, None, bad), (now, good, [])])
    assert results == [1, 1]
    (key,) = raw_keys(zone)
    assert b"good-0" in gzip.decompress(zone.get(key))
    (qkey,) = [k for k in zone.list("quarantine/") if k.endswith(".rejected.jsonl")]
    assert b"cannot be encoded" in zone.get(qkey)


# -- what gets 200 reaches the warehouse as sent -----------------------------------------------------


def test_attribute_values_processing_would_refuse_are_refused_at_the_door(client: Any, zone: Zone) -> None:
    from ingest_helpers import flatten_zone

    req = batch_request(3, run="typed")
    points = req["resourceMetrics"][0]["scopeMetrics"][0]["metrics"][0]["sum"]["dataPoints"]
    points[0]["attributes"].append({"key": "ids", "value": {"arrayValue": {"values": [{"intValue": "99999999999999999999"}]}}})
    points[1]["attributes"].append({"key": "flag", "value": {"boolValue": "false"}})
    r = post(client, req)
    assert r.status_code == 200
    ps = r.json()["partialSuccess"]
    assert ps["rejectedDataPoints"] == "2"
    assert "64-bit range" in ps["errorMessage"] and "boolValue must be true or false" in ps["errorMessage"]
    rows = flatten_zone(zone)  # raises if processing refuses anything the receiver accepted
    assert [row["run_id"] for row in rows] == ["typed-2"]


def test_a_boolean_sent_as_a_string_is_never_stored_as_true() -> None:
    import pytest

    from cms_dagster.otel.otlp import from_attributes

    with pytest.raises(ValueError, match="boolValue"):
        from_attributes([{"key": "flag", "value": {"boolValue": "false"}}])
    assert from_attributes([{"key": "flag", "value": {"boolValue": False}}]) == {"flag": False}


# -- what the receiver shows, and to whom ------------------------------------------------------------


def test_health_shows_no_lake_path_or_error_and_stats_need_a_key(client: Any, raw_dir: str) -> None:
    anonymous = client.get("/health")
    assert anonymous.status_code == 200 and anonymous.json() == {"status": "ok"}
    assert raw_dir not in anonymous.text
    assert client.get("/stats").status_code == 401
    assert client.get("/stats", headers={"authorization": "Bearer not-a-key-0000"}).status_code == 401
    authed = client.get("/health", headers=AUTH).json()
    assert authed["raw_zone"] == raw_dir and "last_flush_error" in authed
    assert "accepted_points" in client.get("/stats", headers=AUTH).json()


def test_a_trailing_slash_is_accepted_without_a_redirect(client: Any, zone: Zone) -> None:
    r = client.post(URL + "/", content=orjson.dumps(batch_request(1)), headers={"content-type": "application/json", **AUTH},
                    follow_redirects=False)
    assert r.status_code == 200 and len(raw_keys(zone)) == 1


def test_the_access_log_never_shows_a_query_string(client: Any, caplog: Any) -> None:
    import logging

    from cms_dagster.ingest.app import install_access_log_filter

    install_access_log_filter()
    with caplog.at_level(logging.INFO, logger="uvicorn.access"):
        logging.getLogger("uvicorn.access").info(
            '%s - "%s %s HTTP/%s" %d', "127.0.0.1:5000", "POST", "/v1/metrics?api_key=k-secret-0123456789", "1.1", 401
        )
    assert "k-secret" not in caplog.text and '"POST /v1/metrics HTTP/1.1" 401' in caplog.text


# -- the lake holds no links --------------------------------------------------------------------------


def test_a_symlink_in_a_local_lake_is_never_followed(tmp_path: Any) -> None:
    import os

    import pytest

    from cms_dagster.lake import LakeSymlinkError

    outside = tmp_path / "outside.jsonl.gz"
    outside.write_bytes(gzip_bytes(b"not lake data: a file the link points at\n"))
    lake = Lake(Zone(str(tmp_path / "raw")), Zone(str(tmp_path / "processed")), Zone(str(tmp_path / "archive")))
    when = dt.datetime(2026, 11, 20, 22, tzinfo=dt.timezone.utc)
    real = raw_key("sdk", when, "20261120T220000Z-ingest-a-1")
    lake.raw.put(real, gzip_bytes(orjson.dumps(batch_request(1, run="real"))))
    linked = raw_key("sdk", when, "20261120T220100Z-ingest-a-2")
    os.symlink(outside, lake.raw.path(real).parent / linked.rsplit("/", 1)[1])
    assert lake.raw_keys_for_hour(when.date(), 22) == [real]  # the link is not listed
    with pytest.raises(LakeSymlinkError, match="symbolic link"):
        lake.raw.get(linked)
    with pytest.raises(LakeSymlinkError):
        lake.raw.put(linked, b"x")  # nor written through
    assert outside.read_bytes().startswith(b"\x1f\x8b")
    rep = process_hour(lake, when.date(), 22)
    assert rep.raw_files == 1 and rep.points == 1 and list(lake.raw.list("quarantine/")) == []
    linked_dir = tmp_path / "raw" / "otel" / "metrics" / "source=cloudwatch"
    os.symlink(tmp_path / "raw" / "otel" / "metrics" / "source=sdk", linked_dir)  # a linked directory
    assert [k for k in lake.raw.list("otel/") if "cloudwatch" in k] == []
    with pytest.raises(ValueError, match="leaves the zone"):
        lake.raw.get("../outside.jsonl.gz")
