"""The wiring of the code location, written down: every asset (key, group, partitions, automation condition,
checks, upstream keys), job, schedule and sensor, compared with tests/snapshots/asset_graph.json.

A change to the wiring fails this test until the snapshot is updated, so it shows up in review:

    .venv/bin/python -m pytest tests/integration/test_asset_graph_snapshot.py --snapshot-update
    git diff tests/snapshots/asset_graph.json
"""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

import dagster as dg
import pytest

SNAPSHOT = Path(__file__).resolve().parents[1] / "snapshots" / "asset_graph.json"


def _partitions(pdef: Any) -> Any:
    if pdef is None:
        return None
    if isinstance(pdef, dg.TimeWindowPartitionsDefinition):
        return {
            "kind": "time_window",
            "cron": pdef.cron_schedule,
            "start": pdef.start.isoformat(),
            "timezone": pdef.timezone,
            "format": pdef.fmt,
            "end_offset": pdef.end_offset,
        }
    if isinstance(pdef, dg.MultiPartitionsDefinition):
        return {"kind": "multi", "dimensions": {d.name: _partitions(d.partitions_def) for d in pdef.partitions_defs}}
    if isinstance(pdef, dg.StaticPartitionsDefinition):
        return {"kind": "static", "keys": pdef.get_partition_keys()}
    if isinstance(pdef, dg.DynamicPartitionsDefinition):
        return {"kind": "dynamic", "name": pdef.name}
    return {"kind": type(pdef).__name__}


def describe(defs: dg.Definitions) -> dict[str, Any]:
    """The wiring as plain data (sorted, so the JSON diff is stable)."""
    graph = defs.resolve_asset_graph()
    assets = {}
    for key in sorted(graph.get_all_asset_keys(), key=lambda k: k.to_user_string()):
        node = graph.get(key)
        cond = node.automation_condition
        assets[key.to_user_string()] = {
            "group": node.group_name,
            "materializable": node.is_materializable,
            "partitions": _partitions(node.partitions_def),
            "automation_condition": None if cond is None else cond.get_label() or type(cond).__name__,
            "upstream": sorted(k.to_user_string() for k in node.parent_keys),
            "checks": sorted(c.name for c in node.check_keys),
        }
    repo = defs.get_repository_def()
    schedules = {
        s.name: {"cron": s.cron_schedule, "job": s.job_name, "default_status": s.default_status.value}
        for s in repo.schedule_defs
    }
    sensors = {
        s.name: {
            "type": s.sensor_type.value,
            "jobs": sorted(t.job_name for t in s.targets) if s.has_jobs else [],
            "default_status": s.default_status.value,
        }
        for s in repo.sensor_defs
    }
    jobs = sorted(j.name for j in repo.get_all_jobs() if not j.name.startswith("__"))
    return {"assets": assets, "jobs": jobs, "schedules": dict(sorted(schedules.items())), "sensors": dict(sorted(sensors.items()))}


@pytest.mark.slow
def test_the_asset_graph_matches_its_snapshot(request: pytest.FixtureRequest, cms_home: Path) -> None:
    from cms_dagster.definitions import defs

    got = describe(defs())
    text = json.dumps(got, indent=2, sort_keys=False) + "\n"
    if request.config.getoption("--snapshot-update"):
        SNAPSHOT.parent.mkdir(parents=True, exist_ok=True)
        SNAPSHOT.write_text(text)
    assert SNAPSHOT.exists(), f"no {SNAPSHOT.name} yet: run pytest {__file__} --snapshot-update"
    want = json.loads(SNAPSHOT.read_text())
    assert got == want, (
        "the code location's wiring changed; if that is intended, run "
        "`pytest tests/integration/test_asset_graph_snapshot.py --snapshot-update` and review the diff"
    )
