"""CloudWatch Metric Streams files (json and opentelemetry1.0, gzip'd or not) land as the polled data do."""

from __future__ import annotations

import datetime as dt
import gzip
import os
from pathlib import Path

import orjson
import pytest
from collectors_helpers import DAY, HOUR, raw_batches, read_points

from cms_dagster import lake
from cms_dagster.collectors import streams
from cms_dagster.collectors.collector import CollectorConfig, collect
from cms_harness.cloudwatch_standin import FakeCloudWatch, fleet, json_stream_file, otel_stream_file

DELIVERED = HOUR + dt.timedelta(hours=1, minutes=3)  # Firehose delivers the last minutes after the hour


def _write(root: Path, name: str, data: bytes, when: dt.datetime = DELIVERED) -> None:
    p = root / f"{HOUR:%Y/%m/%d}/15" / name
    p.parent.mkdir(parents=True, exist_ok=True)
    p.write_bytes(data)
    os.utime(p, (when.timestamp(), when.timestamp()))


def _values(table) -> dict[str, tuple]:
    return {
        r["point_id"]: (r["ts"], r["start_ts"], r["count"], r["sum"], r["min"], r["max"], r["p99"], r["entity_id"], r["account_id"], r["region"])
        for r in table.to_pylist()
    }


@pytest.mark.slow
def test_streams_in_both_formats_decode_to_the_same_points_as_polling(raw, tmp_path):
    fake = FakeCloudWatch(fleet(60))
    polled = collect(CollectorConfig(facts=False), raw, HOUR, HOUR + dt.timedelta(hours=1), session=fake.session())
    assert polled.ok
    polled_points = _values(read_points(raw, polled.raw_keys))
    records = fake.stream_records(HOUR, HOUR + dt.timedelta(hours=1), "us-east-1")
    files = {
        "json": json_stream_file(records),
        "json.gz": lake.gzip_bytes(json_stream_file(records)),
        "otel": otel_stream_file(records),
        "otel.gz": lake.gzip_bytes(otel_stream_file(records)),
    }
    for name, data in files.items():
        url = str(tmp_path / "streams" / name)
        _write(Path(url), f"cms-stream-1-{DAY}-15-03-00-{name}", data)
        got = streams.land_new(url, raw)
        assert got.files == 1 and not got.quarantined
        assert got.formats == {"json" if name.startswith("json") else "opentelemetry1.0": 1}
        table = read_points(raw, got.raw_keys)
        assert _values(table) == polled_points, name
        res = orjson.loads(table.column("resource_attributes")[0].as_py())
        assert res["aws.exporter.arn"] == "arn:aws:cloudwatch:us-east-1:123456789012:metric-stream/cms-stream"
        assert set(table.column("source").to_pylist()) == {"metric-stream"}
    assert any(v[6] is not None for v in polled_points.values())  # p99 travelled both ways


def test_files_land_under_their_delivery_hour_once(raw, tmp_path):
    fake = FakeCloudWatch(fleet(8))
    url = str(tmp_path / "streams")
    recs = fake.stream_records(HOUR, HOUR + dt.timedelta(minutes=10), "eu-west-1")
    _write(Path(url), "a", otel_stream_file(recs[:20]), DELIVERED)
    _write(Path(url), "b", json_stream_file(recs[20:]), DELIVERED + dt.timedelta(minutes=1))
    first = streams.land_new(url, raw)
    assert first.files == 2 and first.points == len(recs)
    for k in first.raw_keys:
        info = lake.parse_raw_key(k)
        assert (info["source"], str(info["dt"]), info["hour"]) == ("metric-stream", DAY, 15)
        assert info["batch"].startswith((f"{HOUR:%Y%m%d}T150300Z-ms-", f"{HOUR:%Y%m%d}T150400Z-ms-"))
    assert streams.land_new(url, raw).files == 0  # nothing new: nothing landed again
    _write(Path(url), "c", json_stream_file(recs[:5]), DELIVERED + dt.timedelta(minutes=6))
    third = streams.land_new(url, raw)
    assert third.files == 1 and third.points == 5
    assert len(raw_batches(raw, "metric-stream")) == 3
    # landing a file again (e.g. after a lost checkpoint) overwrites the same key
    raw.delete(streams.checkpoint_key(url))
    again = streams.land_new(url, raw)
    assert again.files == 3 and len(raw_batches(raw, "metric-stream")) == 3


def test_an_undecodable_file_is_quarantined_with_its_reason_and_the_rest_lands(raw, tmp_path):
    fake = FakeCloudWatch(fleet(4))
    url = str(tmp_path / "streams")
    _write(Path(url), "good", gzip.compress(json_stream_file(fake.stream_records(HOUR, HOUR + dt.timedelta(minutes=5), "us-east-1"))))
    _write(Path(url), "bad", b"\x1f\x8b\x08not really gzip", DELIVERED + dt.timedelta(seconds=5))
    got = streams.land_new(url, raw)
    assert got.files == 1 and len(got.quarantined) == 1
    reason = orjson.loads(raw.get(got.quarantined[0].replace(".undecodable", ".reason.json")))
    assert reason["source_key"] == f"{HOUR:%Y/%m/%d}/15/bad" and "gzip" in reason["reason"]
    assert streams.pending(url, raw) == []  # not retried forever


def test_concatenated_json_records_and_long_protobuf_records_decode():
    fake = FakeCloudWatch(fleet(30))
    recs = fake.stream_records(HOUR, HOUR + dt.timedelta(minutes=3), "us-east-1")
    fmt, reqs = streams.decode_stream_file(b"".join(orjson.dumps(r) for r in recs))  # no newlines
    assert fmt == "json" and sum(len(m["summary"]["dataPoints"]) for r in reqs for m in r["resourceMetrics"][0]["scopeMetrics"][0]["metrics"]) == len(recs)
    data = otel_stream_file(recs, records_per_message=len(recs))  # one message of many KB: multi-byte varint
    assert len(data) > 16384
    fmt, reqs = streams.decode_stream_file(data)
    assert fmt == "opentelemetry1.0" and len(reqs) == 1


@pytest.mark.slow
def test_metric_streams_files_are_read_from_s3(moto_env, tmp_path):
    import boto3

    s3 = boto3.client("s3", endpoint_url=moto_env["url"], region_name="us-east-1")
    s3.create_bucket(Bucket="cms-metric-streams")
    fake = FakeCloudWatch(fleet(6))
    recs = fake.stream_records(HOUR, HOUR + dt.timedelta(minutes=4), "us-east-1")
    s3.put_object(Bucket="cms-metric-streams", Key=f"cw/{HOUR:%Y/%m/%d}/15/cms-stream-1-x", Body=lake.gzip_bytes(otel_stream_file(recs)))
    url = "s3://cms-metric-streams/cw"
    objs = streams.list_stream_objects(url)
    assert [o.key for o in objs] == [f"{HOUR:%Y/%m/%d}/15/cms-stream-1-x"]
    got = streams.land_new(url, moto_env["raw"])
    assert got.files == 1 and got.points == len(recs)
