"""The domain ranking: (entity, incident kind) on the default estate, one synthetic incident per kind."""

from __future__ import annotations

import warnings

import numpy as np
import pandas as pd
import pytest
from rca_synth import CASES, START, load_estate, make_incident

from cms_dagster.rca import KINDS, max_connections_from_ontology, ontology_graph, rank_incident
from cms_dagster.rca.domain import canonical_metric, entity_type


@pytest.fixture(scope="module")
def estate() -> dict:
    return load_estate()


@pytest.fixture(scope="module")
def edges(estate: dict) -> list[tuple[str, str]]:
    return ontology_graph(estate)


def test_cases_cover_every_incident_kind() -> None:
    assert sorted(k for k, _ in CASES) == sorted(KINDS)


@pytest.mark.parametrize(("kind", "root"), CASES, ids=[k for k, _ in CASES])
def test_each_kind_is_ranked_first_on_its_root_entity(kind: str, root: str, edges: list) -> None:
    metrics = make_incident(kind, root, seed=11)
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        ranked = rank_incident(metrics, edges, START, top_k=5)
    assert (ranked[0].entity, ranked[0].kind) == (root, kind), [(h.entity, h.kind, h.score) for h in ranked]
    assert ranked[0].match > 0.5
    assert ranked[0].evidence and ranked[0].reason


@pytest.mark.parametrize(("kind", "root"), CASES, ids=[k for k, _ in CASES])
def test_each_kind_survives_a_mild_incident_with_a_decoy(kind: str, root: str, edges: list) -> None:
    metrics = make_incident(kind, root, seed=23, severity=0.4, decoy=True)
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        ranked = rank_incident(metrics, edges, START, top_k=3)
    assert (ranked[0].entity, ranked[0].kind) == (root, kind), [(h.entity, h.kind, h.score) for h in ranked]


def test_pool_exhaustion_evidence_and_explained_stages(edges: list) -> None:
    metrics = make_incident("connection_pool_exhaustion", "rds:positions-db", seed=5)
    ranked = rank_incident(metrics, edges, START)
    top = ranked[0]
    assert top.evidence[0].metric == "conn_ratio"
    assert top.evidence[0].observed > 0.9
    assert "stage:equities.eod_pricing.valuation" in top.explains
    failed_stage = next(h for h in ranked if h.entity == "stage:equities.eod_pricing.valuation")
    assert failed_stage.kind == "job_failure"  # it did fail ...
    assert "rds:positions-db" in failed_stage.explained_by  # ... because of the database
    assert failed_stage.score < top.score / 5


def test_database_connections_against_max_connections_without_conn_ratio(estate: dict, edges: list) -> None:
    metrics = make_incident("connection_pool_exhaustion", "rds:orders-db", seed=8)
    metrics = metrics[metrics["metric"] != "conn_ratio"]
    ranked = rank_incident(metrics, edges, START, max_connections=max_connections_from_ontology(estate))
    assert (ranked[0].entity, ranked[0].kind) == ("rds:orders-db", "connection_pool_exhaustion")
    assert "of max connections" in ranked[0].reason


def test_full_warehouse_metric_names_are_understood(edges: list) -> None:
    metrics = make_incident("network_latency", "feed:refinitiv-elektron", seed=2)
    metrics["metric"] = metrics["metric"].replace(
        {"latency_ms": "cms.feed.latency", "up": "cms.feed.up", "staleness_s": "cms.feed.staleness"}
    )
    ranked = rank_incident(metrics, edges, START, top_k=1)
    assert (ranked[0].entity, ranked[0].kind) == ("feed:refinitiv-elektron", "network_latency")


def test_target_job_limits_hypotheses_to_its_dependencies(edges: list) -> None:
    metrics = make_incident("feed_outage", "feed:ebs-fx", seed=4)
    ranked = rank_incident(metrics, edges, START, target="job:fx.eod_revaluation")
    assert (ranked[0].entity, ranked[0].kind) == ("feed:ebs-fx", "feed_outage")
    allowed_prefixes = (
        "job:fx.eod_revaluation",
        "stage:fx.eod_revaluation.",
        "feed:ebs-fx",
        "feed:refinitiv-elektron",
    )
    resources = {
        "lambda:fx-rate-normalizer",
        "eks:markets-prod/pricing",
        "rds:positions-db",
        "eks:markets-prod",
    }
    assert all(h.entity.startswith(allowed_prefixes) or h.entity in resources for h in ranked)


