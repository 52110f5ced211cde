"""The HTTP session and in-flight accounting shared by every load pattern."""

from __future__ import annotations

import asyncio
import resource
from collections.abc import Callable, Coroutine

import aiohttp

from llmsweep.engines import engine_module

try:  # libuv's event loop: less CPU per request and per chunk than asyncio's own
    import uvloop
except ImportError:  # pragma: no cover - a dependency; the load runs on asyncio's loop
    uvloop = None

# The event loop the load generator runs on, named in each point's client figures.
EVENT_LOOP = "uvloop" if uvloop is not None else "asyncio"


def run(coro: Coroutine):
    """Run `coro` to its end on a new event loop: uvloop's where installed, else asyncio's."""
    factory = uvloop.new_event_loop if uvloop is not None else None
    with asyncio.Runner(loop_factory=factory) as runner:
        return runner.run(coro)


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
    by the next request. With keep-alive, aiohttp's tracing tells each request's Attempt
    whether its connection came from the pool (stream_request sends again a request that
    met a dead one); it costs microseconds."""
    connector = aiohttp.TCPConnector(limit=0, force_close=not keep_alive)
    timeout = aiohttp.ClientTimeout(total=request_timeout_s, sock_connect=30)
    traces = [_pooled_connection_trace()] if keep_alive else None
    return aiohttp.ClientSession(
        connector=connector, timeout=timeout, headers=headers, trace_configs=traces
    )


class Attempt:
    """One try at sending a request (pass it as aiohttp's `trace_request_ctx`): `pooled`
    says whether its connection came from the session's pool of kept-alive ones."""

    __slots__ = ("pooled",)

    def __init__(self):
        self.pooled = False


async def _took_pooled(session, trace, params) -> None:
    if isinstance(trace.trace_request_ctx, Attempt):
        trace.trace_request_ctx.pooled = True


def _pooled_connection_trace() -> aiohttp.TraceConfig:
    """aiohttp's request tracing, telling an Attempt that it reused a pooled connection."""
    trace = aiohttp.TraceConfig()
    trace.on_connection_reuseconn.append(_took_pooled)
    return trace


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
