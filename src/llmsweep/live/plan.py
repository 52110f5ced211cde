"""The run's plan: what the workflow was started with (its validated config, its
deployments and sweep points) and which process drives it. The Snakefile's onstart hook
writes it, so a run started anywhere (a terminal, a batch job, the web front end) can be
watched from its files alone."""

from __future__ import annotations

import os
import socket
import time

from llmsweep import deployments
from llmsweep.loadgen import patterns, sweep
from llmsweep.paths import RunPaths
from llmsweep.procs import pid_alive, start_time
from llmsweep.util import read_json, write_json_atomic

# The driver's heartbeat is touched every 5 s (driver.keep_heartbeat): a minute without one
# means it is gone.
HEARTBEAT_STALE_S = 60.0
POINT_KEYS = ("deployment", "model", "engine", "pattern", *patterns.LEVEL_KEYS, "repeat", "load")


def write_plan(paths: RunPaths, cfg: dict) -> dict:
    """Write RunPaths.run_plan for the validated config `cfg`, this process as the driver."""
    found = deployments.expand(cfg)
    pid = os.getpid()
    plan = {
        "run": paths.run,
        "started_at": time.time(),
        "driver": {"pid": pid, "pid_start": start_time(pid), "host": socket.gethostname()},
        "deployments": {d["slug"]: d["label"] for d in found},
        "points": [
            {**{k: p.get(k) for k in POINT_KEYS}, "describe": sweep.describe_load(p)}
            for p in sweep.sweep_points(cfg, found)
        ],
        "config": cfg,
    }
    write_json_atomic(paths.run_plan, plan)
    return plan


def read_plan(paths: RunPaths) -> dict | None:
    """The run's plan, or None for a run started before plans were written (or none)."""
    try:
        return read_json(paths.run_plan)
    except (OSError, ValueError):
        return None


def driver_state(plan: dict | None, paths: RunPaths) -> str:
    """'running' while the plan's driver runs, 'gone' when it does not, 'unknown' without a
    plan. On this host its PID says; a driver on another host (a batch job) is judged by
    its heartbeat file (RunPaths.driver_heartbeat, touched every few seconds)."""
    driver = (plan or {}).get("driver")
    if not driver:
        return "unknown"
    if driver.get("host") == socket.gethostname():
        return "running" if pid_alive(driver["pid"], driver.get("pid_start")) else "gone"
    try:
        beat = paths.driver_heartbeat.stat().st_mtime
    except OSError:
        return "unknown"
    return "running" if time.time() - beat <= HEARTBEAT_STALE_S else "gone"
