"""Several load-generator processes for one point, when one core cannot keep up.

The point is split across worker processes, its load by its pattern (clients for the
closed loop, the rate for the open loop: a sum of Poisson processes is a Poisson
process), its warm-up requests evenly; every record and in-flight change comes back
through a queue, so the caller sees one point.
"""

from __future__ import annotations

import asyncio
import multiprocessing as mp
import queue as queue_module

from llmsweep.loadgen import patterns, runner
from llmsweep.loadgen.patterns.common import share
from llmsweep.loadgen.session import InFlight, raise_fd_limit


def split(request: dict, k: int, n: int) -> dict:
    """Worker k's share (of n) of the point request."""
    sweep = patterns.pattern(request["pattern"]).split(request["sweep"], k, n)
    sweep["seed"] = request["sweep"]["seed"] * 1000 + k
    warmup = {**request["warmup"], "requests": share(request["warmup"]["requests"], k, n)}
    client = {**request["client"], "workers": 1}
    return {**request, "sweep": sweep, "warmup": warmup, "client": client}


def _child(server: runner.Server, request: dict, out, cancel) -> None:
    raise_fd_limit()
    in_flight = InFlight(lambda d: out.put(("in_flight", d)))

    def record(rec: dict) -> None:
        out.put(("record", rec))

    try:
        stats = asyncio.run(runner.run(server, request, record, cancel, in_flight))
        out.put(("done", stats))
    except Exception as exc:  # noqa: BLE001 - reported to the parent
        out.put(("failed", f"{type(exc).__name__}: {exc}"))


def run(server: runner.Server, request: dict, on_record, cancel, in_flight: InFlight) -> dict:
    """Run the point request in request["client"]["workers"] processes; as runner.run."""
    n = request["client"]["workers"]
    ctx = mp.get_context("spawn")
    out, stop = ctx.Queue(), ctx.Event()
    procs = [
        ctx.Process(target=_child, args=(server, split(request, k, n), out, stop), daemon=True)
        for k in range(n)
    ]
    for p in procs:
        p.start()
    stats, failures = [], []
    try:
        while len(stats) + len(failures) < n:
            if cancel.is_set():
                stop.set()
            try:
                kind, payload = out.get(timeout=0.5)
            except queue_module.Empty:
                if not any(p.is_alive() for p in procs):
                    failures.append("a load-generator worker died")
                continue
            if kind == "record":
                on_record(payload)
            elif kind == "in_flight":
                in_flight.add(payload)
            elif kind == "done":
                stats.append(payload)
            else:
                failures.append(payload)
    finally:
        stop.set()
        for p in procs:
            p.join(30)
            if p.is_alive():
                p.kill()
    if failures:
        raise RuntimeError("; ".join(failures))
    cpu = sum(s["cpu_s"] for s in stats)
    wall = max(s["wall_s"] for s in stats)
    lags = [s["loop_lag_p99_s"] for s in stats if s["loop_lag_p99_s"] is not None]
    warnings = [s["warning"] for s in stats if s["warning"]]
    return {
        "workers": n,
        "cpu_s": cpu,
        "wall_s": wall,
        "cpu_share": cpu / wall if wall else 0.0,  # in cores: up to the number of workers
        "loop_lag_p50_s": None,
        "loop_lag_p99_s": max(lags) if lags else None,
        "loop_lag_max_s": max((s["loop_lag_max_s"] or 0) for s in stats),
        "timed_out": any(s["timed_out"] for s in stats),
        "saturated": any(s["saturated"] for s in stats),
        "warning": warnings[0] if warnings else None,
    }
