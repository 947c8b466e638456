"""End to end: the Java and Node.js SDKs talk to a live receiver (`cms ingest` in a thread), their points
land in the raw zone, and a receiver that is down then restarted still gets everything (spool + replay)."""

import gzip
import os
import subprocess
import textwrap
from pathlib import Path

import pyarrow as pa
import pyarrow.compute as pc
import pytest
from sdk_conformance import SDKS

from cms_dagster.ingest.demo import serve_in_background
from cms_dagster.lake import Lake, batch_ingest_time, parse_raw_key
from cms_dagster.otel.flatten import flatten_lines
from cms_dagster.settings import load as load_settings

KEY = "e2e-key"

NODE_PROGRAM = textwrap.dedent(
    """
    import { createClient } from '%s';
    const cms = createClient();
    await cms.run({ assetClass: 'derivatives', job: 'eod_valuation', runId: process.env.RUN_ID }, async (run) => {
      await run.stage({ name: 'ingest', type: 'ingest', dependsOn: [] }, async (s) => s.records(1000));
      await run.stage({ name: 'validation', type: 'validation', dependsOn: ['ingest'] }, async (s) => s.records(990));
      run.records(990).bytes(420000);
    });
    cms.feed('cme-mdp', 'cme').heartbeat({ up: true, latencyMs: 12.5, messages: 5000, missingFields: 1, invalidValues: 0 });
    await cms.shutdown();
    """
)

JAVA_PROGRAM = textwrap.dedent(
    """
    import io.cms.sdk.*;
    import java.util.List;
    public class E2E {
      public static void main(String[] a) throws Exception {
        try (CmsClient cms = CmsClient.fromEnvironment()) {
          try (BatchRun run = cms.startRun("derivatives", "eod_valuation", System.getenv("RUN_ID"), (String) null)) {
            try (Stage s = run.stage("ingest", "ingest", List.of())) { s.records(1000); }
            try (Stage s = run.stage("validation", "validation", List.of("ingest"))) { s.records(990); }
            run.records(990).bytes(420000);
          }
          cms.feed("cme-mdp", "cme").heartbeat(true, 12.5, 5000, 1, 0);
        }
      }
    }
    """
)


def _points(raw_url: str) -> pa.Table:
    lake = Lake.from_settings(load_settings())
    tables = []
    for key in lake.raw.list("otel/metrics/source=sdk/"):
        p = parse_raw_key(key)
        flat = flatten_lines(gzip.decompress(lake.raw.get(key)).split(b"\n"), source="sdk", raw_key=key, ingested_at=batch_ingest_time(p["batch"]), day=p["dt"], hour=p["hour"])
        assert not flat.rejected, flat.rejected
        tables.append(flat.table)
    return pa.concat_tables(tables) if tables else pa.table({"metric_name": pa.array([], pa.string())})


def _env(url: str, run_id: str, spool: Path) -> dict:
    return {
        **os.environ,
        "OTEL_EXPORTER_OTLP_ENDPOINT": url,
        "OTEL_EXPORTER_OTLP_HEADERS": f"authorization=Bearer {KEY}",
        "OTEL_SERVICE_NAME": "e2e",
        "CMS_ENVIRONMENT": "dev",
        "CMS_SPOOL_DIR": str(spool),
        "RUN_ID": run_id,
    }


def _run_sdk(lang: str, tmp: Path, env: dict) -> subprocess.CompletedProcess:
    if lang == "node":
        prog = tmp / "e2e.mjs"
        prog.write_text(NODE_PROGRAM % (SDKS / "node" / "src" / "index.js").as_uri())
        cmd = ["node", str(prog)]
    else:
        prog = tmp / "E2E.java"
        prog.write_text(JAVA_PROGRAM)
        cmd = ["java", "-cp", str(SDKS / "java" / "build" / "cms-sdk-0.1.0.jar"), str(prog)]
    return subprocess.run(cmd, env=env, capture_output=True, text=True, timeout=120)


def _assert_run_landed(table: pa.Table, run_id: str) -> None:
    mine = table.filter(pc.equal(table.column("run_id"), run_id))
    names = sorted(mine.column("metric_name").to_pylist())
    assert names.count("cms.stage.run.finished") == 2 and "cms.batch.run.finished" in names, names
    fin = mine.filter(pc.equal(mine.column("metric_name"), "cms.batch.run.finished")).to_pylist()[0]
    assert (fin["status"], fin["entity_id"], fin["environment"]) == ("success", "job:derivatives.eod_valuation", "dev")
    assert pc.count_distinct(mine.column("point_id")).as_py() == mine.num_rows


@pytest.mark.slow
@pytest.mark.parametrize("lang", ["java", "node"])
def test_sdk_points_reach_the_raw_zone_through_a_live_receiver(lang: str, cms_home: Path, tmp_path: Path, java_build) -> None:
    lake = Lake.from_settings(load_settings())
    server = serve_in_background(lake.raw.url, api_keys={KEY: "e2e"})
    try:
        proc = _run_sdk(lang, tmp_path, _env(server.url, f"{lang}-live-1", tmp_path / "spool"))
        assert proc.returncode == 0, proc.stdout + proc.stderr
    finally:
        server.stop()
    table = _points(lake.raw.url)
    _assert_run_landed(table, f"{lang}-live-1")
    feed = table.filter(pc.equal(table.column("metric_name"), "cms.feed.up")).to_pylist()
    assert feed and feed[0]["entity_id"] == "feed:cme-mdp"


@pytest.mark.slow
@pytest.mark.parametrize("lang", ["java", "node"])
def test_receiver_down_then_back_spools_and_replays(lang: str, cms_home: Path, tmp_path: Path, java_build) -> None:
    lake = Lake.from_settings(load_settings())
    spool = tmp_path / "spool"
    # the receiver is down: the program ends with its batches spooled, nothing lost, nothing thrown
    down = serve_in_background(lake.raw.url, api_keys={KEY: "e2e"})
    url = down.url
    down.stop()
    proc = _run_sdk(lang, tmp_path, _env(url, f"{lang}-spooled", spool))
    assert proc.returncode == 0, proc.stdout + proc.stderr
    assert any(spool.rglob("*")), "nothing was spooled"
    assert _points(lake.raw.url).num_rows == 0
    # back up (same port): the next program replays the spool before its own points
    port = int(url.rsplit(":", 1)[1])
    server = serve_in_background(lake.raw.url, port=port, api_keys={KEY: "e2e"})
    try:
        proc = _run_sdk(lang, tmp_path, _env(url, f"{lang}-after", spool))
        assert proc.returncode == 0, proc.stdout + proc.stderr
    finally:
        server.stop()
    table = _points(lake.raw.url)
    _assert_run_landed(table, f"{lang}-spooled")
    _assert_run_landed(table, f"{lang}-after")
