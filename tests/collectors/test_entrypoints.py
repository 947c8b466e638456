"""The collector's ways in: the Dagster assets, schedule and sensor, `cms collect`, the Lambda handler."""

from __future__ import annotations

import argparse
import datetime as dt
import json
import subprocess
import sys
import warnings
from pathlib import Path

import dagster as dg
import pytest
from collectors_helpers import DAY, HOUR, raw_batches

from cms_dagster import lake
from cms_dagster.collectors import cli, lambda_handler
from cms_dagster.resources import LakeResource, build_resources
from cms_harness.cloudwatch_standin import FakeCloudWatch, fleet, json_stream_file

with warnings.catch_warnings():
    warnings.simplefilter("ignore")
    from cms_dagster.defs.collection import cloudwatch as defs

PARTITION = f"{DAY}-14:00"


def _materialize(asset, **kw):
    return dg.materialize(
        [asset],
        instance=dg.DagsterInstance.ephemeral(),
        resources=build_resources(),
        raise_on_error=False,
        **kw,
    )


def _metadata(result) -> dict:
    mats = (
        result.asset_materializations_for_node(result.all_node_events[0].node_name)
        if result.all_node_events
        else []
    )
    return {k: v.value for k, v in mats[0].metadata.items()} if mats else {}


def test_the_collection_definitions_load():
    d = dg.Definitions(
        assets=[defs.cloudwatch_raw, defs.metric_streams_raw],
        jobs=[defs.cloudwatch_collection_job, defs.metric_streams_job],
        schedules=[defs.cloudwatch_hourly_schedule],
        sensors=[defs.metric_streams_sensor],
        resources=build_resources(),
    )
    dg.Definitions.validate_loadable(d)
    assert {k.to_user_string() for k in d.resolve_all_asset_keys()} == {"raw/cloudwatch", "raw/metric_stream"}
    assert defs.cloudwatch_raw.group_names_by_key[dg.AssetKey(["raw", "cloudwatch"])] == "collection"
    assert defs.cloudwatch_hourly_schedule.cron_schedule == "10 * * * *"


def test_embedded_mode_says_plainly_why_collection_is_skipped_and_records_no_materialization():
    result = _materialize(defs.cloudwatch_raw, partition_key=PARTITION)
    assert result.success
    assert _metadata(result) == {}  # nothing materialized: the partition does not look collected
    observations = result.asset_observations_for_node(result.all_node_events[0].node_name)
    assert [o.partition for o in observations] == [PARTITION]
    reason = observations[0].metadata["skipped"].value
    assert "simulator stands in" in reason and "CMS_AWS_REGIONS" in reason


def test_metric_streams_landing_without_a_url_records_no_materialization():
    result = _materialize(defs.metric_streams_raw)
    assert result.success and _metadata(result) == {}
    observations = result.asset_observations_for_node(result.all_node_events[0].node_name)
    assert "CMS_METRIC_STREAMS_URL" in observations[0].metadata["skipped"].value


@pytest.mark.slow
def test_a_partition_is_collected_against_aws_with_run_metadata(moto_env):
    result = _materialize(defs.cloudwatch_raw, partition_key=PARTITION)
    assert result.success
    md = _metadata(result)
    assert (
        md["metrics_discovered"] == 38 and md["get_metric_data_calls"] == 1 and md["metrics_requested"] == 141
    )
    assert md["api_calls"] >= 10 and md["datapoints"] > 0 and md["bytes"] > 0 and md["raw_batches"] == 5
    assert md["estimated_cost_usd"] == pytest.approx((141 + 5) * 0.01 / 1000)
    assert {lake.parse_raw_key(k)["hour"] for k in raw_batches(moto_env["raw"])} == {14}


def test_the_sensor_requests_a_landing_run_for_new_stream_files(tmp_path, monkeypatch, raw):
    ctx = dg.build_sensor_context(instance=dg.DagsterInstance.ephemeral(), resources={"lake": LakeResource()})
    skipped = defs.metric_streams_sensor(ctx)
    assert isinstance(skipped, dg.SkipReason) and "CMS_METRIC_STREAMS_URL" in skipped.skip_message
    streams_dir = tmp_path / "streams"
    monkeypatch.setenv("CMS_METRIC_STREAMS_URL", str(streams_dir))
    monkeypatch.setenv("CMS_RAW_URL", raw.url)
    fake = FakeCloudWatch(fleet(5))
    (streams_dir / f"{HOUR:%Y/%m/%d}/15").mkdir(parents=True)
    (streams_dir / f"{HOUR:%Y/%m/%d}/15/f1").write_bytes(
        json_stream_file(fake.stream_records(HOUR, HOUR + dt.timedelta(minutes=5), "us-east-1"))
    )
    result = defs.metric_streams_sensor(ctx)
    assert isinstance(result, dg.SensorResult) and len(result.run_requests) == 1
    ctx.update_cursor(result.cursor)
    assert isinstance(defs.metric_streams_sensor(ctx), dg.SkipReason)  # requested already: not twice
    landed = _materialize(defs.metric_streams_raw)
    assert landed.success and _metadata(landed)["files"] == 1
    assert len(raw_batches(raw, "metric-stream")) == 1
    ctx2 = dg.build_sensor_context(
        instance=dg.DagsterInstance.ephemeral(), resources={"lake": LakeResource()}
    )  # even with a fresh cursor
    assert isinstance(defs.metric_streams_sensor(ctx2), dg.SkipReason)  # landed: nothing pending


