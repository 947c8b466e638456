"""The ontology as dbt seeds: the committed CSVs equal a fresh export, and `cms domain export-seeds`
writes (or checks) them."""

from __future__ import annotations

import argparse
import csv
from pathlib import Path

import pytest

from cms_dagster.domain import Ontology, load_ontology
from cms_dagster.warehouse import cli as warehouse_cli
from cms_dagster.warehouse import seeds
from cms_dagster.warehouse.dbt import dbt_project_dir

SEEDS_DIR = dbt_project_dir() / "seeds"


def test_committed_seeds_equal_a_fresh_export(ontology: Ontology) -> None:
    assert seeds.stale_seeds(ontology, SEEDS_DIR) == [], "run `cms domain export-seeds` and commit the CSVs"


def test_seeds_describe_the_stage_dag(ontology: Ontology) -> None:
    with (SEEDS_DIR / "stages.csv").open() as f:
        stages = {r["stage_key"]: r for r in csv.DictReader(f)}
    publication = stages["derivatives.eod_valuation.publication"]
    assert publication["depends_on"] == "aggregation,loading" and publication["depth"] == "5"
    assert publication["is_terminal"] == "true"
    assert len(stages) == len(ontology.stages)
    with (SEEDS_DIR / "jobs.csv").open() as f:
        jobs = {r["job_key"]: r for r in csv.DictReader(f)}
    # longest path by expected minutes: 10 + 6 + 8 + 35 + 12 + 3
    assert jobs["derivatives.eod_valuation"]["expected_minutes"] == "74"


def _domain_parser() -> argparse.ArgumentParser:
    p = argparse.ArgumentParser(prog="cms")
    sub = p.add_subparsers(dest="command")
    domain = sub.add_parser("domain").add_subparsers(dest="domain_command")
    warehouse_cli.register_domain(domain)
    return p


def test_export_seeds_writes_every_seed_and_check_spots_a_stale_one(tmp_path: Path, capsys: pytest.CaptureFixture) -> None:
    parser = _domain_parser()
    args = parser.parse_args(["domain", "export-seeds", "--out", str(tmp_path)])
    assert args.func(args) == 0
    assert sorted(p.stem for p in tmp_path.glob("*.csv")) == sorted(seeds.SEED_NAMES)
    check = parser.parse_args(["domain", "export-seeds", "--out", str(tmp_path), "--check"])
    assert check.func(check) == 0
    (tmp_path / "feeds.csv").write_text("feed_id\n")
    capsys.readouterr()
    assert check.func(check) == 1
    err = capsys.readouterr().err
    assert "stale seed(s)" in err and "feeds" in err and "jobs" not in err


def test_export_seeds_names_a_broken_ontology(tmp_path: Path, capsys: pytest.CaptureFixture) -> None:
    bad = tmp_path / "estate.yaml"
    bad.write_text("asset_classes: []\n")
    parser = _domain_parser()
    args = parser.parse_args(["domain", "export-seeds", "--domain", str(bad), "--out", str(tmp_path)])
    assert args.func(args) == 2
    assert "asset_classes" in capsys.readouterr().err


def test_a_custom_estate_exports_its_own_jobs(tmp_path: Path) -> None:
    import yaml

    from cms_dagster.domain.model import default_path

    doc = yaml.safe_load(default_path().read_text())
    doc["jobs"] = [j for j in doc["jobs"] if j["id"] != "inventory_positions"]
    custom = tmp_path / "estate.yaml"
    custom.write_text(yaml.safe_dump(doc))
    seeds.export_seeds(load_ontology(custom), tmp_path / "seeds")
    jobs = (tmp_path / "seeds" / "jobs.csv").read_text()
    assert "commodities.inventory_positions" not in jobs and "commodities.eod_settlement_prices" in jobs
