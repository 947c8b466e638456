"""Send simulated batch runs through the Python SDK to a running receiver (the demo's SDK path).

The simulator leaves the runs of ``--via-sdk`` asset classes out of the raw zone and archives them as SDK
events; this replays them with their simulated times through ``cms_sdk`` (one client per asset class, as
an application team would run it), so they reach the raw zone through the receiver exactly once.
"""

from __future__ import annotations

import datetime as dt
from collections.abc import Callable, Iterable
from typing import Any


def _t(v: Any) -> dt.datetime:
    return v if isinstance(v, dt.datetime) else dt.datetime.fromisoformat(str(v).replace("Z", "+00:00"))


def replay_events(
    events: Iterable[dict[str, Any]],
    endpoint: str,
    api_key: str,
    environment: str = "demo",
    progress: Callable[[str], None] = lambda _m: None,
) -> dict[str, Any]:
    """Replay ``events`` (from :func:`cms_dagster.simulate.run.run_events`) and wait until all are acknowledged."""
    from cms_sdk import CmsClient

    clients: dict[str, Any] = {}
    runs: dict[str, Any] = {}
    stages: dict[tuple, Any] = {}
    n = 0
    for e in events:
        ac = e["asset_class"]
        client = clients.get(ac)
        if client is None:
            client = clients[ac] = CmsClient(
                endpoint=endpoint,
                api_key=api_key,
                service_name=f"batch-{ac}",
                environment=environment,
                environ={},
                spool_dir="off",
                max_queue_size=500_000,
                max_batch_size=5_000,
            )
        op, t = e["op"], _t(e["time"])
        if op == "run_start":
            runs[e["run_id"]] = client.run(
                ac, e["job"], run_id=e["run_id"], scheduled_start=e["scheduled_start"], time=t
            )
        elif op == "stage_start":
            stages[(e["run_id"], e["stage"], e["attempt"])] = runs[e["run_id"]].stage(
                e["stage"], type=e["stage_type"], depends_on=e["depends_on"], attempt=e["attempt"], time=t
            )
        elif op == "stage_end":
            st = stages.pop((e["run_id"], e["stage"], e["attempt"]))
            st.records(int(e["records"]))
            st.fail(e["error_type"], time=t) if e["status"] == "failed" else st.finish(time=t)
        elif op == "run_end":
            run = runs.pop(e["run_id"])
            run.records(int(e["records"])).bytes(int(e["bytes"]))
            run.fail(e["error_type"], time=t) if e["status"] == "failed" else run.finish(time=t)
        n += 1
    stats: dict[str, Any] = {"events": n, "clients": len(clients), "dropped": 0, "exported": 0}
    for client in clients.values():
        if not client.flush(timeout=120):
            raise RuntimeError("the receiver did not acknowledge every batch within 120 s")
        s = client.stats()
        stats["dropped"] += int(s.get("dropped", 0))
        stats["exported"] += int(s.get("exported", 0))
        client.close()
    if stats["dropped"]:
        raise RuntimeError(f"the SDK dropped {stats['dropped']} point(s); raise max_queue_size")
    progress(f"sent {n:,} SDK events for {len(clients)} asset class(es) through the receiver")
    return stats


DEMO_API_KEY = "demo-key-not-secret"


def replay_through_receiver(
    events: Iterable[dict[str, Any]],
    raw_url: str,
    environment: str = "demo",
    progress: Callable[[str], None] = lambda _m: None,
) -> dict[str, Any]:
    """Start an OTLP/HTTP receiver writing to ``raw_url``, replay ``events`` through the SDK to it (see
    :func:`replay_events`) and stop it, flushing what it holds: the production path, SDK -> receiver -> raw
    zone (receipt hour), in one call."""
    from cms_dagster.ingest.demo import serve_in_background

    server = serve_in_background(raw_url, api_keys={DEMO_API_KEY: "demo"})
    try:
        return replay_events(events, server.url, DEMO_API_KEY, environment, progress)
    finally:
        server.stop()
