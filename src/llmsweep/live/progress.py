"""The whole run from its files: every point done, running, failed or still to run, with
its figures, and the ETA of the sweep. For the terminal view, `llmsweep status` and the
web front end's run page; works the same for a running and a finished run."""

from __future__ import annotations

import time

from llmsweep.live import figures
from llmsweep.live.plan import driver_state, read_plan
from llmsweep.paths import RunPaths
from llmsweep.util import read_json

# A live.json still "running" but not rewritten for this long belongs to a job that is gone
# (its deployment job rewrites it every few seconds while the point runs).
STALE_S = 60.0


def _read(path) -> dict | None:
    try:
        return read_json(path)
    except (OSError, ValueError):
        return None


_summaries: dict[str, tuple[tuple[int, int], dict]] = {}


def _summary_figures(path) -> dict | None:
    """figures.of_summary of a summary.json, read again only when the file changed (a
    deployment job asks every few seconds; finished points' summaries do not change)."""
    try:
        st = path.stat()
    except OSError:
        return None
    key = (st.st_mtime_ns, st.st_size)
    cached = _summaries.get(str(path))
    if cached and cached[0] == key:
        return cached[1]
    summary = _read(path)
    if summary is None:
        return None
    _summaries[str(path)] = (key, figures.of_summary(summary))
    return _summaries[str(path)][1]


def _known_points(paths: RunPaths, plan: dict | None) -> list[dict]:
    """The plan's points, then those with files under bench/ that it does not list (a
    capacity search picks its points as it runs; a run without a plan lists none)."""
    listed = plan["points"] if plan else []
    seen = {(p["deployment"], p["load"]) for p in listed}
    found = {p.parent for p in paths.summaries()} | {p.parent for p in paths.live_files()}
    extra = [
        {"deployment": d.parent.name, "load": d.name, **({"describe": "searched"} if plan else {})}
        for d in sorted(found)
        if (d.parent.name, d.name) not in seen
    ]
    return listed + extra


def point_state(paths: RunPaths, point: dict, now: float) -> dict:
    """One point: its state (done, running, stalled, failed, pending) and its figures: the
    live ones while it runs, its summary's once done."""
    slug, load = point["deployment"], point["load"]
    out = {"deployment": slug, "load": load, "describe": point.get("describe", "")}
    live = _read(paths.live(slug, load))
    summary = _summary_figures(paths.summary(slug, load))
    if live and live.get("state") in ("starting", "running"):
        fresh = now - live.get("updated_at", 0) <= STALE_S
        out |= {"state": "running" if fresh else "stalled", "live": live}
    elif summary:
        out |= {"state": "done", "summary": summary}
    elif live and live.get("state") == "failed":
        out |= {"state": "failed", "live": live}
    else:
        out["state"] = "pending"
    return out


def eta(points: list[dict]) -> tuple[float | None, float | None]:
    """(seconds until every point is done, the mean duration of a finished point).

    The points still to run take the mean duration of the finished ones (without any, the
    running points' projected durations); running points take their own ETA; the total is
    shared among the deployments running at once. Servers' start-ups are not counted."""
    durations = [p["summary"]["duration_s"] for p in points if p["state"] == "done"]
    durations = [d for d in durations if d]
    running = [p for p in points if p["state"] == "running"]
    if not durations:
        durations = [
            p["live"]["elapsed_s"] + p["live"]["eta_s"]
            for p in running
            if p["live"].get("eta_s") is not None
        ]
    mean = sum(durations) / len(durations) if durations else None
    todo = [p for p in points if p["state"] in ("pending", "stalled", "failed")]
    if not todo and not running:
        return 0.0, mean
    work = 0.0
    for p in running:
        left = p["live"].get("eta_s")
        if left is None:
            left = None if mean is None else max(0.0, mean - p["live"]["elapsed_s"])
        if left is None:
            return None, mean
        work += left
    if todo:
        if mean is None:
            return None, mean
        work += len(todo) * mean
    at_once = max(1, len({p["deployment"] for p in running}))
    return work / at_once, mean


def picture(paths: RunPaths, now: float | None = None) -> dict:
    """The run as its files show it: its state (running while its driver runs; finished
    when every point is done and the report written; else stopped, or unknown when its
    driver cannot be checked), its points, and its ETA."""
    now = time.time() if now is None else now
    plan = read_plan(paths)
    points = [point_state(paths, p, now) for p in _known_points(paths, plan)]
    left, mean = eta(points)
    done = [p for p in points if p["state"] == "done"]
    report = paths.report_page.exists()
    running = [p for p in points if p["state"] == "running"]
    driver = driver_state(plan, paths)
    if driver == "running" or (driver == "unknown" and running):
        state = "running"
    elif points and len(done) == len(points) and report:
        state = "finished"
    else:
        state = "stopped" if driver == "gone" else "unknown"
    return {
        "run": paths.run,
        "state": state,
        "driver": (plan or {}).get("driver"),
        "started_at": (plan or {}).get("started_at"),
        "deployments": (plan or {}).get("deployments", {}),
        "total": len(points),
        "done": len(done),
        "running": running,
        "failed": [p for p in points if p["state"] in ("failed", "stalled")],
        "points": points,
        "eta_s": left if state == "running" else None,
        "mean_point_s": mean,
        "report": report,
        "now": now,
    }
