import copy

import pytest
import yaml

from cms_dagster.domain import OntologyError, load_ontology
from cms_dagster.domain.cron import Cron
from cms_dagster.domain.model import default_path, parse_ontology
from cms_dagster.otel.conventions import ASSET_CLASSES


@pytest.fixture(scope="module")
def doc() -> dict:
    return yaml.safe_load(default_path().read_text())


def test_default_estate_covers_the_brief() -> None:
    o = load_ontology()
    assert set(o.asset_classes) == set(ASSET_CLASSES)
    for ac in ASSET_CLASSES:
        assert 2 <= sum(j.asset_class == ac for j in o.jobs.values()) <= 3
    assert len(o.feeds) >= 6
    kinds = {r.kind for r in o.resources.values()}
    assert {"rds", "sqs", "lambda", "eks_namespace"} <= kinds
    # every feed is needed by some job and every job's stages form a DAG with a single entry
    assert all(o.jobs_needing_feed(f) for f in o.feeds)
    for j in o.jobs.values():
        assert [s.id for s in j.topo_stages()][0] == j.stages[0].id


def test_dependency_edges_follow_the_ontology() -> None:
    edges = set(load_ontology().dependency_edges())
    assert ("job:derivatives.eod_valuation", "feed:bloomberg-bpipe") in edges
    assert ("stage:derivatives.eod_valuation.validation", "stage:derivatives.eod_valuation.ingest") in edges
    assert ("stage:derivatives.eod_valuation.valuation", "rds:risk-db") in edges
    assert ("eks:markets-prod/pricing", "eks:markets-prod") in edges


@pytest.mark.parametrize(
    ("mutate", "message"),
    [
        (
            lambda d: d["jobs"][5]["stages"][3].update(depends_on=["nonexistent"]),
            r"jobs\[derivatives.eod_valuation\].stages\[valuation\].depends_on",
        ),
        (
            lambda d: d["jobs"][0].update(feeds=["reuters-old"]),
            r"jobs\[equities.eod_pricing\].feeds: unknown feed 'reuters-old'",
        ),
        (lambda d: d["jobs"][0].update(schedule="61 * * * *"), r"jobs\[equities.eod_pricing\].schedule"),
        (lambda d: d["jobs"][0]["stages"][0].update(type="magic"), r"stages\[ingest\].type"),
        (lambda d: d["jobs"][0]["stages"][1].update(resources=["rds:nope"]), r"unknown resource 'rds:nope'"),
        (
            lambda d: d["resources"][0].update(id="rds:wrong"),
            r"resources\[rds:wrong\]: id must be 'rds:orders-db'",
        ),
        (lambda d: d["jobs"][1].update(asset_class="crypto"), r"asset_class: 'crypto' is not declared"),
        (lambda d: d["feeds"][0].update(staleness_sla_s=0), r"feeds\[bloomberg-bpipe\].staleness_sla_s"),
    ],
)
def test_invalid_entries_are_named(doc: dict, mutate, message: str) -> None:
    bad = copy.deepcopy(doc)
    mutate(bad)
    with pytest.raises(OntologyError, match=message):
        parse_ontology(bad)


def test_cron_matches_weekday_schedules() -> None:
    import datetime as dt

    c = Cron("0 13-20 * * 1-5")
    mon = dt.datetime(2026, 11, 16, tzinfo=dt.timezone.utc)
    times = list(c.times(mon, mon + dt.timedelta(days=7)))
    assert len(times) == 5 * 8
    assert all(t.weekday() < 5 and 13 <= t.hour <= 20 and t.minute == 0 for t in times)
    assert Cron("0 8 * * 7").matches(dt.datetime(2026, 11, 22, 8, 0))  # 7 = Sunday
    with pytest.raises(ValueError, match="5 fields"):
        Cron("0 8 * *")
