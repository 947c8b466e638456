"""Replay a conformance vector (sdks/conformance/vectors/*.json) through the Python SDK's public API.

    .venv/bin/python sdks/python/conformance.py sdks/conformance/vectors/01_run_success.json

Prints the one ExportMetricsServiceRequest the calls produce (OTLP/JSON) on stdout; exits 1 with the
reason on stderr for an op it does not know. See sdks/conformance/README.md.
"""

from __future__ import annotations

import json
import sys
from pathlib import Path
from typing import Any, Dict

sys.path.insert(0, str(Path(__file__).resolve().parent / "src"))  # runnable without installing cms_sdk

from cms_sdk import CmsClient, ManualClock  # noqa: E402

_OPTIONAL = ("run_id", "scheduled_start")


def replay(vector: Dict[str, Any]) -> Dict[str, Any]:
    """The request the vector's calls produce through the SDK (nothing is sent)."""
    res = vector["resource"]
    clock = ManualClock(0)
    client = CmsClient(
        service_name=res["service_name"],
        environment=res["environment"],
        service_version=res.get("service_version"),
        environ={},
        clock=clock,
        start=False,
        self_metrics=False,
        spool_dir="off",
        max_queue_size=1_000_000,
    )
    runs: Dict[str, Any] = {}
    stages: Dict[tuple, Any] = {}
    feeds: Dict[tuple, Any] = {}
    for call in vector["calls"]:
        op = call["op"]
        if "time" in call:
            clock.set(call["time"])
        if op == "run_start":
            kw = {k: call[k] for k in _OPTIONAL if call.get(k) is not None}
            runs[call["run"]] = client.run(call["asset_class"], call["job"], **kw)
        elif op in ("run_set", "run_add"):
            run = runs[call["run"]]
            if call.get("records") is not None:
                (run.records if op == "run_set" else run.add_records)(call["records"])
            if call.get("bytes") is not None:
                (run.bytes if op == "run_set" else run.add_bytes)(call["bytes"])
        elif op == "run_finish":
            runs[call["run"]].finish()
        elif op == "run_fail":
            runs[call["run"]].fail(call["error_type"])
        elif op == "run_close":
            runs[call["run"]].__exit__(None, None, None)
        elif op == "stage_start":
            kw = {}
            if call.get("stage_type") is not None:
                kw["type"] = call["stage_type"]
            if call.get("depends_on") is not None:
                kw["depends_on"] = call["depends_on"]
            if call.get("attempt") is not None:
                kw["attempt"] = call["attempt"]
            stages[(call["run"], call["stage"])] = runs[call["run"]].stage(call["stage"], **kw)
        elif op in ("stage_set", "stage_add"):
            st = stages[(call["run"], call["stage"])]
            (st.records if op == "stage_set" else st.add_records)(call["records"])
        elif op == "stage_finish":
            stages[(call["run"], call["stage"])].finish()
        elif op == "stage_fail":
            stages[(call["run"], call["stage"])].fail(call["error_type"])
        elif op == "stage_close":
            stages[(call["run"], call["stage"])].__exit__(None, None, None)
        elif op == "heartbeat":
            key = (call["feed"], call["provider"])
            feed = feeds.get(key) or feeds.setdefault(key, client.feed(call["feed"], provider=call["provider"]))
            kw = {
                k: call[k]
                for k in ("latency_ms", "staleness_s", "messages", "missing_fields", "invalid_values", "interval_s")
                if call.get(k) is not None
            }
            feed.heartbeat(call["up"], **kw)
        elif op in ("gauge", "counter"):
            kw = {}
            if call.get("unit") is not None:
                kw["unit"] = call["unit"]
            if call.get("attributes") is not None:
                kw["attributes"] = call["attributes"]
            if op == "counter" and call.get("start_time") is not None:
                kw["start_time"] = call["start_time"]
            getattr(client, op)(call["name"], call["value"], **kw)
        else:
            raise ValueError(f"unknown op {op!r} in vector {vector.get('name')!r}")
    return client.drain()


def main(argv: list[str]) -> int:
    if len(argv) != 1:
        print("usage: conformance.py VECTOR.json", file=sys.stderr)
        return 2
    try:
        vector = json.loads(Path(argv[0]).read_text())
        request = replay(vector)
    except (ValueError, KeyError, OSError) as e:
        print(f"conformance.py: {type(e).__name__}: {e}", file=sys.stderr)
        return 1
    print(json.dumps(request, indent=2))
    return 0


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
