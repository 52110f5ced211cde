"""Open loop: requests arrive at a rate (Poisson or constant), whatever the server does;
an optional concurrency limit makes later arrivals wait, and their wait is recorded.

Config: sweep.rates lists the rates (requests/s); each is a point (folder r<rate>).
"""

from __future__ import annotations

import asyncio
import random

from llmsweep.loadgen.patterns.common import Axis, share

NAME = "open"
SWEEP_KEY = "rates"  # config: sweep.rates, the list of levels
LEVEL_KEY = "rate"  # one point's level: sweep point, request's sweep, summary, table
PREFIX = "r"  # folder r2.5
LEVEL_REGEX = "[0-9.]+"
LEVEL_INTEGER = False  # whole-number levels (a capacity search halves them as such)
# The sweep keys (config and request) that shape a point, its level aside.
SETTINGS = ("arrival", "requests", "max_concurrency", "duration_s", "max_point_duration_s", "seed")
# The request's sweep keys that config has no key for (a trace's schedule): none.
SCHEDULE = ()
# The request's sweep keys a request must give (their bounds are config's).
REQUIRED = ("rate", "requests")
AXIS = Axis("rate", "requests/s", " (open loop)", "knee_rate", "requests/s")


def figures(measured: list[dict]) -> dict:
    """The pattern's own summary figures: none beyond every pattern's."""
    return {}


def level_text(rate: float) -> str:
    """The level in a folder name and a metric label: the shortest text that reads back as
    the same rate (2, 0.5, 1.0000001), so distinct rates have distinct folders; within
    config's bounds of a rate (sweep.rates: 0.001 to 100000) it has no exponent, as
    LEVEL_REGEX wants."""
    return repr(float(rate)).removesuffix(".0")


def describe(rate: float) -> str:
    return f"at {level_text(rate)} requests/s"


def total(sweep: dict) -> int:
    """Measured requests the point sends at most."""
    return sweep["requests"]


def warmup_width(sweep: dict) -> int:
    """Concurrent warm-up clients: the concurrency limit, else one."""
    return sweep["max_concurrency"] or 1


def split(sweep: dict, k: int, n: int) -> dict:
    """Worker k's share (of n): a sum of Poisson processes is a Poisson process, so each
    worker sends at rate/n."""
    part = {**sweep, "rate": sweep["rate"] / n, "requests": share(sweep["requests"], k, n)}
    if sweep["max_concurrency"]:
        part["max_concurrency"] = max(1, sweep["max_concurrency"] // n)
    return part


async def run(send, sweep: dict) -> None:
    """The point's measured load."""
    await loop(
        send,
        sweep["rate"],
        sweep["arrival"],
        sweep["requests"],
        sweep["duration_s"],
        sweep["max_concurrency"],
        sweep["seed"],
    )


async def loop(
    send,
    rate: float,
    arrival: str,
    n_requests: int,
    duration_s: float | None,
    max_concurrency: int | None,
    seed: int,
) -> None:
    clock = asyncio.get_running_loop()
    rng = random.Random(seed)
    limit = asyncio.Semaphore(max_concurrency) if max_concurrency else None
    t0 = clock.time()
    due = t0

    async def one(seq: int, scheduled: float) -> None:
        if limit is None:
            await send(seq=seq, arrival_s=scheduled - t0, queue_s=0.0)
            return
        async with limit:
            await send(seq=seq, arrival_s=scheduled - t0, queue_s=clock.time() - scheduled)

    # The group holds only the requests not yet done, and cancelling the point cancels the
    # wait for the next arrival and every request in flight.
    async with asyncio.TaskGroup() as group:
        for seq in range(n_requests):
            if seq:
                due += rng.expovariate(rate) if arrival == "poisson" else 1.0 / rate
            if duration_s and due - t0 >= duration_s:
                break
            # Sleep even when late (0 s): a generator behind schedule still lets its
            # requests, and whatever may stop the point, run between arrivals.
            await asyncio.sleep(max(0.0, due - clock.time()))
            group.create_task(one(seq, due))
