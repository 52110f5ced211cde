"""The run's plan: what the workflow was started with (its validated config, its
deployments and sweep points) and which process drives it. The Snakefile's onstart hook
writes it, so a run started anywhere (a terminal, a batch job, the web front end) can be
watched from its files alone."""

from __future__ import annotations

import os
import socket
import time

from llmsweep import deployments
from llmsweep.loadgen import sweep
from llmsweep.paths import RunPaths
from llmsweep.procs import pid_alive, start_time
from llmsweep.util import read_json, write_json_atomic

POINT_KEYS = ("deployment", "model", "engine", "pattern", "clients", "rate", "repeat", "load")


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


def driver_state(plan: dict | None) -> str:
    """'running' while the plan's driver runs, 'gone' when it does not, 'elsewhere' when it
    runs on another host (its PID means nothing here), 'unknown' without a plan."""
    driver = (plan or {}).get("driver")
    if not driver:
        return "unknown"
    if driver.get("host") != socket.gethostname():
        return "elsewhere"
    return "running" if pid_alive(driver["pid"], driver.get("pid_start")) else "gone"
