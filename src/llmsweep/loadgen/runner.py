"""One load point: warm-up, then the pattern's load, bounded in time, stopped early when
cancelled or (if asked) when the server stalls; the client's own CPU use and event-loop
lag are measured so a saturated client is never mistaken for a slow server."""

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
from llmsweep.loadgen.stalls import Silence
from llmsweep.loadgen.stats import percentile

LAG_INTERVAL_S = 0.01
SATURATED_CPU_SHARE = 0.9
SATURATED_LAG_P99_S = 0.02


class Server(NamedTuple):
    """The LLM server a point runs against, and the headers that present the run's token
    to it."""

    url: str
    engine: str
    model: str
    headers: dict | None = None


# How often the point looks at its cancel flag (DELETE stops a point within this), and at
# the server's silence (stalls).
POLL_S = 0.05
SILENCE_CHECK_S = 1.0


class Stop:
    """Why a point's load was stopped early, if it was; set before its task is cancelled.
    Requests cut off by the time bound or a stall are recorded (they are the point's
    data); those cut off by DELETE are not (the point is abandoned)."""

    DELETED = "deleted"
    TIME = "time"
    STALL = "stall"

    def __init__(self):
        self.reason: str | None = None
        self.silent_s = 0.0  # the server's silence that stopped the point

    def why(self) -> str:
        if self.reason == self.STALL:
            return (
                f"the point was cut short: the server sent nothing for {self.silent_s:.0f} s "
                "(client.stop_on_stall)"
            )
        return "the point reached max_point_duration_s"


async def run(
    server: Server, request: dict, on_record, cancel, in_flight: InFlight, on_silence=None
) -> dict:
    """Run the point request (loadgen.point_request, completed); every finished request
    goes to `on_record` at once. `cancel` (an Event) stops it within POLL_S, its requests
    in flight dropped. `on_silence(seconds)`, every SILENCE_CHECK_S, tells how long the
    server has sent nothing while requests waited. Returns the client's own figures (CPU,
    loop lag, saturation, how the point stopped)."""
    meter = _Meter()
    silence = Silence(request["client"]["stall_s"])
    stop = Stop()
    keep_alive = keep_alive_for(server.engine)
    timeout_s = request["workload"]["request_timeout_s"]
    async with new_session(timeout_s, keep_alive, server.headers) as http:
        send = _sender(http, server, request["workload"], on_record, in_flight, silence, stop)
        load = asyncio.create_task(_phases(send, request))
        await _supervise(load, request, cancel, silence, stop, on_silence)
    cpu, wall, lag = await meter.stop()
    return client_figures(cpu, wall, lag, stop)


async def _supervise(load, request: dict, cancel, silence: Silence, stop: Stop, on_silence):
    """Wait for the load to end; cancel it early when the point is cancelled, reaches its
    time bound or (with client.stop_on_stall) stalls. `stop` says which."""
    clock = asyncio.get_running_loop()
    deadline = clock.time() + request["sweep"]["max_point_duration_s"]
    client = request["client"]
    next_check = clock.time() + SILENCE_CHECK_S
    while not load.done():
        await asyncio.wait({load}, timeout=max(0.0, min(POLL_S, deadline - clock.time())))
        if load.done():
            break
        now = clock.time()
        if cancel.is_set():
            stop.reason = Stop.DELETED
        elif now >= deadline:
            stop.reason = Stop.TIME
        elif now >= next_check:
            next_check = now + SILENCE_CHECK_S
            silent = silence.silent_now()
            if on_silence is not None:
                on_silence(silent)
            if client["stop_on_stall"] and silent > client["stall_s"]:
                stop.reason, stop.silent_s = Stop.STALL, silent
        if stop.reason:
            load.cancel()
            await asyncio.wait({load})
    if on_silence is not None:
        on_silence(0.0)
    if not load.cancelled():
        load.result()  # the load's own error, if it failed


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


