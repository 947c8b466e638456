"""Serving the demo: the Dagster UI (`dagster dev`: webserver + daemon) and the dashboard, each in a process
group of its own, stopped whole on Ctrl-C or SIGTERM; one demo per CMS_HOME, and a busy port refused."""

from __future__ import annotations

import argparse
import contextlib
import os
import signal
import socket
import subprocess
import sys
import time
from pathlib import Path
from typing import Any

import orjson

from cms_dagster import settings as settings_mod
from cms_dagster.demo.build import _say

PID_FILE = "demo.pid"


def port_in_use(host: str, port: int) -> bool:
    """True when something already listens on host:port."""
    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as sock:
        sock.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
        try:
            sock.bind((host, port))
        except OSError:
            return True
    return False


def _pid_alive(pid: int) -> bool:
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    except PermissionError:
        return True
    return True


def running_demo(home: Path) -> dict[str, Any] | None:
    """The demo already running from this CMS_HOME (pid, url), if any; a stale pid file is ignored."""
    path = home / PID_FILE
    if not path.exists():
        return None
    try:
        info = orjson.loads(path.read_bytes())
    except orjson.JSONDecodeError:
        return None
    if info.get("pid") and info["pid"] != os.getpid() and _pid_alive(int(info["pid"])):
        return info
    return None


def _tail(path: Path, n: int) -> str:
    try:
        return "\n".join(path.read_text(errors="replace").splitlines()[-n:])
    except FileNotFoundError:
        return ""


def _default_signals() -> None:
    """In a child before it runs its program: SIGINT and SIGTERM stop it. A demo started in the background
    (``cms demo &``) inherits SIGINT ignored, and an ignored signal stays ignored across exec; `dagster dev`
    then copies SIGINT's disposition to SIGTERM, so it ignored the SIGTERM that stops it and was only killed
    after the grace period, with no chance to stop its webserver, daemon and runs cleanly."""
    for sig in (signal.SIGINT, signal.SIGTERM):
        signal.signal(sig, signal.SIG_DFL)


def spawn(cmd: list[str], **options: Any) -> subprocess.Popen:
    """Start ``cmd`` in a process group of its own that SIGINT and SIGTERM stop (:func:`_stop_group`)."""
    return subprocess.Popen(cmd, start_new_session=True, preexec_fn=_default_signals, **options)


def serve(args: argparse.Namespace, project_dir: Path, s: settings_mod.Settings) -> int:
    """Run `dagster dev` (webserver + daemon) in its own process group until Ctrl-C or SIGTERM, then stop
    the whole group. Its logs go to $CMS_HOME/logs/dagster.log."""
    exe = Path(sys.executable).parent / "dagster"
    cmd = [str(exe), "dev", "-w", str(project_dir / "workspace.yaml"), "-h", args.host, "-p", str(args.port)]
    log_path = s.home / "logs" / "dagster.log"
    log_path.parent.mkdir(parents=True, exist_ok=True)
    url = f"http://{args.host}:{args.port}"
    from cms_dagster.dashboard.cli import streamlit_command

    with open(log_path, "ab") as log, open(s.home / "logs" / "dashboard.log", "ab") as dash_log:
        # cwd: DAGSTER_HOME, so no dagster.yaml is found in the working directory beside the instance's own
        proc = spawn(
            cmd,
            cwd=s.dagster_home,
            # dbt on PATH: `dagster dev` prepares the dbt project with it when the code location loads
            env=settings_mod.process_environment({"DO_NOT_TRACK": "1"}, path_first=str(exe.parent)),
            stdout=log,
            stderr=subprocess.STDOUT,
        )
        dashboard = spawn(
            streamlit_command(args.host, args.dashboard_port),
            env=settings_mod.process_environment(),
            stdout=dash_log,
            stderr=subprocess.STDOUT,
        )
    stopping = {"signal": None}

    def stop(signum: int, _frame: Any) -> None:
        stopping["signal"] = signum
        _stop_group(dashboard, grace=5)
        _stop_group(proc)

    previous = {sig: signal.signal(sig, stop) for sig in (signal.SIGINT, signal.SIGTERM)}
    _say(f"serving the Dagster UI on {url} (webserver + daemon: schedules and automation run); logs in {log_path}")
    _say(f"serving the dashboard on http://{args.host}:{args.dashboard_port}")
    _say("Ctrl-C to stop")
    try:
        code = proc.wait()
    finally:
        for sig, handler in previous.items():
            signal.signal(sig, handler)
        _stop_group(dashboard, grace=5)
        _stop_group(proc)
    if stopping["signal"] is not None:
        _say("stopped")
        return 0
    print(f"cms demo: dagster dev exited with {code}; the end of {log_path}:", file=sys.stderr)
    print(_tail(log_path, 20), file=sys.stderr)
    return 1


def _group_alive(pgid: int) -> bool:
    """Whether a process of group ``pgid`` still runs. An exited child that nobody has reaped yet (a zombie:
    its parent is gone and the init process has not collected it) runs nothing, but still answers
    ``killpg(pgid, 0)``; on Linux /proc tells them apart."""
    proc = Path("/proc")
    if not (proc / "self" / "stat").exists():
        try:
            os.killpg(pgid, 0)
        except ProcessLookupError:
            return False
        return True
    for stat in proc.glob("[0-9]*/stat"):
        try:
            fields = stat.read_text().rsplit(")", 1)[1].split()
        except (OSError, IndexError):
            continue  # exited while we looked
        if int(fields[2]) == pgid and fields[0] != "Z":
            return True
    return False


def _stop_group(proc: subprocess.Popen, grace: float = 20.0) -> None:
    """SIGTERM to `dagster dev` and everything it started (webserver, daemon, code server), SIGKILL after
    ``grace`` seconds."""
    try:
        pgid = os.getpgid(proc.pid)
    except ProcessLookupError:
        return
    with contextlib.suppress(ProcessLookupError):
        os.killpg(pgid, signal.SIGTERM)
    deadline = time.time() + grace
    while time.time() < deadline:
        proc.poll()
        if not _group_alive(pgid):
            break
        time.sleep(0.2)
    else:
        with contextlib.suppress(ProcessLookupError):
            os.killpg(pgid, signal.SIGKILL)
    with contextlib.suppress(subprocess.TimeoutExpired):
        proc.wait(timeout=5)