def test_memory_leak_and_capacity_are_told_apart(edges: list) -> None:
    leak = rank_incident(make_incident("memory_leak", "eks:markets-prod/risk-engine", seed=9), edges, START)
    capacity = rank_incident(
        make_incident("capacity_constraint", "eks:markets-prod/risk-engine", seed=9), edges, START
    )
    kinds = lambda ranked: [h.kind for h in ranked if h.entity == "eks:markets-prod/risk-engine"]  # noqa: E731
    assert kinds(leak)[0] == "memory_leak"
    assert kinds(capacity)[0] == "capacity_constraint"
    cluster_evidence = [e for e in capacity[0].evidence if e.node == "eks:markets-prod"]
    assert cluster_evidence and cluster_evidence[0].metric == "cluster_failed_node_count"


def test_hypotheses_serialise_to_plain_json_types(edges: list) -> None:
    ranked = rank_incident(make_incident("volume_spike", "feed:ice-data", seed=3), edges, START, top_k=2)
    doc = ranked[0].to_dict()
    assert doc["entity"] == "feed:ice-data" and doc["kind"] == "volume_spike"
    assert isinstance(doc["evidence"][0]["z"], float)
    assert doc["onset"].endswith("Z")


def test_ontology_graph_edges(estate: dict) -> None:
    edges = set(ontology_graph(estate))
    job = "job:derivatives.eod_valuation"
    assert (job, "feed:cme-mdp") in edges  # a job depends on its feeds
    assert (job, "stage:derivatives.eod_valuation.publication") in edges  # ... and its stages
    pub = "stage:derivatives.eod_valuation.publication"
    assert (pub, "stage:derivatives.eod_valuation.aggregation") in edges  # a stage on the stages before it
    assert (pub, "stage:derivatives.eod_valuation.loading") in edges
    assert (pub, "lambda:publication-notifier") in edges  # ... and the resources it uses
    assert ("stage:derivatives.eod_valuation.ingest", "feed:markit-cds") in edges  # ingest reads the feeds
    assert ("eks:markets-prod/pricing", "eks:markets-prod") in edges  # a namespace belongs to its cluster
    assert not any(
        s == "stage:derivatives.eod_valuation.valuation" and t.startswith("feed:") for s, t in edges
    )
    plain = set(ontology_graph(estate, ingest_reads_feeds=False))
    assert ("stage:derivatives.eod_valuation.ingest", "feed:markit-cds") not in plain


def test_ontology_graph_names_a_bad_entry() -> None:
    from cms_dagster.rca import RcaInputError

    with pytest.raises(RcaInputError, match=r"jobs\[0\] has no 'asset_class'"):
        ontology_graph({"jobs": [{"id": "x", "stages": []}]})


def test_max_connections_from_ontology(estate: dict) -> None:
    assert max_connections_from_ontology(estate)["rds:orders-db"] == 400


def test_metric_names_and_entity_types() -> None:
    assert canonical_metric("amazonaws.com/AWS/RDS/ReadLatency") == "ReadLatency"
    assert (
        canonical_metric("amazonaws.com/ContainerInsights/pod_memory_utilization") == "pod_memory_utilization"
    )
    assert canonical_metric("cms.feed.staleness") == "staleness_s"
    assert canonical_metric("conn_ratio") == "conn_ratio"
    assert entity_type("eks:markets-prod/pricing") == "eks_namespace"
    assert entity_type("eks:markets-prod") == "eks_cluster"
    assert entity_type("stage:fx.eod_revaluation.ingest") == "stage"


def test_an_anomaly_no_kind_fits_is_reported_as_unknown() -> None:
    times = pd.date_range("2026-11-20T18:00:00Z", periods=240, freq="min")
    rng = np.random.default_rng(0)
    errors = 5 + rng.standard_normal(240)
    errors[200:] += 40
    metrics = pd.DataFrame(
        {"time": times, "entity": "lambda:fx-rate-normalizer", "metric": "Errors", "value": errors}
    )
    ranked = rank_incident(metrics, [], times[195])
    assert [(h.entity, h.kind) for h in ranked] == [("lambda:fx-rate-normalizer", "unknown")]
