"""The simulator is deterministic, writes the data contract's raw keys, and its labels agree with its data."""

import csv
import datetime as dt
import gzip
import io
from pathlib import Path

import orjson
import pyarrow as pa
import pyarrow.compute as pc
import pytest

from cms_dagster.domain import load_ontology
from cms_dagster.lake import Lake, Zone, batch_ingest_time, parse_raw_key
from cms_dagster.otel.flatten import flatten_lines
from cms_dagster.simulate.incidents import parse_incident_spec
from cms_dagster.simulate.run import simulate

# The module simulates and flattens a day of the estate once (about 15 s): every test here is slow.
pytestmark = pytest.mark.slow

SPECS = [
    "feed_outage@2026-11-16T05:45,entity=feed:cme-mdp,minutes=40",
    "job_failure@2026-11-16T05:55,entity=stage:equities.corporate_actions.enrichment",
    "connection_pool_exhaustion@2026-11-16T21:15,entity=rds:positions-db",
]


def _lake(root: Path) -> Lake:
    return Lake(Zone(str(root / "raw")), Zone(str(root / "processed")), Zone(str(root / "archive")))


@pytest.fixture(scope="module")
def sim(tmp_path_factory: pytest.TempPathFactory):
    ont = load_ontology()
    root = tmp_path_factory.mktemp("sim")
    lake = _lake(root)
    res = simulate(
        ont, lake, days=1, seed=7, incidents=[parse_incident_spec(s, ont, i) for i, s in enumerate(SPECS)]
    )
    tables = []
    for key in res.raw_keys:
        p = parse_raw_key(key)
        lines = gzip.decompress(lake.raw.get(key)).split(b"\n")
        flat = flatten_lines(
            lines,
            source=p["source"],
            raw_key=key,
            ingested_at=batch_ingest_time(p["batch"]),
            day=p["dt"],
            hour=p["hour"],
        )
        assert not flat.rejected, flat.rejected[:3]
        tables.append(flat.table)
    return ont, root, lake, res, pa.concat_tables(tables)


def _truth(lake: Lake, name: str) -> list[dict]:
    return list(csv.DictReader(io.StringIO(lake.archive.get(f"simulations/seed-7/truth/{name}").decode())))


def test_same_arguments_give_the_same_bytes(sim, tmp_path: Path) -> None:
    ont, root, lake, res, _ = sim
    again = _lake(tmp_path)
    res2 = simulate(
        ont, again, days=1, seed=7, incidents=[parse_incident_spec(s, ont, i) for i, s in enumerate(SPECS)]
    )
    assert res2.raw_keys == res.raw_keys
    for key in res.raw_keys:
        assert again.raw.get(key) == lake.raw.get(key), key
    for key in lake.archive.list("simulations/"):
        assert again.archive.get(key) == lake.archive.get(key), key
    other = _lake(tmp_path / "other")
    res3 = simulate(
        ont, other, days=1, seed=8, incidents=[parse_incident_spec(s, ont, i) for i, s in enumerate(SPECS)]
    )
    assert other.raw.get(res3.raw_keys[0]) != lake.raw.get(res.raw_keys[0])


def test_raw_keys_follow_the_contract(sim) -> None:
    _, _, _, res, _ = sim
    inside = [k for k in res.raw_keys if parse_raw_key(k)["dt"] == dt.date(2026, 11, 16)]
    assert len(inside) == 48  # 24 hours x (cloudwatch, sdk)
    # runs that finish after midnight report their finish in the next day's hours
    spill = [parse_raw_key(k) for k in res.raw_keys if k not in inside]
    assert all(p["source"] == "sdk" and p["dt"] == dt.date(2026, 11, 17) for p in spill)
    for key in res.raw_keys:
        p = parse_raw_key(key)
        assert p["source"] in ("cloudwatch", "sdk")
        hour = dt.datetime(p["dt"].year, p["dt"].month, p["dt"].day, p["hour"], tzinfo=dt.timezone.utc)
        assert batch_ingest_time(p["batch"]) == hour + dt.timedelta(hours=1)


def test_every_simulated_point_is_counted_and_unique(sim) -> None:
    _, _, _, res, table = sim
    assert table.num_rows == res.points
    assert pc.count_distinct(table.column("point_id")).as_py() == table.num_rows


def test_truth_tables_agree_with_the_points(sim) -> None:
    _, _, lake, res, table = sim
    runs = _truth(lake, "batch_runs.csv")
    finished = table.filter(pc.equal(table.column("metric_name"), "cms.batch.run.finished")).to_pylist()
    assert sorted(r["run_id"] for r in finished) == sorted(r["run_id"] for r in runs)
    status = {r["run_id"]: r["status"] for r in finished}
    assert all(status[r["run_id"]] == r["status"] for r in runs)
    stages = _truth(lake, "stage_runs.csv")
    st_fin = table.filter(pc.equal(table.column("metric_name"), "cms.stage.run.finished"))
    assert st_fin.num_rows == len(stages)
    failed_attempts = pc.sum(pc.equal(st_fin.column("status"), "failed")).as_py()
    assert failed_attempts == sum(s["status"] == "failed" for s in stages)
    outages = _truth(lake, "feed_outages.csv")
    down = table.filter(
        pc.and_(pc.equal(table.column("metric_name"), "cms.feed.up"), pc.equal(table.column("value"), 0.0))
    )
    assert down.num_rows == sum(int(o["minutes"]) for o in outages) == 40
    assert {o["feed"] for o in outages} == {"cme-mdp"}


def test_labels_name_incidents_whose_effects_are_in_the_data(sim) -> None:
    _, _, lake, res, table = sim
    labels = orjson.loads(lake.archive.get("simulations/seed-7/labels.json"))
    by_kind = {i["kind"]: i for i in labels["incidents"]}
    assert set(by_kind) == {"feed_outage", "job_failure", "connection_pool_exhaustion"}
    runs = {r["run_id"]: r for r in _truth(lake, "batch_runs.csv")}
    # a plain job failure fails the job it strikes, after retries, with the stage's error
    jf = by_kind["job_failure"]
    assert jf["root_cause"] == "stage:equities.corporate_actions.enrichment"
    assert jf["affected_jobs"] == ["job:equities.corporate_actions"]
    ca = runs["equities.corporate_actions.2026-11-16T06:00"]
    assert (ca["status"], ca["error_type"], ca["sla_breached"]) == ("failed", "DataQualityError", "true")
    # the feed outage delays the job that needs the feed: it starts only after the feed is back
    fo = by_kind["feed_outage"]
    assert "job:derivatives.margin_calculation" in fo["affected_jobs"]
    mc = runs["derivatives.margin_calculation.2026-11-16T06:00"]
    assert mc["start"] >= fo["end"]
    # connection-pool exhaustion shows as connections pinned at the instance's limit during the window
    cp = by_kind["connection_pool_exhaustion"]
    conns = table.filter(
        pc.and_(
            pc.equal(table.column("metric_name"), "amazonaws.com/AWS/RDS/DatabaseConnections"),
            pc.equal(table.column("entity_id"), "rds:positions-db"),
        )
    ).to_pylist()
    inside = [
        r["value"] for r in conns if cp["start"] < r["ts"].strftime("%Y-%m-%dT%H:%M:%SZ") <= cp["end"]
    ]  # ts = minute end
    outside = [r["value"] for r in conns if r["ts"].hour < 20]
    assert min(inside) >= 0.97 * 800 > max(outside)
    assert set(cp["affected_stages"]) & {
        "stage:equities.eod_pricing.valuation",
        "stage:fixed_income.bond_valuation.valuation",
    }
