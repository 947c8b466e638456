"""Filters to the ids each mart is keyed by, through the ontology: "bloomberg" narrows feeds to the
Bloomberg feeds, runs to the jobs that need them, resources to those their stages use."""

from __future__ import annotations

from dataclasses import dataclass

from cms_dagster.domain.model import Ontology


class ScopeError(ValueError):
    """A filter names something the ontology does not have."""


@dataclass(frozen=True)
class Scope:
    jobs: frozenset[str] | None
    stages: frozenset[str] | None
    feeds: frozenset[str] | None
    resources: frozenset[str] | None
    empty_reason: str = ""


def _and(a: frozenset[str] | None, b: set[str] | frozenset[str] | None) -> frozenset[str] | None:
    if b is None:
        return a
    return frozenset(b) if a is None else a & frozenset(b)


def _resources_of_kind(ont: Ontology, kind: str) -> set[str]:
    return {r.id for r in ont.resources.values() if r.kind == kind or (kind == "eks" and r.kind.startswith("eks"))}


def resolve(filters: dict[str, list[str]], ont: Ontology) -> Scope:
    """Intersect every filter, mapped to job keys, stage keys, feed ids and resource ids."""
    f = {k: [v for v in vs if v] for k, vs in filters.items() if vs}
    for ac in f.get("asset_class", []):
        if ac not in ont.asset_classes:
            raise ScopeError(f"unknown asset class {ac!r}; known: {', '.join(ont.asset_classes)}")
    for j in f.get("job", []):
        if j not in ont.jobs:
            raise ScopeError(f"unknown job {j!r}; jobs are <asset_class>.<job>, e.g. derivatives.eod_valuation")
    for fd in f.get("feed", []):
        if fd not in ont.feeds:
            raise ScopeError(f"unknown feed {fd!r}; known: {', '.join(ont.feeds)}")
    providers = {x.provider for x in ont.feeds.values()}
    for p in f.get("provider", []):
        if p not in providers:
            raise ScopeError(f"unknown provider {p!r}; known: {', '.join(sorted(providers))}")
    for r in f.get("resource", []):
        if r not in ont.resources:
            raise ScopeError(f"unknown resource {r!r}; resources are ids like rds:orders-db")
    stage_keys = {f"{s.asset_class}.{s.job}.{s.id}": s for s in ont.stages}
    stage_types = {s.type for s in ont.stages}
    for st in f.get("stage_type", []):
        if st not in stage_types:
            raise ScopeError(f"unknown stage type {st!r}; known: {', '.join(sorted(stage_types))}")
    for st in f.get("stage", []):
        if st not in stage_keys and st not in {s.id for s in ont.stages}:
            raise ScopeError(f"unknown stage {st!r}; stages are <asset_class>.<job>.<stage>")
    for k in f.get("resource_kind", []):
        if k not in ("rds", "sqs", "lambda", "eks", "eks_cluster", "eks_namespace"):
            raise ScopeError(f"unknown resource kind {k!r}; use rds, sqs, lambda or eks")

    # what each filter names directly (None: no constraint)
    jobs: frozenset[str] | None = None
    if "asset_class" in f:
        jobs = _and(jobs, {k for k, j in ont.jobs.items() if j.asset_class in f["asset_class"]})
    if "job" in f:
        jobs = _and(jobs, set(f["job"]))
    feeds: frozenset[str] | None = None
    if "feed" in f:
        feeds = _and(feeds, set(f["feed"]))
    if "provider" in f:
        feeds = _and(feeds, {i for i, x in ont.feeds.items() if x.provider in f["provider"]})
    resources: frozenset[str] | None = None
    if "resource" in f:
        resources = _and(resources, set(f["resource"]))
    for k in f.get("resource_kind", []):
        resources = _and(resources, _resources_of_kind(ont, k))
    stages: frozenset[str] | None = None
    if "stage_type" in f:
        stages = _and(stages, {k for k, s in stage_keys.items() if s.type in f["stage_type"]})
    if "stage" in f:
        stages = _and(stages, {k for k, s in stage_keys.items() if k in f["stage"] or s.id in f["stage"]})

    def job_of(stage_key: str) -> str:
        return stage_key.rsplit(".", 1)[0]

    # what they imply for the other kinds of id
    out_jobs = jobs
    if stages is not None:
        out_jobs = _and(out_jobs, {job_of(k) for k in stages})
    if feeds is not None:
        out_jobs = _and(out_jobs, {k for k, j in ont.jobs.items() if set(j.feeds) & feeds})
    if resources is not None:
        out_jobs = _and(out_jobs, {job_of(k) for k, s in stage_keys.items() if set(s.resources) & resources})

    out_stages = stages
    if out_jobs is not None:
        out_stages = _and(out_stages, {k for k in stage_keys if job_of(k) in out_jobs})
    if resources is not None:
        out_stages = _and(out_stages, {k for k, s in stage_keys.items() if set(s.resources) & resources})

    out_feeds = feeds
    if jobs is not None or stages is not None:
        named = jobs if stages is None else _and(jobs, {job_of(k) for k in stages})
        out_feeds = _and(out_feeds, {fd for k in named or () for fd in ont.jobs[k].feeds})

    out_resources = resources
    if jobs is not None or stages is not None:
        used = {r for k, s in stage_keys.items() if (stages is None or k in stages) and (jobs is None or job_of(k) in jobs) for r in s.resources}
        clusters = {f"eks:{ont.resources[r].cluster}" for r in used if ont.resources[r].cluster}
        out_resources = _and(out_resources, used | clusters)
    return Scope(out_jobs, out_stages, out_feeds, out_resources)
