"""How far a run has come: its state, the sweep points done and the one running, whether its
report is there, the end of the driver's log, and the live picture (llmsweep.live: each
point's figures, the running ones' live figures, the ETA). A run launched from here is
judged by its launch folder; another one (started in a terminal or a batch job) by the
plan its workflow wrote."""

from __future__ import annotations

import os
from pathlib import Path

from llmsweep.live import progress as live_progress
from llmsweep.paths import RunPaths
from llmsweep.web import launch, runs_config
from llmsweep.web.failure import MISSING, Failure

LOG_TAIL = 4000  # bytes of the driver's log shown with the progress


def progress(paths: RunPaths) -> dict:
    live = live_progress.picture(paths)
    if not paths.launch_config.exists():
        return _started_elsewhere(paths, live)
    points = runs_config.points(*runs_config.check(launch.launched_config(paths)))
    done, running = _scan(paths, points)
    ended = launch.ended(paths)
    report = paths.report_page.exists()
    state = _state(launch.driver_alive(paths), ended)
    return {
        "run": paths.run,
        "state": state,
        "total": len(points),
        "done": len(done),
        "percent": round(100 * len(done) / len(points)) if points else 0,
        "current": max(running)[1] if running and state == "running" else None,
        "points_done": done,
        "report": report,
        "returncode": ended["returncode"] if ended else None,
        "log_tail": _tail(paths.driver_log, LOG_TAIL),
        "live": live,
        "launched": True,
    }


def _started_elsewhere(paths: RunPaths, live: dict) -> dict:
    """The progress of a run not launched from here, from its plan and files."""
    if not paths.run_plan.exists():
        raise Failure(MISSING, f"run {paths.run} was not launched from here and has no plan")
    done = [f"{p['deployment']} {p['load']}" for p in live["points"] if p["state"] == "done"]
    total = live["total"]
    running = live["running"]
    return {
        "run": paths.run,
        "state": live["state"],
        "total": total,
        "done": len(done),
        "percent": round(100 * len(done) / total) if total else 0,
        "current": running[0]["deployment"] + " " + running[0]["load"] if running else None,
        "points_done": done,
        "report": live["report"],
        "returncode": None,
        "log_tail": "",
        "live": live,
        "launched": False,  # its driver is not ours to stop
    }


def _scan(paths: RunPaths, points: list[dict]) -> tuple[list[str], list[tuple[float, str]]]:
    """The names of the points done, and (last write, name) of those begun but not done."""
    done, running = [], []
    for p in points:
        requests = paths.requests(p["slug"], p["load"])
        if paths.summary(p["slug"], p["load"]).exists():
            done.append(p["name"])
        elif requests.exists():
            running.append((requests.stat().st_mtime, p["name"]))
    return done, running


def _state(alive: bool, ended: dict | None) -> str:
    if alive:
        return "running"
    if ended is None:
        return "stopped"  # the driver is gone without saying how it ended
    return "finished" if ended["returncode"] == 0 else "failed"


def _tail(path: Path, size: int) -> str:
    """The last `size` bytes of a file (the whole log is not read on every poll)."""
    try:
        with open(path, "rb") as f:
            f.seek(max(0, f.seek(0, os.SEEK_END) - size))
            return f.read().decode(errors="replace")
    except OSError:
        return ""
