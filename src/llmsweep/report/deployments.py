"""Deployments in the report: which deployment a point belongs to, and what each deployment's
server cost in time (its record's sessions).

A deployment is one server configuration (engine, model, engine settings, GPUs per server).
Summaries written before deployments existed name none: their deployment is the model's
slug, with no settings, and the GPUs the exporter saw beside the server."""

from __future__ import annotations

import json
import math

import pandas as pd

from llmsweep.paths import model_slug
from llmsweep.util import read_json

SETTING_PREFIX = "setting_"
# deployments.csv's columns besides the settings, in order.
COLUMNS = [
    "deployment",
    "engine",
    "model",
    "gpus",
    "points",
    "loads",
    "sessions",
    "wall_s",
    "startup_s",
    "in_points_s",
    "idle_s",
    "share_in_points",
    "server_hours",
    "gpu_hours",
    "search_level",
    "search_capacity",
    "search_failed_above",
    "search_points",
    "search_why",
]
# A point's part in its deployment's capacity search (points.csv's search column).
CAPACITY, FAILED_ABOVE, SEARCHED = "capacity", "failed above", "searched"


def deployment_of(point: dict) -> str:
    """A summary's `point` section's deployment slug (the model's slug in an old summary)."""
    return point.get("deployment") or model_slug(point["model"])


def settings_of(point: dict) -> dict:
    """The engine settings of a summary's point's deployment ({} in an old summary)."""
    return dict(point.get("settings") or {})


def gpus_of(point: dict) -> int:
    """The GPUs the point's server had: the point's own count, else what the GPU exporter
    beside the server saw, else 0 (a CPU server)."""
    if point.get("gpus") is not None:
        return int(point["gpus"])
    gpu = (point.get("server") or {}).get("gpu") or {}
    return int(gpu.get("gpus") or 0)


def setting_columns(settings: dict) -> dict:
    """The settings as table cells: one `setting_<name>` column each; a list or mapping
    (extra_args, model_files) as its JSON text, so every cell is a plain value."""
    return {f"{SETTING_PREFIX}{name}": _cell(value) for name, value in settings.items()}


def _cell(value):
    return json.dumps(value, sort_keys=True) if isinstance(value, list | dict) else value


def settings_text(row: pd.Series) -> str:
    """A table row's settings, from its `setting_<name>` cells, as 'name=value, ...'."""
    return ", ".join(
        f"{column.removeprefix(SETTING_PREFIX)}={_plain(value)}"
        for column, value in row.items()
        if column.startswith(SETTING_PREFIX) and _is_set(value)
    )


def _is_set(value) -> bool:
    return not (value is None or (isinstance(value, float) and math.isnan(value)))


def _plain(value) -> str:
    """4.0 -> 4: CSV turns a column of integers with gaps into floats."""
    if isinstance(value, float) and value.is_integer():
        return str(int(value))
    return str(value)


def _span(start: float | None, end: float | None) -> float:
    """end - start, or 0 where either is unknown."""
    if start is None or end is None:
        return 0.0
    return max(end - start, 0.0)


def _session_end(session: dict) -> float | None:
    """When the session's server stopped; for a server whose stop was not recorded, the last
    time known of it (a lower bound of what it held)."""
    server = session["server"]
    if server.get("stopped_at") is not None:
        return server["stopped_at"]
    known = [p.get("finished_at") for p in session.get("points", [])]
    known += [server.get("ready_at"), server.get("started_at")]
    return max((t for t in known if t is not None), default=None)


def session_times(session: dict) -> dict:
    """One server session's wall time, start-up (started to ready; all of it when the
    server never became ready) and time spent in its points, in seconds."""
    server = session["server"]
    wall = _span(server.get("started_at"), _session_end(session))
    ready = server.get("ready_at")
    startup = _span(server.get("started_at"), ready) if ready is not None else wall
    in_points = sum(
        _span(p.get("started_at"), p.get("finished_at")) for p in session.get("points", [])
    )
    return {"wall_s": wall, "startup_s": min(startup, wall), "in_points_s": in_points}


def accounting(record: dict) -> dict:
    """A deployment record's server time, summed over its sessions, and what it held: the
    share of the time after start-up spent in points (NaN with no such time), server-hours
    and GPU-hours (wall time times the server's GPUs)."""
    times = [session_times(s) for s in record.get("sessions", [])]
    total = {k: sum(t[k] for t in times) for k in ("wall_s", "startup_s", "in_points_s")}
    serving = total["wall_s"] - total["startup_s"]
    gpus = max(int(record.get("gpus") or 0), 0)
    return {
        "sessions": len(times),
        **total,
        "idle_s": max(serving - total["in_points_s"], 0.0),
        "share_in_points": total["in_points_s"] / serving if serving > 0 else math.nan,
        "server_hours": total["wall_s"] / 3600,
        "gpu_hours": total["wall_s"] * gpus / 3600,
    }


def row(record: dict) -> dict:
    """deployments.csv's row of one deployment record."""
    points = list(record.get("points", []))
    return {
        "deployment": record["slug"],
        "engine": record.get("engine"),
        "model": record.get("model"),
        "gpus": max(int(record.get("gpus") or 0), 0),
        "points": len(points),
        "loads": ";".join(points),
        **accounting(record),
        **search_columns(record.get("search")),
        **setting_columns(record.get("settings") or {}),
    }


def search_columns(found: dict | None) -> dict:
    """deployments.csv's cells of a capacity search's outcome (empty without a search)."""
    found = found or {}
    return {
        "search_level": found.get("level_key"),
        "search_capacity": found.get("capacity"),
        "search_failed_above": found.get("failed_above"),
        "search_points": found.get("points"),
        "search_why": found.get("why"),
    }


def search_roles(record_paths: list[str]) -> dict[tuple[str, str], str]:
    """Each searched point's part in its deployment's capacity search, by (deployment,
    load): the capacity found, the failing level just above it, or another level searched."""
    roles = {}
    for path in record_paths:
        record = read_json(path)
        found = record.get("search") or {}
        for step in found.get("steps", []):
            roles[(record["slug"], step["load"])] = SEARCHED
        if found.get("failed_above_load"):
            roles[(record["slug"], found["failed_above_load"])] = FAILED_ABOVE
        if found.get("capacity_load"):
            roles[(record["slug"], found["capacity_load"])] = CAPACITY
    return roles


def table(record_paths: list[str]) -> pd.DataFrame:
    """One row per deployment, sorted by slug: COLUMNS, then one column per setting name."""
    rows = [row(read_json(p)) for p in record_paths]
    df = pd.DataFrame(rows, columns=COLUMNS) if not rows else pd.DataFrame(rows)
    settings = sorted(c for c in df.columns if c.startswith(SETTING_PREFIX))
    return df[COLUMNS + settings].sort_values("deployment", ignore_index=True)


def write(record_paths: list[str], out_csv: str) -> pd.DataFrame:
    df = table(record_paths)
    df.to_csv(out_csv, index=False)
    return df


def totals(df: pd.DataFrame) -> dict:
    """The run's server time over all deployments: for metadata.json and the page."""
    return {
        "deployments": len(df),
        "sessions": int(df["sessions"].sum()),
        "server_hours": float(df["server_hours"].sum()),
        "gpu_hours": float(df["gpu_hours"].sum()),
    }
