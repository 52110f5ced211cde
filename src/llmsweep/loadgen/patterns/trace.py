"""Trace replay: the rows of a recorded trace (workload.trace, read by llmsweep.traces) sent
at their recorded arrival times, sped up or slowed down by a time scale, whatever the
server does. Each row's request has its own prompt (the row's text, or synthetic of its
input tokens) and max_tokens (its output tokens).

Config: sweep.trace_scales lists the time scales; each is a point (folder t<scale>):
scale 2 replays the trace twice as fast, 0.5 at half speed.

The point request carries the trace: workload.prompts holds one prompt per row, in the
trace's order, and the sweep section its schedule (SCHEDULE: arrivals_s, the rows'
arrivals in seconds from the first row's, and optionally session_ids). Each request's
record has its row, its scheduled and actual send time from the replay's start
(scheduled_s, sent_s) and how late it was sent (lateness_s), and its session id where the
trace has one.
"""

from __future__ import annotations

import asyncio

from llmsweep.loadgen.patterns.common import Axis
from llmsweep.loadgen.stats import distribution

NAME = "trace"
SWEEP_KEY = "trace_scales"  # config: sweep.trace_scales, the list of levels
LEVEL_KEY = "time_scale"  # one point's level: sweep point, request's sweep, summary, table
PREFIX = "t"  # folder t2, t0.5
LEVEL_REGEX = "[0-9.]+"
LEVEL_INTEGER = False  # whole-number levels (a capacity search halves them as such)
# The sweep keys (config and request) that shape a point, its level aside.
SETTINGS = ("duration_s", "max_point_duration_s", "seed")
# The request's sweep keys that config has no key for: the trace's schedule, one value a
# row, built from workload.trace (their bounds: point_request.SCHEDULE_KEYS).
SCHEDULE = ("arrivals_s", "session_ids")
# The request's sweep keys a request must give (their bounds are config's).
REQUIRED = ("time_scale", "arrivals_s")
# Rows sent at most back to back, behind schedule, before the replay lets the loop run.
LATE_BURST = 64
AXIS = Axis(
    "time_scale", "trace speed (x recorded)", " (trace)", "knee_time_scale", "x the trace's speed"
)


def level_text(scale: float) -> str:
    """The level in a folder name and a metric label: the shortest text that reads back as
    the same scale (2, 0.5); within config's bounds of a scale (sweep.trace_scales: 0.001 to
    1000) it has no exponent, as LEVEL_REGEX wants."""
    return repr(float(scale)).removesuffix(".0")


def describe(scale: float) -> str:
    return f"at {level_text(scale)}x the trace's speed"


def total(sweep: dict) -> int:
    """Measured requests the point sends at most: one per row."""
    return len(sweep["arrivals_s"])


def warmup_width(sweep: dict) -> int:
    """Concurrent warm-up clients: one (a trace has no concurrency of its own)."""
    return 1


def split(sweep: dict, k: int, n: int) -> dict:
    """Worker k's share (of n): every n-th row from row k, each still at its own time
    (`first_row` and `row_step`, set here only; the API has no such keys)."""
    part = {**sweep, "arrivals_s": sweep["arrivals_s"][k::n], "first_row": k, "row_step": n}
    if sweep.get("session_ids") is not None:
        part["session_ids"] = sweep["session_ids"][k::n]
    return part


async def run(send, sweep: dict) -> None:
    """The point's measured load."""
    await replay(
        send,
        sweep["arrivals_s"],
        sweep["time_scale"],
        sweep.get("session_ids"),
        sweep["duration_s"],
        sweep.get("first_row", 0),
        sweep.get("row_step", 1),
    )


async def replay(
    send,
    arrivals_s: list[float],
    scale: float,
    session_ids: list | None = None,
    duration_s: float | None = None,
    first_row: int = 0,
    row_step: int = 1,
) -> None:
    """Send row i (numbered first_row + i * row_step in the whole trace, its prompt that
    index of the request's prompts) at arrivals_s[i] / scale from the start; stop before a
    row scheduled at duration_s or later."""
    clock = asyncio.get_running_loop()
    t0 = clock.time()

    async def one(i: int, row: int, scheduled: float) -> None:
        sent = clock.time() - t0
        extra = {
            "row": row,
            "scheduled_s": scheduled,
            "sent_s": sent,
            "lateness_s": lateness(sent, scheduled),
        }
        if session_ids is not None:
            extra["session_id"] = session_ids[i]
        await send(prompt_index=row, **extra)

    # As the open loop: the group holds only the requests not yet done, and cancelling the
    # point cancels the wait for the next row and every request in flight.
    late_in_a_row = 0
    async with asyncio.TaskGroup() as group:
        for i, arrival in enumerate(arrivals_s):
            scheduled = arrival / scale
            if duration_s and scheduled >= duration_s:
                break
            delay = t0 + scheduled - clock.time()
            # Behind schedule, the rows due are sent back to back: a pass of the event loop
            # per row would hold the replay to the loop's pace (bench/trace.py). It still
            # yields every LATE_BURST rows, so requests in flight and a stop can run.
            if delay > 0 or late_in_a_row >= LATE_BURST:
                await asyncio.sleep(max(0.0, delay))
                late_in_a_row = 0
            else:
                late_in_a_row += 1
            group.create_task(one(i, first_row + i * row_step, scheduled))


# How early a send may read without being early: the event loop runs a timer that is due
# within its clock's resolution, and t0 + scheduled - t0 rounds (a reading of -1e-12 s).
ON_TIME_S = 1e-6


def lateness(sent: float, scheduled: float) -> float:
    """How late a row was sent: 0 for a send on time to within ON_TIME_S; a send earlier
    than that keeps its negative value (it would be a fault of the replay)."""
    late = sent - scheduled
    return 0.0 if -ON_TIME_S < late < 0 else late


def figures(measured: list[dict]) -> dict:
    """The pattern's own summary figures: how late requests were sent, against the trace's
    schedule (a late generator delays the load, not the server)."""
    return {"lateness_s": distribution(r.get("lateness_s") for r in measured)}
