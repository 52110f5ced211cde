"""The live figures as text: one line per running point, one per finished point, a line for
the whole run. The terminal view and `llmsweep status` print the same lines."""

from __future__ import annotations

import time


def duration(seconds: float | None) -> str:
    """12s, 3m05s, 2h03m; '?' when unknown."""
    if seconds is None:
        return "?"
    s = int(round(seconds))
    if s < 60:
        return f"{s}s"
    if s < 3600:
        return f"{s // 60}m{s % 60:02d}s"
    return f"{s // 3600}h{s % 3600 // 60:02d}m"


def latency(seconds: float | None) -> str:
    """A latency in ms below a second (120 ms, 8.5 ms), else in s (1.25 s); '-' when none."""
    if seconds is None:
        return "-"
    if seconds < 0.01:
        return f"{seconds * 1000:.1f} ms"
    if seconds < 1:
        return f"{seconds * 1000:.0f} ms"
    return f"{seconds:.2f} s"


def rate(value: float | None, digits: int = 1) -> str:
    return "-" if value is None else f"{value:.{digits}f}"


def point_name(live: dict) -> str:
    return f"{live['deployment']} {live['load']}"


def progress_part(live: dict) -> str:
    """'11/16 requests', or the time left of a time-bound point."""
    if live.get("time_left_s") is not None:
        return f"{live['requests_done']} requests, {duration(live['time_left_s'])} left"
    total = live.get("requests_total")
    return f"{live['requests_done']}/{total if total is not None else '?'} requests"


def live_line(live: dict) -> str:
    """A running point: progress, rates so far, latencies of the last window, errors,
    requests in flight, ETA."""
    parts = [
        progress_part(live),
        f"{rate(live.get('requests_per_s'), 2)} req/s",
        f"{rate(live.get('output_tokens_per_s'))} tok/s",
        f"TTFT p50 {latency(live.get('ttft_p50_s'))}",
        f"ITL p50 {latency(live.get('itl_p50_s'))}",
        f"{live.get('errors', 0)} errors",
    ]
    if live.get("in_flight") is not None:
        parts.append(f"{live['in_flight']} in flight")
    parts.append(f"ETA {duration(live.get('eta_s'))}")
    return f"{point_name(live)}: " + ", ".join(parts)


def summary_line(name: str, fig: dict) -> str:
    """A finished point, from figures.of_summary: what `llmsweep status`, the terminal and
    the run page show of it (figures as in its summary.json)."""
    kinds = ", ".join(f"{k} {v}" for k, v in sorted(fig["errors_by_kind"].items()))
    errors = f"{fig['errors']} failed" + (f" ({kinds})" if kinds else "")
    return (
        f"{name} done: {fig['requests']} requests, {errors}, in {duration(fig['duration_s'])}: "
        f"{rate(fig['requests_per_s'], 2)} req/s, {rate(fig['output_tokens_per_s'])} tok/s, "
        f"TTFT p50 {latency(fig['ttft_p50_s'])} p99 {latency(fig['ttft_p99_s'])}, "
        f"ITL p50 {latency(fig['itl_p50_s'])}"
    )


def run_line(pic: dict) -> str:
    """The whole run: points done of total, running, failed, and its ETA."""
    parts = [f"{pic['done']}/{pic['total']} points done"]
    if pic["running"]:
        parts.append(f"{len(pic['running'])} running")
    if pic["failed"]:
        parts.append(f"{len(pic['failed'])} failed")
    if pic["done"] < pic["total"]:
        parts.append(f"ETA {duration(pic['eta_s'])}")
    return f"sweep {pic['run']}: " + ", ".join(parts)


def clock(t: float | None) -> str:
    return time.strftime("%H:%M:%S", time.localtime(t)) if t else "?"


def point_line(p: dict) -> str:
    """A point of progress.picture, as its state has it."""
    name = f"{p['deployment']} {p['load']}"
    if p["state"] == "done":
        return summary_line(name, p["summary"])
    live = p.get("live") or {}
    if p["state"] == "running":
        return live_line(live) + f" (since {clock(live.get('started_at'))})"
    if p["state"] == "stalled":
        since = clock(live.get("updated_at"))
        return f"{name}: cut off at {progress_part(live)} (no news since {since})"
    if p["state"] == "failed":
        return f"{name} failed: {live.get('error')}"
    return f"{name} {p.get('describe', '')}".rstrip()


def status_lines(pic: dict, services: list[dict] | None = None, report: str = "") -> list[str]:
    """What `llmsweep status` prints: the run, its points by state, its services, its
    report."""
    driver = pic.get("driver") or {}
    where = f" (driver pid {driver['pid']} on {driver['host']})" if driver else ""
    head = f"run {pic['run']}: {pic['state']}{where}"
    if pic.get("started_at"):
        head += f", started {time.strftime('%Y-%m-%d %H:%M:%S', time.localtime(pic['started_at']))}"
    lines = [head, run_line(pic)]
    groups = (
        ("running", ("running",)),
        ("done", ("done",)),
        ("failed or cut off", ("failed", "stalled")),
        ("to run", ("pending",)),
    )
    for title, states in groups:
        chosen = [p for p in pic["points"] if p["state"] in states]
        if chosen:
            lines.append(f"{title}:")
            lines += [f"  {point_line(p)}" for p in chosen]
    if services:
        lines.append("services:")
        for s in services:
            job = f"job {s['job_id']}" if s.get("job_id") else f"pid {s.get('pid')}"
            url = f", {s['url']}" if s.get("url") else ""
            lines.append(f"  {s['key']}: {s['state']}, {job}{url}")
    if report:
        lines.append(f"report: {report}")
    return lines
