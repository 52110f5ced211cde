"""Closed loop: N concurrent clients, each sending its requests back to back. No cap."""

from __future__ import annotations

import asyncio
import resource
import threading
from collections.abc import Callable

import aiohttp

from llmsweep.loadgen.protocols import for_engine
from llmsweep.loadgen.request import stream_request


def raise_fd_limit() -> None:
    """Each open stream holds a socket: lift the soft descriptor limit to the hard one."""
    soft, hard = resource.getrlimit(resource.RLIMIT_NOFILE)
    if soft < hard:
        resource.setrlimit(resource.RLIMIT_NOFILE, (hard, hard))


def new_session(request_timeout_s: float) -> aiohttp.ClientSession:
    # No keep-alive: llama.cpp's server closes each streamed response's connection, and a
    # reused dead connection would fail the next request at once.
    connector = aiohttp.TCPConnector(limit=0, force_close=True)
    timeout = aiohttp.ClientTimeout(total=request_timeout_s, sock_connect=30)
    return aiohttp.ClientSession(connector=connector, timeout=timeout)


class InFlight:
    """Requests in flight now and the peak seen, for the point's record and the gauge."""

    def __init__(self, on_change: Callable[[int], None] | None = None):
        self.now = 0
        self.peak = 0
        self._on_change = on_change

    def __enter__(self):
        self.now += 1
        self.peak = max(self.peak, self.now)
        if self._on_change:
            self._on_change(1)

    def __exit__(self, *exc):
        self.now -= 1
        if self._on_change:
            self._on_change(-1)


async def run(
    base_url: str,
    params: dict,
    on_record: Callable[[dict], None],
    cancel: threading.Event,
    in_flight: InFlight,
) -> None:
    """Run one closed-loop point; every finished request goes to `on_record` at once."""
    protocol = for_engine(params["engine"])
    body = protocol.body(
        params["api"], params["model"], params["prompt"], params["max_tokens"], params["ignore_eos"]
    )
    async with new_session(params["request_timeout_s"]) as session:

        async def client(i: int) -> None:
            for seq in range(params["n_requests_per_client"]):
                if cancel.is_set():
                    return
                with in_flight:
                    rec = await stream_request(session, base_url, protocol, params["api"], body)
                rec["client"], rec["seq"], rec["warmup"] = i, seq, False
                on_record(rec)

        await asyncio.gather(*(client(i) for i in range(params["n_clients"])))
