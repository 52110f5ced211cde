"""Closed loop: N concurrent clients, each sending requests back to back. No cap.

Config: sweep.clients lists the client counts; each is a point (folder c<clients>).
"""

from __future__ import annotations

import asyncio

from llmsweep.loadgen.patterns.common import Axis, share

NAME = "closed"
SWEEP_KEY = "clients"  # config: sweep.clients, the list of levels
LEVEL_KEY = "clients"  # one point's level: sweep point, request's sweep, summary, table
PREFIX = "c"  # folder c4
LEVEL_REGEX = "[0-9]+"
LEVEL_INTEGER = True  # whole-number levels (a capacity search halves them as such)
# The sweep keys (config and request) that shape a point, its level aside.
SETTINGS = ("requests_per_client", "duration_s", "max_point_duration_s", "seed")
# The request's sweep keys that config has no key for (a trace's schedule): none.
SCHEDULE = ()
# The request's sweep keys a request must give (their bounds are config's).
REQUIRED = ("clients", "requests_per_client")
AXIS = Axis("clients", "concurrent clients", "", "knee_clients", "clients")


def figures(measured: list[dict]) -> dict:
    """The pattern's own summary figures: none beyond every pattern's."""
    return {}


def level_text(clients: int) -> str:
    """The level in a folder name and a metric label."""
    return str(clients)


def describe(clients: int) -> str:
    return f"with {clients} clients"


def total(sweep: dict) -> int:
    """Measured requests the point sends at most."""
    return sweep["clients"] * sweep["requests_per_client"]


def warmup_width(sweep: dict) -> int:
    """Concurrent warm-up clients: the point's own."""
    return sweep["clients"]


def split(sweep: dict, k: int, n: int) -> dict:
    """Worker k's share (of n): its clients, numbered on from the clients of workers before
    it (`first_client`, set here only; the API has no such key)."""
    return {
        **sweep,
        "clients": share(sweep["clients"], k, n),
        "first_client": sum(share(sweep["clients"], j, n) for j in range(k)),
    }


async def run(send, sweep: dict) -> None:
    """The point's measured load."""
    await loop(
        send,
        sweep["clients"],
        sweep["requests_per_client"],
        sweep["duration_s"],
        sweep.get("first_client", 0),
    )


async def loop(
    send, n_clients: int, n_requests: int | None, duration_s: float | None, first_client: int = 0
) -> None:
    """Each client sends until it has sent `n_requests` or `duration_s` has passed; clients
    are numbered from `first_client` (worker processes share one point)."""
    clock = asyncio.get_running_loop()
    end = clock.time() + duration_s if duration_s else None

    async def client(i: int) -> None:
        seq = 0
        while (n_requests is None or seq < n_requests) and (end is None or clock.time() < end):
            await send(client=first_client + i, seq=seq)
            seq += 1

    await asyncio.gather(*(client(i) for i in range(n_clients)))
