"""Typed ontology loaded from YAML (default: the packaged ``estate.yaml``), validated on load.

Errors name the bad entry (``jobs[derivatives.eod_valuation].stages[valuation].depends_on: ...``).
"""

from __future__ import annotations

import math
import re
from collections.abc import Iterable
from dataclasses import dataclass, field
from functools import cached_property
from importlib import resources
from pathlib import Path
from typing import Any

import yaml

from cms_dagster.domain.cron import Cron
from cms_dagster.otel.conventions import ASSET_CLASSES, INCIDENT_KINDS, STAGE_TYPES, job_entity, stage_entity

_ID = re.compile(r"^[a-z0-9_]+$")
_FEED_ID = re.compile(r"^[a-z0-9][a-z0-9_-]*$")
RESOURCE_KINDS = ("rds", "sqs", "lambda", "eks_cluster", "eks_namespace")


class OntologyError(ValueError):
    """The ontology file is invalid; the message names the entry and what to fix."""


@dataclass(frozen=True)
class Feed:
    id: str
    provider: str
    name: str
    staleness_sla_s: int
    latency_ms: float
    messages_per_min: int

    @property
    def entity_id(self) -> str:
        return f"feed:{self.id}"


@dataclass(frozen=True)
class Resource:
    id: str
    kind: str
    name: str
    attrs: dict[str, Any] = field(default_factory=dict, hash=False, compare=False)

    @property
    def entity_id(self) -> str:
        return self.id

    @property
    def cluster(self) -> str | None:
        return self.attrs.get("cluster")


@dataclass(frozen=True)
class Stage:
    asset_class: str
    job: str
    id: str
    type: str
    depends_on: tuple[str, ...]
    resources: tuple[str, ...]
    minutes: float

    @property
    def entity_id(self) -> str:
        return stage_entity(self.asset_class, self.job, self.id)

    @property
    def reads_feeds(self) -> bool:
        """An ingest stage (type ``ingest``, or the first of its job: no ``depends_on``) reads the job's feeds."""
        return self.type == "ingest" or not self.depends_on


@dataclass(frozen=True)
class Job:
    asset_class: str
    id: str
    name: str
    schedule: str
    sla_minutes: int
    feeds: tuple[str, ...]
    records: int
    stages: tuple[Stage, ...]

    @property
    def key(self) -> str:
        return f"{self.asset_class}.{self.id}"

    @property
    def entity_id(self) -> str:
        return job_entity(self.asset_class, self.id)

    @cached_property
    def cron(self) -> Cron:
        return Cron(self.schedule)

    def stage(self, stage_id: str) -> Stage:
        for s in self.stages:
            if s.id == stage_id:
                return s
        raise KeyError(f"job {self.key} has no stage {stage_id!r}")

    def topo_stages(self) -> list[Stage]:
        """Stages in dependency order (stable by declaration)."""
        done: list[Stage] = []
        seen: set[str] = set()
        pending = list(self.stages)
        while pending:
            progressed = False
            for s in list(pending):
                if all(d in seen for d in s.depends_on):
                    done.append(s)
                    seen.add(s.id)
                    pending.remove(s)
                    progressed = True
            if not progressed:
                raise OntologyError(
                    f"jobs[{self.key}].stages: dependency cycle among {[s.id for s in pending]}"
                )
        return done


