"""`cms demo`: set up the embedded default, simulate the week up to now with incidents, materialize every
asset of that window, then serve the Dagster UI (webserver + daemon, so schedules and the automation sensor
keep the graph current). Running it again is safe and fast: finished steps are skipped unless their inputs
changed (or --force).

- ``build``: the simulated window, the Dagster home, the phased materialization with its progress lines;
- ``report``: the week's incidents and alerts, and where to look next;
- ``serve``: the Dagster UI and the dashboard in process groups of their own, stopped whole;
- ``cli``: the command and the order of things.
"""

from cms_dagster.demo.build import (
    CHUNK_HOURS,
    INGEST_KEYS,
    STATE_FILE,
    Progress,
    checks_run_with,
    chunks,
    fast_event_log,
    materialize_all,
    plan_phases,
    simulation_window,
)
from cms_dagster.demo.cli import register, run_demo
from cms_dagster.demo.report import show_incidents_and_alerts, where_to_look
from cms_dagster.demo.serve import PID_FILE, _group_alive, _stop_group, port_in_use, running_demo, serve

__all__ = [
    "CHUNK_HOURS",
    "INGEST_KEYS",
    "PID_FILE",
    "STATE_FILE",
    "Progress",
    "_group_alive",
    "_stop_group",
    "checks_run_with",
    "chunks",
    "fast_event_log",
    "materialize_all",
    "plan_phases",
    "port_in_use",
    "register",
    "run_demo",
    "running_demo",
    "serve",
    "show_incidents_and_alerts",
    "simulation_window",
    "where_to_look",
]
