"""One load point: warm-up, then the pattern's load, bounded in time; the client's own
CPU use and event-loop lag are measured so a saturated client is never mistaken for a
slow server."""

from __future__ import annotations

import asyncio
import functools
import itertools
import resource
import time
from typing import NamedTuple

from llmsweep.loadgen import patterns
from llmsweep.loadgen.patterns import closed
from llmsweep.loadgen.protocols import for_engine
from llmsweep.loadgen.request import stream_request
from llmsweep.loadgen.session import InFlight, keep_alive_for, new_session
from llmsweep.loadgen.stats import percentile

LAG_INTERVAL_S = 0.01
SATURATED_CPU_SHARE = 0.9
SATURATED_LAG_P99_S = 0.02


class Server(NamedTuple):
    """The LLM server a point runs against."""

    url: str
    engine: str
    model: str


async def run(server: Server, request: dict, on_record, cancel, in_flight: InFlight) -> dict:
    """Run the point request (loadgen.point_request, completed); every finished request
    goes to `on_record` at once. Returns the client's own figures (CPU, loop lag,
    saturation)."""
    meter = _Meter()
    keep_alive = keep_alive_for(server.engine)
    async with new_session(request["workload"]["request_timeout_s"], keep_alive) as http:
        send = _sender(http, server, request["workload"], on_record, cancel, in_flight)
        timed_out = await _within(_phases(send, request), request["sweep"]["max_point_duration_s"])
    cpu, wall, lag = await meter.stop()
    return client_figures(cpu, wall, lag, timed_out)


async def _phases(send, request: dict) -> None:
    """Warm-up, then the measured load of the request's pattern."""
    module = patterns.pattern(request["pattern"])
    await _warm_up(functools.partial(send, "warmup"), request["warmup"], module, request["sweep"])
    await module.run(functools.partial(send, "measure"), request["sweep"])


async def _warm_up(send, warmup: dict, module, sweep: dict) -> None:
    """The warm-up requests and time, sent back to back at the pattern's warm-up width."""
    n, duration = warmup["requests"], warmup["duration_s"]
    if not (n or duration):
        return
    width = module.warmup_width(sweep)
    per_client = -(-n // width) if n else None
    await closed.loop(send, min(width, max(n, 1)), per_client, duration or None)


async def _within(coro, seconds: float) -> bool:
    """Run `coro` for at most `seconds` (cancelling it then); whether time ran out."""
    try:
        await asyncio.wait_for(coro, seconds)
    except TimeoutError:
        return True
    return False


def _sender(http, server: Server, workload: dict, on_record, cancel, in_flight: InFlight):
    """send(phase, **extra): one request with the next prompt; its record, with `extra` and
    flagged warm-up or not, goes to `on_record`, also when the point's time runs out."""
    protocol = for_engine(server.engine)
    prompts, api = workload["prompts"], workload["api"]
    order = itertools.count()

    async def send(phase: str, **extra) -> None:
        if cancel.is_set():
            return
        prompt = prompts[next(order) % len(prompts)]
        body = protocol.body(
            api, server.model, prompt["prompt"], prompt["max_tokens"], workload["ignore_eos"]
        )
        warmup = phase == "warmup"
        try:
            with in_flight:
                rec = await stream_request(http, server.url, protocol, api, body)
        except asyncio.CancelledError:
            on_record({**_cancelled(), **extra, "warmup": warmup, "max_tokens": None})
            raise
        rec.update(extra, warmup=warmup, max_tokens=prompt["max_tokens"])
        on_record(rec)

    return send


def _cancelled() -> dict:
    """The record of a request cut off when the point reached its time bound."""
    return {
        "start": time.time(),
        "ok": False,
        "error_kind": "cancelled",
        "error": "the point reached max_point_duration_s",
        "e2e_s": None,
        "ttft_s": None,
        "itl_s": [],
        "tpot_s": None,
        "output_tokens": 0,
        "output_tokens_source": None,
        "input_tokens": None,
        "input_tokens_source": None,
    }


def _thread_cpu() -> float:
    usage = resource.getrusage(resource.RUSAGE_THREAD)
    return usage.ru_utime + usage.ru_stime


async def _lag_monitor(samples: list[float], stop: asyncio.Event) -> None:
    """How late the loop wakes a 10 ms sleep: scheduling delay every request also sees."""
    loop = asyncio.get_running_loop()
    while not stop.is_set():
        t = loop.time()
        await asyncio.sleep(LAG_INTERVAL_S)
        samples.append(max(0.0, loop.time() - t - LAG_INTERVAL_S))


class _Meter:
    """The client's own CPU time, wall time and event-loop lag, from creation to stop()."""

    def __init__(self):
        self._lag: list[float] = []
        self._stop = asyncio.Event()
        self._monitor = asyncio.create_task(_lag_monitor(self._lag, self._stop))
        self._cpu0, self._wall0 = _thread_cpu(), time.monotonic()

    async def stop(self) -> tuple[float, float, list[float]]:
        """(CPU seconds, wall seconds, lag samples sorted)."""
        self._stop.set()
        await self._monitor
        cpu, wall = _thread_cpu() - self._cpu0, time.monotonic() - self._wall0
        return cpu, wall, sorted(self._lag)


def client_figures(cpu: float, wall: float, lag: list[float], timed_out: bool) -> dict:
    """The client's own figures, and whether (and why) it was saturated; `lag` sorted."""
    stats = {
        "cpu_s": cpu,
        "wall_s": wall,
        "cpu_share": cpu / wall if wall else 0.0,
        "loop_lag_p50_s": percentile(lag, 50) if lag else None,
        "loop_lag_p99_s": percentile(lag, 99) if lag else None,
        "loop_lag_max_s": lag[-1] if lag else None,
        "timed_out": timed_out,
    }
    reasons = []
    if stats["cpu_share"] > SATURATED_CPU_SHARE:
        reasons.append(f"its thread used {stats['cpu_share']:.0%} of a core")
    if lag and stats["loop_lag_p99_s"] > SATURATED_LAG_P99_S:
        reasons.append(f"its event loop ran {stats['loop_lag_p99_s'] * 1000:.0f} ms late (p99)")
    stats["saturated"] = bool(reasons)
    stats["warning"] = (
        "the load generator was saturated (" + "; ".join(reasons) + "): latencies include "
        "client-side delay; lower the load or use more client CPUs"
        if reasons
        else None
    )
    return stats