@dataclass(frozen=True)
class Ontology:
    asset_classes: dict[str, str]
    feeds: dict[str, Feed]
    resources: dict[str, Resource]
    jobs: dict[str, Job]
    source: str = ""
    # other words people use for an entity, by entity id (asset_class:<id>, job:<ac>.<id>, feed:<id>, a
    # resource id, provider:<id>, stage_type:<type>): the vocabulary of natural-language questions
    synonyms: dict[str, tuple[str, ...]] = field(default_factory=dict, hash=False, compare=False)
    # incident kind -> what on-call does first (the runbook section; "unknown" for no kind)
    runbook: dict[str, tuple[str, ...]] = field(default_factory=dict, hash=False, compare=False)

    def remediation(self, kind: str) -> list[str]:
        """The runbook's steps for an incident kind (those for "unknown" when the kind has none)."""
        return list(self.runbook.get(kind) or self.runbook.get("unknown") or ())

    def job(self, key: str) -> Job:
        try:
            return self.jobs[key]
        except KeyError:
            raise KeyError(f"no job {key!r}; known: {', '.join(sorted(self.jobs))}") from None

    @property
    def stages(self) -> list[Stage]:
        return [s for j in self.jobs.values() for s in j.stages]

    def jobs_needing_feed(self, feed_id: str) -> list[Job]:
        return [j for j in self.jobs.values() if feed_id in j.feeds]

    def stages_using(self, resource_id: str) -> list[Stage]:
        return [s for s in self.stages if resource_id in s.resources]

    def entity_ids(self) -> list[str]:
        ids = [f"asset_class:{a}" for a in self.asset_classes]
        ids += [f.entity_id for f in self.feeds.values()]
        ids += list(self.resources)
        for j in self.jobs.values():
            ids.append(j.entity_id)
            ids += [s.entity_id for s in j.stages]
        return ids

    def dependency_edges(self, *, ingest_reads_feeds: bool = True) -> list[tuple[str, str]]:
        """(source, target) = source depends on target: the graph detection and RCA walk.

        A job depends on its feeds and its stages; a stage on the stages it waits for (``depends_on``) and
        the resources it uses; an EKS namespace on its cluster. With ``ingest_reads_feeds`` (default) the
        stages that read the job's feeds (:attr:`Stage.reads_feeds`) also depend on those feeds, so a feed
        fault explains the slow or failed ingest stage and, through the stage DAG, the stages after it.
        """
        edges: list[tuple[str, str]] = []
        for j in self.jobs.values():
            feeds = [self.feeds[f].entity_id for f in j.feeds]
            edges += [(j.entity_id, f) for f in feeds]
            for s in j.stages:
                edges.append((j.entity_id, s.entity_id))
                edges += [(s.entity_id, stage_entity(j.asset_class, j.id, d)) for d in s.depends_on]
                edges += [(s.entity_id, r) for r in s.resources]
                if ingest_reads_feeds and s.reads_feeds:
                    edges += [(s.entity_id, f) for f in feeds]
        for r in self.resources.values():
            if r.kind == "eks_namespace":
                edges.append((r.id, f"eks:{r.cluster}"))
        return list(dict.fromkeys(edges))

    def max_connections(self) -> dict[str, float]:
        """Per rds resource that declares it, its max_connections (``{"rds:orders-db": 400.0, ...}``)."""
        return {
            r.id: float(r.attrs["max_connections"])
            for r in self.resources.values()
            if r.kind == "rds" and r.attrs.get("max_connections")
        }

    def staleness_slas(self) -> dict[str, float]:
        """Per feed entity, its staleness SLA in seconds (``{"feed:cme-mdp": 30.0, ...}``)."""
        return {f.entity_id: float(f.staleness_sla_s) for f in self.feeds.values()}


def _number(value: Any, where: str, *, minimum: float, exclusive: bool = False, whole: bool = False) -> float:
    """A finite number from the YAML at ``where`` (above ``minimum``), or an OntologyError naming it."""
    if isinstance(value, bool) or not isinstance(value, (int, float)):
        raise OntologyError(f"{where}: {value!r} is not a number; write digits, e.g. 8")
    v = float(value)
    if not math.isfinite(v) or abs(v) > 1e15:
        raise OntologyError(f"{where}: {value!r} is not a finite number of reasonable size")
    if v < minimum or (exclusive and v == minimum):
        raise OntologyError(f"{where}: {value!r} must be {'more than' if exclusive else 'at least'} {minimum:g}")
    if whole and not v.is_integer():
        raise OntologyError(f"{where}: {value!r} must be a whole number")
    return v


def _require(entry: dict[str, Any], keys: Iterable[str], where: str) -> None:
    if not isinstance(entry, dict):
        raise OntologyError(f"{where}: expected a mapping, got {type(entry).__name__}")
    missing = [k for k in keys if k not in entry]
    if missing:
        raise OntologyError(f"{where}: missing {', '.join(missing)}")


