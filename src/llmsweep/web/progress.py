"""How far a launched run has come: its state, the sweep points done and the one running,
whether its report is there, and the end of the driver's log."""

from __future__ import annotations

import os
from pathlib import Path

from llmsweep.paths import RunPaths
from llmsweep.web import launch, runs_config

LOG_TAIL = 4000  # bytes of the driver's log shown with the progress


def progress(paths: RunPaths) -> dict:
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
