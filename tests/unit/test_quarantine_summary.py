"""What waits in quarantine, as the asset check reports it: the reason files and each reason counted."""

from __future__ import annotations

from pathlib import Path

import orjson

from cms_dagster import lake as lake_mod
from cms_dagster.lake.processing import quarantine_summary


def test_quarantine_summary_counts_each_reason_and_lists_the_reason_files(tmp_path: Path) -> None:
    raw = lake_mod.Zone(str(tmp_path / "raw"))
    base = "quarantine/otel/metrics/source=sdk/dt=2026-11-16/hour=21"
    raw.put(f"{base}/b1.processed.reason.json", orjson.dumps({"reasons": {"bad line": 2, "no name": 1}}))
    raw.put(f"{base}/b2.received.reason.json", orjson.dumps({"reasons": {"bad line": 3, "unreadable": None}}))
    raw.put(f"{base}/b2.received.jsonl.gz", b"not a reason file")
    waiting = quarantine_summary(raw)
    assert sorted(waiting.reason_keys) == [f"{base}/b1.processed.reason.json", f"{base}/b2.received.reason.json"]
    assert waiting.reasons == {"bad line": 5, "no name": 1, "unreadable": 1}


def test_an_empty_quarantine_has_nothing_waiting(tmp_path: Path) -> None:
    waiting = quarantine_summary(lake_mod.Zone(str(tmp_path / "raw")))
    assert waiting.reason_keys == [] and waiting.reasons == {}