def _sender(
    http, server: Server, workload: dict, on_record, in_flight: InFlight, silence, stop: Stop
):
    """send(phase, prompt_index=None, history=None, **extra): one request with the next
    prompt (or the prompt at `prompt_index`: a trace's row); its record, with `extra` and
    flagged warm-up or not, goes to `on_record`, also when the point's time runs out or it
    stalls (not when it is cancelled). With `history` (a conversation's messages so far),
    the prompt is sent after them, and send returns them with the prompt and the server's
    answer added (None when the request failed); the answer stays out of the record."""
    protocol = for_engine(server.engine)
    prompts, api = workload["prompts"], workload["api"]
    order = itertools.count()

    async def send(
        phase: str, prompt_index: int | None = None, history: list[dict] | None = None, **extra
    ) -> list[dict] | None:
        index = next(order) if prompt_index is None else prompt_index
        prompt = prompts[index % len(prompts)]
        body = protocol.body(
            api,
            server.model,
            prompt["prompt"],
            prompt["max_tokens"],
            workload["ignore_eos"],
            history=history,
        )
        warmup = phase == "warmup"
        wait = silence.wait()
        keep_text = history is not None
        try:
            with in_flight:
                rec = await stream_request(
                    http, server.url, protocol, api, body, keep_text=keep_text, wait=wait
                )
        except asyncio.CancelledError:
            stalled = wait.end()
            if stop.reason != Stop.DELETED:
                cut = {**_cancelled(stop.why()), **stalled, **extra}
                on_record({**cut, "warmup": warmup, "max_tokens": None})
            raise
        answer = rec.pop("text", None)
        rec.update(extra, warmup=warmup, max_tokens=prompt["max_tokens"])
        on_record(rec)
        if history is None or not rec["ok"]:
            return None
        asked = {"role": "user", "content": prompt["prompt"]}
        return [*history, asked, {"role": "assistant", "content": answer}]

    return send


def _cancelled(why: str) -> dict:
    """The record of a request cut off when the point reached its time bound or stalled."""
    return {
        "start": time.time(),
        "ok": False,
        "error_kind": "cancelled",
        "error": why,
        "e2e_s": None,
        "ttft_s": None,
        "itl_s": [],
        "tpot_s": None,
        "output_tokens": 0,
        "output_tokens_source": None,
        "input_tokens": None,
        "input_tokens_source": None,
        "cached_tokens": None,
        "cached_tokens_source": None,
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


def client_figures(cpu: float, wall: float, lag: list[float], stop: Stop) -> dict:
    """The client's own figures, whether (and why) it was saturated, and how the point
    stopped; `lag` sorted."""
    stats = {
        "cpu_s": cpu,
        "wall_s": wall,
        "cpu_share": cpu / wall if wall else 0.0,
        "loop_lag_p50_s": percentile(lag, 50) if lag else None,
        "loop_lag_p99_s": percentile(lag, 99) if lag else None,
        "loop_lag_max_s": lag[-1] if lag else None,
        "timed_out": stop.reason == Stop.TIME,
        "stopped_on_stall": stop.reason == Stop.STALL,
        "event_loop": type(asyncio.get_running_loop()).__module__.split(".")[0],
    }
    reasons = []
    if stats["cpu_share"] > SATURATED_CPU_SHARE:
        reasons.append(f"its thread used {stats['cpu_share']:.0%} of a core")
    if lag and stats["loop_lag_p99_s"] > SATURATED_LAG_P99_S:
        reasons.append(f"its event loop ran {stats['loop_lag_p99_s'] * 1000:.0f} ms late (p99)")
    stats["saturated"] = bool(reasons)
    warnings = []
    if reasons:
        warnings.append(
            "the load generator was saturated (" + "; ".join(reasons) + "): latencies "
            "include client-side delay; lower the load or use more client CPUs"
        )
    if stats["stopped_on_stall"]:
        warnings.append(stop.why())
    stats["warning"] = "; ".join(warnings) or None
    return stats