def _cli(*args: str) -> int:
    parser = argparse.ArgumentParser(prog="cms")
    cli.register(parser.add_subparsers())
    ns = parser.parse_args(["collect", *args])
    return ns.func(ns)


@pytest.mark.slow
def test_cms_collect_prints_the_run_summary_as_json(moto_env, capsys):
    code = _cli("--start", f"{DAY}T14:00Z", "--end", f"{DAY}T15:00Z", "--json")
    out = json.loads(capsys.readouterr().out)
    assert code == 0 and out["windows_collected"] == 1
    assert out["calls"]["GetMetricData"] == 1 and out["metrics_discovered"] == 38
    assert (
        out["datapoints"] > 0
        and out["bytes"] > 0
        and len(out["raw_keys"]) == 5
        and out["estimated_cost_usd"] > 0
    )
    code = _cli("--start", f"{DAY}T14:00Z")
    human = capsys.readouterr().out
    assert (
        code == 0
        and "GetMetricData       1 calls (planned 1, minimum 1)" in human
        and "estimated cost" in human
    )


def test_cms_collect_without_aws_says_why(capsys):
    code = _cli("--json")
    assert code == 0 and "simulator stands in" in json.loads(capsys.readouterr().out)["skipped"]
    with pytest.raises(SystemExit, match="not an ISO-8601 time"):
        _cli("--start", "yesterday")


@pytest.mark.slow
def test_the_lambda_handler_collects_the_previous_hour_and_catches_up(moto_env):
    event = {"source": "aws.events", "detail-type": "Scheduled Event", "time": f"{DAY}T15:10:00Z"}
    first = lambda_handler.handler(event, None)
    assert first["start"] == f"{DAY}T12:00:00+00:00" and first["end"] == f"{DAY}T15:00:00+00:00"
    assert (
        first["windows_collected"] == 3 and first["calls"]["GetMetricData"] == 1
    )  # three hours in one fetch
    again = lambda_handler.handler(event, None)  # a duplicate delivery: nothing to redo
    assert again["windows_skipped"] == 3 and "GetMetricData" not in again["calls"]
    one = lambda_handler.handler({"start": f"{DAY}T14:00:00Z", "end": f"{DAY}T15:00:00Z"}, None)
    assert one["windows_collected"] == 1 and sorted(one["raw_keys"]) == sorted(
        k for k in raw_batches(moto_env["raw"]) if "hour=14" in k
    )


def test_the_lambda_handler_imports_no_dagster():
    code = "import sys, cms_dagster.collectors.lambda_handler; print('dagster' in sys.modules)"
    out = subprocess.run(
        [sys.executable, "-c", code], capture_output=True, text=True, check=True, cwd=Path(__file__).parent
    )
    assert out.stdout.strip() == "False"


@pytest.mark.slow
def test_several_regions_make_an_hour_by_target_partitioning_collected_one_target_at_a_time(
    moto_env, monkeypatch
):
    monkeypatch.setenv("CMS_AWS_REGIONS", "us-east-1,eu-west-1")
    collection = defs.collection_defs()
    graph = dg.Definitions.merge(
        collection, dg.Definitions(resources=build_resources())
    ).resolve_asset_graph()
    pdef = graph.get(dg.AssetKey(["raw", "cloudwatch"])).partitions_def
    assert isinstance(pdef, dg.MultiPartitionsDefinition)
    assert pdef.get_partitions_def_for_dimension("target").get_partition_keys() == [
        "default-us-east-1",
        "default-eu-west-1",
    ]
    asset = next(a for a in collection.assets if dg.AssetKey(["raw", "cloudwatch"]) in a.keys)
    eu = _materialize(
        asset, partition_key=dg.MultiPartitionKey({"hour": PARTITION, "target": "default-eu-west-1"})
    )
    assert eu.success and _metadata(eu)["targets"].endswith("eu-west-1")
    assert all("-eu-west-1-" in k for k in raw_batches(moto_env["raw"]))  # only that region was collected
    us = _materialize(
        asset, partition_key=dg.MultiPartitionKey({"hour": PARTITION, "target": "default-us-east-1"})
    )
    assert us.success and _metadata(us)["metrics_discovered"] == 38
    # the raw zone's hourly asset depends on every target of its hour
    from cms_dagster.defs.collection.raw_zone import raw_otel_metrics

    full = dg.Definitions(
        assets=[asset, raw_otel_metrics], resources=build_resources()
    ).resolve_asset_graph()
    parents = full.get_parent_partition_keys_for_child(
        PARTITION, dg.AssetKey(["raw", "cloudwatch"]), dg.AssetKey(["raw", "otel_metrics"])
    )
    assert {str(k) for k in parents.partitions_subset.get_partition_keys()} == {
        f"{PARTITION}|default-us-east-1",
        f"{PARTITION}|default-eu-west-1",
    }
