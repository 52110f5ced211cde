"""The HTTP session and in-flight accounting shared by every load pattern."""

from __future__ import annotations

import resource
from collections.abc import Callable

import aiohttp


def raise_fd_limit() -> None:
    """Each open stream holds a socket: lift the soft descriptor limit to the hard one."""
    soft, hard = resource.getrlimit(resource.RLIMIT_NOFILE)
    if soft < hard:
        resource.setrlimit(resource.RLIMIT_NOFILE, (hard, hard))


def new_session(request_timeout_s: float) -> aiohttp.ClientSession:
    # Keep-alive saves a TCP handshake per request. Servers that close the connection after
    # each streamed response (llama.cpp) leave dead pooled connections: stream_request
    # retries once, on a new connection, when a request failed before anything came back.
    connector = aiohttp.TCPConnector(limit=0, enable_cleanup_closed=True)
    timeout = aiohttp.ClientTimeout(total=request_timeout_s, sock_connect=30)
    return aiohttp.ClientSession(connector=connector, timeout=timeout)


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
