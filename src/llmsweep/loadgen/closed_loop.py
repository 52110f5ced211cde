"""Closed loop: N concurrent clients, each sending requests back to back. No cap."""

from __future__ import annotations

import asyncio


async def run(
    send, n_clients: int, n_requests: int | None, duration_s: float | None, first_client: int = 0
) -> None:
    """Each client sends until it has sent `n_requests` or `duration_s` has passed; clients
    are numbered from `first_client` (worker processes share one point)."""
    loop = asyncio.get_running_loop()
    end = loop.time() + duration_s if duration_s else None

    async def client(i: int) -> None:
        seq = 0
        while (n_requests is None or seq < n_requests) and (end is None or loop.time() < end):
            await send(client=first_client + i, seq=seq)
            seq += 1

    await asyncio.gather(*(client(i) for i in range(n_clients)))