def parse_ontology(doc: dict[str, Any], source: str = "") -> Ontology:
    """Build and validate an :class:`Ontology` from a YAML-shaped dict."""
    if not isinstance(doc, dict):
        raise OntologyError(f"{source or 'ontology'}: top level must be a mapping")
    for top in ("asset_classes", "feeds", "resources", "jobs"):
        if not isinstance(doc.get(top), list) or not doc[top]:
            raise OntologyError(f"{top}: must be a non-empty list")
    acs: dict[str, str] = {}
    for i, a in enumerate(doc["asset_classes"]):
        _require(a, ("id", "name"), f"asset_classes[{i}]")
        if a["id"] not in ASSET_CLASSES:
            raise OntologyError(f"asset_classes[{a['id']}]: id must be one of {', '.join(ASSET_CLASSES)}")
        if a["id"] in acs:
            raise OntologyError(f"asset_classes[{a['id']}]: duplicate id")
        acs[a["id"]] = str(a["name"])
    feeds: dict[str, Feed] = {}
    for i, f in enumerate(doc["feeds"]):
        _require(f, ("id", "provider", "name", "staleness_sla_s"), f"feeds[{i}]")
        fid = str(f["id"])
        if not _FEED_ID.match(fid):
            raise OntologyError(f"feeds[{fid}]: id must be lower-case a-z, 0-9, '-' or '_'")
        if fid in feeds:
            raise OntologyError(f"feeds[{fid}]: duplicate id")
        if int(f["staleness_sla_s"]) <= 0:
            raise OntologyError(f"feeds[{fid}].staleness_sla_s: must be a positive number of seconds")
        feeds[fid] = Feed(
            fid,
            str(f["provider"]),
            str(f["name"]),
            int(f["staleness_sla_s"]),
            float(f.get("latency_ms", 50)),
            int(f.get("messages_per_min", 1000)),
        )
    res: dict[str, Resource] = {}
    for i, r in enumerate(doc["resources"]):
        _require(r, ("id", "kind", "name"), f"resources[{i}]")
        rid, kind = str(r["id"]), str(r["kind"])
        if kind not in RESOURCE_KINDS:
            raise OntologyError(f"resources[{rid}].kind: {kind!r} is not one of {', '.join(RESOURCE_KINDS)}")
        prefix = "eks" if kind.startswith("eks") else kind
        expected = (
            f"{prefix}:{r['cluster']}/{r['name']}" if kind == "eks_namespace" else f"{prefix}:{r['name']}"
        )
        if kind == "eks_namespace" and "cluster" not in r:
            raise OntologyError(f"resources[{rid}]: an eks_namespace needs its cluster")
        if rid != expected:
            raise OntologyError(f"resources[{rid}]: id must be {expected!r} for a {kind} named {r['name']!r}")
        if rid in res:
            raise OntologyError(f"resources[{rid}]: duplicate id")
        res[rid] = Resource(
            rid, kind, str(r["name"]), {k: v for k, v in r.items() if k not in ("id", "kind", "name")}
        )
    for r in res.values():
        if r.kind == "eks_namespace" and f"eks:{r.cluster}" not in res:
            raise OntologyError(f"resources[{r.id}].cluster: no eks_cluster resource 'eks:{r.cluster}'")
    jobs: dict[str, Job] = {}
    for i, j in enumerate(doc["jobs"]):
        _require(j, ("asset_class", "id", "schedule", "sla_minutes", "stages"), f"jobs[{i}]")
        key = f"{j['asset_class']}.{j['id']}"
        where = f"jobs[{key}]"
        if j["asset_class"] not in acs:
            raise OntologyError(f"{where}.asset_class: {j['asset_class']!r} is not declared in asset_classes")
        if not _ID.match(str(j["id"])):
            raise OntologyError(f"{where}.id: use lower-case a-z, 0-9 and '_'")
        if key in jobs:
            raise OntologyError(f"{where}: duplicate job")
        try:
            Cron(str(j["schedule"]))
        except ValueError as e:
            raise OntologyError(f"{where}.schedule: {e}") from None
        for f in j.get("feeds") or []:
            if f not in feeds:
                raise OntologyError(f"{where}.feeds: unknown feed {f!r}; declare it under feeds")
        if not isinstance(j["stages"], list) or not j["stages"]:
            raise OntologyError(f"{where}.stages: must be a non-empty list")
        stages: list[Stage] = []
        ids: set[str] = set()
        for k, s in enumerate(j["stages"]):
            _require(s, ("id", "type"), f"{where}.stages[{k}]")
            sw = f"{where}.stages[{s['id']}]"
            if not _ID.match(str(s["id"])):
                raise OntologyError(f"{sw}.id: use lower-case a-z, 0-9 and '_'")
            if s["id"] in ids:
                raise OntologyError(f"{sw}: duplicate stage id")
            if s["type"] not in STAGE_TYPES:
                raise OntologyError(f"{sw}.type: {s['type']!r} is not one of {', '.join(STAGE_TYPES)}")
            for d in s.get("depends_on") or []:
                if d not in ids:
                    raise OntologyError(
                        f"{sw}.depends_on: {d!r} is not a stage declared before it in this job (declare stages in dependency order)"
                    )
            for r in s.get("resources") or []:
                if r not in res:
                    raise OntologyError(f"{sw}.resources: unknown resource {r!r}; declare it under resources")
            ids.add(s["id"])
            stages.append(
                Stage(
                    j["asset_class"],
                    j["id"],
                    s["id"],
                    s["type"],
                    tuple(s.get("depends_on") or ()),
                    tuple(s.get("resources") or ()),
                    _number(s.get("minutes", 5), f"{sw}.minutes", minimum=0.0, exclusive=True),
                )
            )
        jobs[key] = Job(
            j["asset_class"],
            j["id"],
            str(j.get("name", key)),
            str(j["schedule"]),
            int(_number(j["sla_minutes"], f"{where}.sla_minutes", minimum=0.0, exclusive=True, whole=True)),
            tuple(j.get("feeds") or ()),
            int(_number(j.get("records", 10000), f"{where}.records", minimum=0.0, whole=True)),
            tuple(stages),
        )
    return Ontology(
        acs, feeds, res, jobs, source, synonyms=_synonyms(doc, acs, feeds, res, jobs), runbook=_runbook(doc)
    )


