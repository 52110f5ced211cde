"""Open loop: requests arrive at a rate (Poisson or constant), whatever the server does;
an optional concurrency limit makes later arrivals wait, and their wait is recorded."""

from __future__ import annotations

import asyncio
import random


async def run(
    send,
    rate: float,
    arrival: str,
    n_requests: int,
    duration_s: float | None,
    max_concurrency: int | None,
    seed: int,
) -> None:
    loop = asyncio.get_running_loop()
    rng = random.Random(seed)
    limit = asyncio.Semaphore(max_concurrency) if max_concurrency else None
    t0 = loop.time()
    due = t0
    tasks = []

    async def one(seq: int, scheduled: float) -> None:
        if limit is None:
            await send(seq=seq, arrival_s=scheduled - t0, queue_s=0.0)
            return
        async with limit:
            await send(seq=seq, arrival_s=scheduled - t0, queue_s=loop.time() - scheduled)

    for seq in range(n_requests):
        if seq:
            due += rng.expovariate(rate) if arrival == "poisson" else 1.0 / rate
        if duration_s and due - t0 >= duration_s:
            break
        delay = due - loop.time()
        if delay > 0:
            await asyncio.sleep(delay)
        tasks.append(asyncio.create_task(one(seq, due)))
    await asyncio.gather(*tasks)
