"""One load point: warm-up, then the load pattern, bounded in time; the client's own
CPU use and event-loop lag are measured so a saturated client is never mistaken for a
slow server."""

from __future__ import annotations

import asyncio
import itertools
import resource
import time

from llmsweep.loadgen import closed_loop, open_loop
from llmsweep.loadgen.protocols import for_engine
from llmsweep.loadgen.request import stream_request
from llmsweep.loadgen.session import InFlight, keep_alive_for, new_session
from llmsweep.loadgen.stats import percentile

LAG_INTERVAL_S = 0.01
SATURATED_CPU_SHARE = 0.9
SATURATED_LAG_P99_S = 0.02


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


async def run(base_url: str, params: dict, on_record, cancel, in_flight: InFlight) -> dict:
    """Run the point; every finished request goes to `on_record` at once. Returns the
    client's own figures (CPU, loop lag, saturation)."""
    protocol = for_engine(params["engine"])
    prompts = params["prompts"]
    order = itertools.count()
    stop = asyncio.Event()
    lag: list[float] = []
    monitor = asyncio.create_task(_lag_monitor(lag, stop))
    cpu0, wall0 = _thread_cpu(), time.monotonic()
    keep_alive = keep_alive_for(params["engine"])
    async with new_session(params["request_timeout_s"], keep_alive) as session:

        async def send(phase: str, **extra) -> None:
            if cancel.is_set():
                return
            prompt = prompts[next(order) % len(prompts)]
            body = protocol.body(params["api"], params["model"], prompt["prompt"],
                                 prompt["max_tokens"], params["ignore_eos"])  # fmt: skip
            try:
                with in_flight:
                    rec = await stream_request(session, base_url, protocol, params["api"], body)
            except asyncio.CancelledError:
                rec = {"start": time.time(), "ok": False, "error_kind": "cancelled",
                       "error": "the point reached max_duration_s", "e2e_s": None,
                       "ttft_s": None, "itl_s": [], "tpot_s": None, "output_tokens": 0,
                       "output_tokens_source": None, "input_tokens": None,
                       "input_tokens_source": None}  # fmt: skip
                on_record({**rec, **extra, "warmup": phase == "warmup", "max_tokens": None})
                raise
            rec.update(extra, warmup=phase == "warmup", max_tokens=prompt["max_tokens"])
            on_record(rec)

        async def warmup_send(**extra):
            await send("warmup", **extra)

        async def measured_send(**extra):
            await send("measure", **extra)

        async def point() -> None:
            w_req, w_dur = params["warmup_requests"], params["warmup_duration_s"]
            if w_req or w_dur:
                width = params["n_clients"] if params["pattern"] == "closed" else (
                    params["max_concurrency"] or 1)  # fmt: skip
                per_client = -(-w_req // width) if w_req else None
                await closed_loop.run(warmup_send, min(width, max(w_req, 1)), per_client,
                                      w_dur or None)  # fmt: skip
            if params["pattern"] == "closed":
                n, per_client = params["n_clients"], params["n_requests_per_client"]
                first = params.get("first_client", 0)
                await closed_loop.run(measured_send, n, per_client, params["duration_s"], first)
            else:
                await open_loop.run(measured_send, params["rate"], params["arrival"],
                                    params["n_requests"], params["duration_s"],
                                    params["max_concurrency"], params["seed"])  # fmt: skip

        try:
            await asyncio.wait_for(point(), params["max_duration_s"])
            timed_out = False
        except TimeoutError:
            timed_out = True
    stop.set()
    await monitor
    wall = time.monotonic() - wall0
    cpu = _thread_cpu() - cpu0
    lag.sort()
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
