"""The incident library: what each kind does, where it can strike, and how ``--incident`` is parsed."""

from __future__ import annotations

import datetime as dt
from dataclasses import dataclass, field

from cms_dagster.domain.model import Ontology
from cms_dagster.otel.conventions import INCIDENT_KINDS

DEFAULT_MINUTES = {
    "connection_pool_exhaustion": 60,
    "memory_leak": 240,
    "network_latency": 90,
    "delayed_market_data": 50,
    "volume_spike": 120,
    "capacity_constraint": 120,
    "job_failure": 45,
    "feed_outage": 40,
}
DESCRIPTIONS = {
    "connection_pool_exhaustion": "database connections pinned at max_connections; queries queue and time out",
    "memory_leak": "memory of a long-running service climbs until pods restart",
    "network_latency": "network latency to the data provider rises several-fold",
    "delayed_market_data": "market data arrives late: staleness grows, updates thin out",
    "volume_spike": "an unexpected surge of market-data volume",
    "capacity_constraint": "cluster capacity lost: a node fails, pods are throttled and evicted",
    "job_failure": "a critical sub-stage fails on every retry",
    "feed_outage": "the feed disconnects: no data at all",
}


@dataclass
class Incident:
    kind: str
    root_cause: str
    start: dt.datetime
    end: dt.datetime
    id: str = ""
    severity: float = 1.0
    affected_jobs: set[str] = field(default_factory=set)
    affected_stages: set[str] = field(default_factory=set)
    affected_feeds: set[str] = field(default_factory=set)
    affected_resources: set[str] = field(default_factory=set)

    def active(self, t: dt.datetime) -> bool:
        return self.start <= t < self.end

    def label(self) -> dict:
        return {
            "id": self.id,
            "kind": self.kind,
            "root_cause": self.root_cause,
            "start": iso(self.start),
            "end": iso(self.end),
            "affected_jobs": sorted(self.affected_jobs),
            "affected_stages": sorted(self.affected_stages),
            "affected_feeds": sorted(self.affected_feeds),
            "affected_resources": sorted(self.affected_resources),
            "description": DESCRIPTIONS[self.kind],
        }


def iso(t: dt.datetime) -> str:
    return t.astimezone(dt.timezone.utc).strftime("%Y-%m-%dT%H:%M:%SZ")


def parse_time(s: str) -> dt.datetime:
    t = dt.datetime.fromisoformat(s.replace("Z", "+00:00"))
    return t.replace(tzinfo=dt.timezone.utc) if t.tzinfo is None else t.astimezone(dt.timezone.utc)


def candidates(ontology: Ontology, kind: str) -> list[str]:
    """Entities an incident of ``kind`` can start at (those that some job depends on)."""
    used = {r for s in ontology.stages for r in s.resources}
    if kind == "connection_pool_exhaustion":
        return sorted(r for r in used if r.startswith("rds:"))
    if kind in ("memory_leak", "capacity_constraint"):
        return sorted(r for r in used if r.startswith("eks:") and "/" in r)
    if kind == "job_failure":
        return sorted(s.entity_id for s in ontology.stages)
    return sorted(f"feed:{f}" for f in ontology.feeds if ontology.jobs_needing_feed(f))


def validate_target(ontology: Ontology, kind: str, entity: str) -> None:
    ok = candidates(ontology, kind)
    if entity not in ok:
        raise ValueError(f"{kind} cannot start at {entity!r}; choose one of: {', '.join(ok)}")


def parse_incident_spec(spec: str, ontology: Ontology, index: int) -> Incident:
    """``KIND@ISO-TIME[,entity=ID][,minutes=N]``, e.g. ``feed_outage@2026-11-18T05:45,entity=feed:cme-mdp``."""
    head, *opts = spec.split(",")
    if "@" not in head:
        raise ValueError(f"--incident {spec!r}: expected KIND@ISO-TIME[,entity=ID][,minutes=N]")
    kind, when = head.split("@", 1)
    if kind not in INCIDENT_KINDS:
        raise ValueError(f"--incident {spec!r}: unknown kind {kind!r}; kinds: {', '.join(INCIDENT_KINDS)}")
    try:
        start = parse_time(when)
    except ValueError:
        raise ValueError(f"--incident {spec!r}: {when!r} is not an ISO-8601 time") from None
    entity, minutes = None, DEFAULT_MINUTES[kind]
    for o in opts:
        k, _, v = o.partition("=")
        if k == "entity":
            entity = v
        elif k == "minutes":
            try:
                minutes = int(v)
            except ValueError:
                raise ValueError(f"--incident {spec!r}: minutes={v!r} is not a whole number of minutes") from None
            if not 0 < minutes <= 7 * 24 * 60:
                raise ValueError(f"--incident {spec!r}: minutes={minutes} must be between 1 and 10080 (a week)")
        else:
            raise ValueError(f"--incident {spec!r}: unknown option {k!r} (use entity= or minutes=)")
    if entity is None:
        cands = candidates(ontology, kind)
        entity = cands[index % len(cands)]
    validate_target(ontology, kind, entity)
    return Incident(kind, entity, start, start + dt.timedelta(minutes=minutes))


def default_incidents(start: dt.datetime) -> list[tuple[str, str, dt.timedelta, int]]:
    """A week's handful of incidents, one of each kind, placed where batch windows feel them.

    (kind, root cause, offset from the simulation start, minutes). Each incident keeps its weekday and time
    of day whatever the start: its first occurrence at or after ``start`` (a Monday 00:00 start gives the
    offsets below as they are), so a week-long simulation from any hour holds all of them.
    """
    monday = (start - dt.timedelta(days=start.weekday())).replace(hour=0, minute=0, second=0, microsecond=0)
    out = []
    for kind, entity, offset, minutes in _week_from_monday():
        at = monday + offset
        while at < start:
            at += dt.timedelta(days=7)
        out.append((kind, entity, at - start, minutes))
    return out


def _week_from_monday() -> list[tuple[str, str, dt.timedelta, int]]:
    """The default incidents as offsets from a Monday 00:00 UTC."""
    d, h, m = dt.timedelta(days=1), dt.timedelta(hours=1), dt.timedelta(minutes=1)
    return [
        ("connection_pool_exhaustion", "rds:positions-db", 21 * h + 15 * m, 60),
        ("network_latency", "feed:bloomberg-bpipe", d + 12 * h + 50 * m, 100),
        ("memory_leak", "eks:markets-prod/risk-engine", d + 19 * h + 30 * m, 240),
        ("feed_outage", "feed:cme-mdp", 2 * d + 5 * h + 45 * m, 40),
        ("delayed_market_data", "feed:ice-data", 2 * d + 20 * h + 15 * m, 50),
        ("job_failure", "stage:equities.corporate_actions.enrichment", 3 * d + 5 * h + 55 * m, 45),
        ("volume_spike", "feed:ebs-fx", 3 * d + 21 * h + 50 * m, 120),
        ("capacity_constraint", "eks:markets-prod/pricing", 4 * d + 21 * h + 20 * m, 120),
    ]
