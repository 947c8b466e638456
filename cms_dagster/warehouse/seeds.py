"""Export the ontology (``cms_dagster/domain``) as dbt seed CSVs, so the warehouse joins against the same
asset classes, jobs, sub-stages, feeds and resources that the simulator, detection and RCA read.

``cms domain export-seeds`` writes them into ``dbt_project/seeds/``; the generated files are committed and
a test checks that they equal a fresh export. Every CSV is deterministic (rows sorted, ``\\n`` line ends).
"""

from __future__ import annotations

import csv
import io
from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path

from cms_dagster.domain.model import Job, Ontology

SEED_NAMES = (
    "asset_classes",
    "jobs",
    "stages",
    "stage_dependencies",
    "feeds",
    "job_feeds",
    "resources",
    "stage_resources",
)


@dataclass(frozen=True)
class SeedTable:
    name: str
    header: tuple[str, ...]
    rows: list[tuple[object, ...]]

    def to_csv(self) -> str:
        buf = io.StringIO()
        w = csv.writer(buf, lineterminator="\n")
        w.writerow(self.header)
        for row in self.rows:
            w.writerow(["" if v is None else _fmt(v) for v in row])
        return buf.getvalue()


def _fmt(v: object) -> str:
    if isinstance(v, bool):
        return "true" if v else "false"
    if isinstance(v, float) and v.is_integer():
        return str(int(v))
    return str(v)


def stage_depths(job: Job) -> dict[str, int]:
    """Depth of each stage in its job's DAG: 0 for stages without dependencies, else 1 + deepest parent."""
    depth: dict[str, int] = {}
    for s in job.topo_stages():
        depth[s.id] = 1 + max((depth[d] for d in s.depends_on), default=-1)
    return depth


def critical_path_minutes(job: Job) -> float:
    """Expected wall-clock minutes of a run: the longest path through the stage DAG by expected minutes."""
    finish: dict[str, float] = {}
    for s in job.topo_stages():
        finish[s.id] = s.minutes + max((finish[d] for d in s.depends_on), default=0.0)
    return max(finish.values())


def seed_tables(ont: Ontology) -> dict[str, SeedTable]:
    """The eight seed tables of the ontology, keyed by seed name."""
    jobs = sorted(ont.jobs.values(), key=lambda j: j.key)
    terminal: dict[str, set[str]] = {}
    for j in jobs:
        needed = {d for s in j.stages for d in s.depends_on}
        terminal[j.key] = {s.id for s in j.stages if s.id not in needed}

    tables = [
        SeedTable(
            "asset_classes",
            ("asset_class_id", "asset_class_name", "entity_id"),
            [(a, name, f"asset_class:{a}") for a, name in sorted(ont.asset_classes.items())],
        ),
        SeedTable(
            "jobs",
            (
                "job_key",
                "asset_class_id",
                "job_id",
                "job_name",
                "schedule_cron",
                "sla_minutes",
                "expected_records",
                "expected_minutes",
                "stage_count",
                "entity_id",
            ),
            [
                (
                    j.key,
                    j.asset_class,
                    j.id,
                    j.name,
                    j.schedule,
                    j.sla_minutes,
                    j.records,
                    critical_path_minutes(j),
                    len(j.stages),
                    j.entity_id,
                )
                for j in jobs
            ],
        ),
        SeedTable(
            "stages",
            (
                "stage_key",
                "job_key",
                "asset_class_id",
                "job_id",
                "stage_id",
                "stage_type",
                "expected_minutes",
                "depth",
                "depends_on",
                "is_terminal",
                "entity_id",
            ),
            [
                (
                    f"{j.key}.{s.id}",
                    j.key,
                    j.asset_class,
                    j.id,
                    s.id,
                    s.type,
                    s.minutes,
                    stage_depths(j)[s.id],
                    ",".join(s.depends_on),
                    s.id in terminal[j.key],
                    s.entity_id,
                )
                for j in jobs
                for s in sorted(j.stages, key=lambda s: s.id)
            ],
        ),
        SeedTable(
            "stage_dependencies",
            ("job_key", "stage_key", "depends_on_stage_key", "stage_id", "depends_on_stage_id"),
            sorted(
                (j.key, f"{j.key}.{s.id}", f"{j.key}.{d}", s.id, d) for j in jobs for s in j.stages for d in s.depends_on
            ),
        ),
        SeedTable(
            "feeds",
            (
                "feed_id",
                "provider",
                "feed_name",
                "staleness_sla_s",
                "expected_latency_ms",
                "expected_messages_per_min",
                "entity_id",
            ),
            [
                (f.id, f.provider, f.name, f.staleness_sla_s, f.latency_ms, f.messages_per_min, f.entity_id)
                for f in sorted(ont.feeds.values(), key=lambda f: f.id)
            ],
        ),
        SeedTable(
            "job_feeds",
            ("job_key", "feed_id"),
            sorted((j.key, f) for j in jobs for f in j.feeds),
        ),
        SeedTable(
            "resources",
            (
                "resource_id",
                "resource_kind",
                "resource_name",
                "cluster",
                "instance_class",
                "max_connections",
                "memory_mb",
                "timeout_s",
                "nodes",
                "pods",
            ),
            [
                (
                    r.id,
                    r.kind,
                    r.name,
                    r.attrs.get("cluster"),
                    r.attrs.get("instance_class"),
                    r.attrs.get("max_connections"),
                    r.attrs.get("memory_mb"),
                    r.attrs.get("timeout_s"),
                    r.attrs.get("nodes"),
                    r.attrs.get("pods"),
                )
                for r in sorted(ont.resources.values(), key=lambda r: r.id)
            ],
        ),
        SeedTable(
            "stage_resources",
            ("stage_key", "resource_id"),
            sorted((f"{j.key}.{s.id}", r) for j in jobs for s in j.stages for r in s.resources),
        ),
    ]
    return {t.name: t for t in tables}


def export_seeds(ont: Ontology, seeds_dir: str | Path) -> list[Path]:
    """Write every seed CSV into ``seeds_dir`` (created if missing); returns the paths written."""
    out = Path(seeds_dir)
    out.mkdir(parents=True, exist_ok=True)
    written = []
    for name, table in seed_tables(ont).items():
        path = out / f"{name}.csv"
        path.write_text(table.to_csv())
        written.append(path)
    return written


def stale_seeds(ont: Ontology, seeds_dir: str | Path, names: Sequence[str] = SEED_NAMES) -> list[str]:
    """Names of the seed CSVs in ``seeds_dir`` that differ from a fresh export (missing counts as stale)."""
    tables = seed_tables(ont)
    stale = []
    for name in names:
        path = Path(seeds_dir) / f"{name}.csv"
        if not path.exists() or path.read_text() != tables[name].to_csv():
            stale.append(name)
    return stale
