"""Processing many hours (a back-fill) in two processes gives what processing them one by one gives."""

from __future__ import annotations

import datetime as dt
from pathlib import Path

import orjson
import pytest
from ingest_helpers import T0, batch_request

from cms_dagster.lake import Lake, Zone, gzip_bytes, raw_key
from cms_dagster.lake.processing import process_hours

HOUR_NS = 3_600 * 1_000_000_000


def lake_with_raw_hours(root: Path, hours: int) -> tuple[Lake, list[tuple[dt.date, int]]]:
    lake = Lake(Zone(str(root / "raw")), Zone(str(root / "processed")), Zone(str(root / "archive")))
    first = dt.datetime.fromtimestamp(T0 // 1_000_000_000, dt.timezone.utc).replace(minute=0, second=0)
    out = []
    for h in range(hours):
        when = first + dt.timedelta(hours=h)
        lines = [orjson.dumps(batch_request(2 + h % 3, run=f"r{h}", t0=T0 + h * HOUR_NS, bad=h % 2))]
        if h == 3:
            lines.append(b'{"resourceMetrics": 5}')  # a line processing rejects
        lake.raw.put(raw_key("sdk", when, f"{when:%Y%m%dT%H%M%SZ}-test-{h}"), gzip_bytes(b"\n".join(lines) + b"\n"))
        if h == 5:  # a batch that cannot be read at all
            lake.raw.put(raw_key("sdk", when, f"{when:%Y%m%dT%H%M%SZ}-broken"), b"not gzip")
        out.append((when.date(), when.hour))
    return lake, out


def files(zone: Zone) -> dict[str, bytes]:
    return {k: zone.get(k) for k in zone.list("")}


@pytest.mark.slow  # starts two Python processes
def test_hours_processed_in_two_processes_equal_one_by_one(tmp_path: Path) -> None:
    one_lake, hours = lake_with_raw_hours(tmp_path / "one", 8)
    two_lake, _ = lake_with_raw_hours(tmp_path / "two", 8)
    one = process_hours(one_lake, hours, workers=1)
    two = process_hours(two_lake, hours, workers=2)
    assert one == two
    assert one.points > 0 and one.rejected_points == 4 and one.rejected_lines == 1 and one.quarantined_files == 1
    assert len(files(one_lake.processed)) == 8 and files(one_lake.processed) == files(two_lake.processed)
    assert files(one_lake.raw) == files(two_lake.raw)  # quarantine included