def _synonyms(
    doc: dict[str, Any], acs: dict[str, str], feeds: dict[str, Feed], res: dict[str, Resource], jobs: dict[str, Job]
) -> dict[str, tuple[str, ...]]:
    """Synonyms from each entry's optional ``synonyms`` list and the top-level ``synonyms`` mapping."""
    out: dict[str, list[str]] = {}

    def add(entity: str, words: Any, where: str) -> None:
        if words is None:
            return
        if not isinstance(words, list) or not all(isinstance(w, str) and w.strip() for w in words):
            raise OntologyError(f"{where}.synonyms: must be a list of non-empty strings")
        out.setdefault(entity, []).extend(w.strip() for w in words)

    for a in doc["asset_classes"]:
        add(f"asset_class:{a['id']}", a.get("synonyms"), f"asset_classes[{a['id']}]")
    for f in doc["feeds"]:
        add(f"feed:{f['id']}", f.get("synonyms"), f"feeds[{f['id']}]")
    for r in doc["resources"]:
        add(str(r["id"]), r.get("synonyms"), f"resources[{r['id']}]")
    for j in doc["jobs"]:
        add(f"job:{j['asset_class']}.{j['id']}", j.get("synonyms"), f"jobs[{j['asset_class']}.{j['id']}]")
    top = doc.get("synonyms") or {}
    if not isinstance(top, dict):
        raise OntologyError("synonyms: must be a mapping of entity id to a list of words")
    providers = {f.provider for f in feeds.values()}
    stage_types = {s.type for j in jobs.values() for s in j.stages}
    for entity, words in top.items():
        kind, _, name = str(entity).partition(":")
        known = (
            (kind == "provider" and name in providers)
            or (kind == "stage_type" and name in stage_types)
            or (kind == "asset_class" and name in acs)
            or (kind == "feed" and name in feeds)
            or (kind == "job" and name in jobs)
            or entity in res
        )
        if not known:
            raise OntologyError(
                f"synonyms[{entity}]: not an entity of the ontology (use provider:<id>, stage_type:<type>, "
                "asset_class:<id>, feed:<id>, job:<asset_class>.<id> or a resource id)"
            )
        add(str(entity), words, f"synonyms[{entity}]")
    return {k: tuple(v) for k, v in out.items()}


def _runbook(doc: dict[str, Any]) -> dict[str, tuple[str, ...]]:
    """The runbook section: incident kind -> what on-call does first."""
    runbook: dict[str, tuple[str, ...]] = {}
    rb = doc.get("runbook") or {}
    if not isinstance(rb, dict):
        raise OntologyError("runbook: must be a mapping of incident kind -> list of steps")
    for kind, steps in rb.items():
        if kind not in (*INCIDENT_KINDS, "unknown"):
            raise OntologyError(
                f"runbook[{kind}]: not an incident kind; use one of {', '.join(INCIDENT_KINDS)} or unknown"
            )
        if not isinstance(steps, list) or not steps or not all(isinstance(x, str) and x.strip() for x in steps):
            raise OntologyError(f"runbook[{kind}]: must be a non-empty list of steps (text)")
        runbook[kind] = tuple(x.strip() for x in steps)
    return runbook


def default_path() -> Path:
    return Path(str(resources.files("cms_dagster.domain") / "estate.yaml"))


def load_ontology(path: str | Path | None = None) -> Ontology:
    """Load the ontology from ``path`` (callers pass ``settings.domain_file``, ``CMS_DOMAIN_FILE``), else the
    packaged default."""
    p = Path(path) if path else default_path()
    try:
        doc = yaml.safe_load(p.read_text())
    except FileNotFoundError:
        raise OntologyError(f"{p}: no such file (set CMS_DOMAIN_FILE to your estate YAML)") from None
    except IsADirectoryError:
        raise OntologyError(f"{p}: is a directory; give the estate YAML file") from None
    except UnicodeDecodeError as e:
        raise OntologyError(f"{p}: not UTF-8 text (byte {e.start}): give the estate YAML file") from None
    except yaml.YAMLError as e:
        raise OntologyError(f"{p}: not valid YAML: {e}") from None
    return parse_ontology(doc, str(p))
