"""The words of questions, from the ontology: asset classes, jobs, stages and stage types, feeds,
providers and resources, by id, display name and synonyms (estate.yaml), normalised for matching."""

from __future__ import annotations

import re
from dataclasses import dataclass
from itertools import groupby

from cms_dagster.domain.model import Ontology

RESOURCE_KIND_WORDS = {
    "rds": ("databases", "database", "dbs", "db", "rds", "rds instances", "rds instance", "postgres"),
    "sqs": ("queues", "queue", "sqs"),
    "lambda": ("lambdas", "lambda functions", "lambda function", "lambda", "functions", "function", "serverless"),
    "eks": ("eks", "kubernetes", "k8s", "namespaces", "namespace", "pods", "pod", "clusters", "cluster", "containers"),
}

# words of questions that are never a resource's name on their own
GENERIC_WORDS = ("market data", "reporting", "data", "pricing")


def normalise(text: str) -> str:
    """Lower case, punctuation to spaces (keeping % and . in numbers), single spaces."""
    t = text.lower().replace("’", "'")
    t = re.sub(r"(?<=\w)'s\b", "", t)
    t = re.sub(r"[_/\-,;:!?()\[\]{}\"`]", " ", t)
    t = re.sub(r"(?<!\d)\.|\.(?!\d)", " ", t)
    return re.sub(r"\s+", " ", t).strip()


@dataclass(frozen=True)
class Term:
    phrase: str  # normalised words
    field: str  # asset_class | job | stage_type | feed | provider | resource | resource_kind
    value: str  # the warehouse id (job_key, feed_id, resource_id, ...)


def _plural(word: str) -> list[str]:
    return [word, word + "s"] if not word.endswith("s") else [word]


def build(ont: Ontology) -> list[Term]:
    """Every phrase that names an entity, longest first (so 'eod valuation' wins over 'valuation')."""
    terms: dict[tuple[str, str, str], Term] = {}

    def add(phrase: str, field: str, value: str) -> None:
        p = normalise(phrase)
        if p:
            terms[(p, field, value)] = Term(p, field, value)

    syn = ont.synonyms
    for ac, name in ont.asset_classes.items():
        for p in (ac, name, *syn.get(f"asset_class:{ac}", ())):
            add(p, "asset_class", ac)
    for key, job in ont.jobs.items():
        words = [job.id, job.name, key, *syn.get(job.entity_id, ())]
        ac_name = ont.asset_classes[job.asset_class].lower()
        if job.name.lower().startswith(ac_name + " "):
            words.append(job.name[len(ac_name) + 1 :])
        words += [w.replace("eod", "end of day") for w in list(words) if "eod" in w.lower()]
        words += [w.replace("end-of-day", "eod") for w in list(words) if "end-of-day" in w.lower()]
        for w in words:
            add(w, "job", key)
            add(w + " job", "job", key)
    for st in sorted({s.type for s in ont.stages}):
        for p in (*_plural(st), *syn.get(f"stage_type:{st}", ())):
            add(p, "stage_type", st)
    for fid, f in ont.feeds.items():
        words = [fid, f.name, fid.replace("-", ""), *syn.get(f.entity_id, ())]
        for w in words:
            add(w, "feed", fid)
            add(w + " feed", "feed", fid)
    for prov in sorted({f.provider for f in ont.feeds.values()}):
        for p in (prov, *syn.get(f"provider:{prov}", ())):
            add(p, "provider", prov)
    names = " ".join(normalise(x) for x in [*ont.asset_classes.values(), *(j.name for j in ont.jobs.values()), *(f.name for f in ont.feeds.values())])
    for rid, r in ont.resources.items():
        # a namespace's bare name can mean other things ("pricing", "market data"): only when it is distinct
        words = [rid, *syn.get(rid, ())]
        if r.kind != "eks_namespace" or (normalise(r.name) not in names and normalise(r.name) not in GENERIC_WORDS):
            words.append(r.name)
        if r.kind == "rds":
            base = r.name.removesuffix("-db")
            words += [f"{base} database", f"{base} db"]
        if r.kind == "sqs":
            words += [f"{r.name} queue"]
        if r.kind == "eks_namespace":
            words += [f"{r.name} namespace", f"{r.name} pods", f"{r.name} service"]
        if r.kind == "eks_cluster":
            words += [f"{r.name} cluster"]
        if r.kind == "lambda":
            words += [f"{r.name} function", f"{r.name} lambda"]
        for w in words:
            add(w, "resource", rid)
    for kind, words in RESOURCE_KIND_WORDS.items():
        for w in words:
            add(w, "resource_kind", kind)
    return sorted(terms.values(), key=lambda t: (-len(t.phrase), t.phrase, t.field, t.value))


def match(text: str, terms: list[Term]) -> tuple[list[Term], str]:
    """The terms named in ``text`` (longest first, non-overlapping) and what is left of the text."""
    t = f" {normalise(text)} "
    found: list[Term] = []
    # several terms under one phrase ("ice data": a feed and a provider) are all kept: the caller decides
    for phrase, group in groupby(terms, key=lambda x: x.phrase):
        pat = f" {phrase} "
        if pat in t:
            found += list(group)
            t = t.replace(pat, " § ")
    return found, re.sub(r"\s+", " ", t.replace("§", " ")).strip()
