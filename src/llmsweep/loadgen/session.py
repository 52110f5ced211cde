"""The HTTP session and in-flight accounting shared by every load pattern."""

from __future__ import annotations

import resource
from collections.abc import Callable

import aiohttp

from llmsweep.engines import engine_module


def raise_fd_limit() -> None:
    """Each open stream holds a socket: lift the soft descriptor limit to the hard one."""
    soft, hard = resource.getrlimit(resource.RLIMIT_NOFILE)
    if soft < hard:
        resource.setrlimit(resource.RLIMIT_NOFILE, (hard, hard))


def new_session(
    request_timeout_s: float, keep_alive: bool = True, headers: dict | None = None
) -> aiohttp.ClientSession:
    """One HTTP session per point, sending `headers` (the run's token) with every request.
    Keep-alive saves a TCP handshake per request; servers that close the connection after
    every streamed response (llama.cpp) get none, since a pooled connection would be dead
    by the next request."""
    connector = aiohttp.TCPConnector(limit=0, force_close=not keep_alive)
    timeout = aiohttp.ClientTimeout(total=request_timeout_s, sock_connect=30)
    return aiohttp.ClientSession(connector=connector, timeout=timeout, headers=headers)


def keep_alive_for(engine: str) -> bool:
    return engine_module(engine).KEEPS_CONNECTIONS


class InFlight:
    """Requests in flight now and the peak seen, for the point's record and the gauge."""

    def __init__(self, on_change: Callable[[int], None] | None = None):
        self.now = 0
        self.peak = 0
        self._on_change = on_change

    def add(self, delta: int) -> None:
        self.now += delta
        self.peak = max(self.peak, self.now)
        if self._on_change:
            self._on_change(delta)

    def __enter__(self):
        self.add(1)

    def __exit__(self, *exc):
        self.add(-1)
