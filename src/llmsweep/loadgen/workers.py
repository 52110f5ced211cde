"""A point's load-generator processes: one, or several when one core cannot keep up.

A point runs in processes of its own so that it can be stopped at once, whatever it
holds: a cancelled point's workers are killed when they have not stopped within
STOP_GRACE_S (closing 100,000 connections one by one takes far longer), and what they
held goes with them. They are forked from a server process that has the load generator
loaded already (multiprocessing's forkserver), so a point starts in milliseconds.

Several workers split the point, its load by its pattern (clients for the closed loop,
the rate for the open loop: a sum of Poisson processes is a Poisson process), its
warm-up requests evenly; every record and in-flight change comes back through a queue,
so the caller sees one point.
"""

from __future__ import annotations

import multiprocessing as mp
import queue as queue_module
import sys
import time
from multiprocessing import forkserver

from llmsweep.loadgen import patterns, runner, session
from llmsweep.loadgen.patterns.common import share
from llmsweep.loadgen.session import InFlight, raise_fd_limit


def split(request: dict, k: int, n: int) -> dict:
    """Worker k's share (of n) of the point request."""
    sweep = patterns.pattern(request["pattern"]).split(request["sweep"], k, n)
    if n > 1:
        sweep["seed"] = request["sweep"]["seed"] * 1000 + k
    warmup = {**request["warmup"], "requests": share(request["warmup"]["requests"], k, n)}
    client = {**request["client"], "workers": 1}
    return {**request, "sweep": sweep, "warmup": warmup, "client": client}


# Once the point is cancelled, its workers have this long to stop before they are killed.
STOP_GRACE_S = 0.2
_PROCESSES = mp.get_context("forkserver")
_PROCESSES.set_forkserver_preload([__name__])


def prepare() -> None:
    """Start the server the workers are forked from, so a first point starts at once too.
    A worker runs its parent's main module again (multiprocessing does, gunicorn's for the
    client service): the server imports it too, so that takes no time in each worker."""
    main = getattr(sys.modules.get("__main__"), "__spec__", None)
    _PROCESSES.set_forkserver_preload([__name__, *([main.name] if main else [])])
    forkserver.ensure_running()


class Orphaned:
    """A worker's stop flag, set also once the process that started it is gone, however
    it ended (killed outright): `parent` is the reading end of a pipe whose writing end
    that process alone holds, so it reads the end of the file then. The forkserver cannot
    tell: the workers it forked keep it alive."""

    def __init__(self, stop, parent):
        self.stop = stop
        self.parent = parent

    def is_set(self) -> bool:
        return self.stop.is_set() or self.parent.poll()


def _child(server: runner.Server, request: dict, out, stop, parent, k: int) -> None:
    raise_fd_limit()
    cancel = Orphaned(stop, parent)
    in_flight = InFlight(lambda d: out.put(("in_flight", d)))

    def record(rec: dict) -> None:
        out.put(("record", rec))

    def silent(seconds: float) -> None:
        out.put(("silent", (k, seconds)))

    try:
        stats = session.run(runner.run(server, request, record, cancel, in_flight, silent))
        out.put(("done", (k, stats)))
    except Exception as exc:  # noqa: BLE001 - reported to the parent
        out.put(("failed", (k, f"{type(exc).__name__}: {exc}")))


def run(
    server: runner.Server, request: dict, on_record, cancel, in_flight: InFlight, on_silence=None
) -> dict:
    """Run the point request in request["client"]["workers"] processes; as runner.run
    (`on_silence` hears the longest silence any worker saw)."""
    n = request["client"]["workers"]
    out, stop = _PROCESSES.Queue(), _PROCESSES.Event()
    parent, alive = _PROCESSES.Pipe(duplex=False)  # this process holds `alive` alone
    procs = [
        _PROCESSES.Process(
            target=_child, args=(server, split(request, k, n), out, stop, parent, k), daemon=True
        )
        for k in range(n)
    ]
    started = []
    for p in procs:  # large prompts take a while to hand over: a cancel may come meanwhile
        if cancel.is_set():
            break
        p.start()
        started.append(p)
    stats, failures = [], []
    ended: set[int] = set()  # the workers that said they ended, or died
    silent = dict.fromkeys(range(n), 0.0)
    given_up_at = None  # when a cancelled point stops waiting for its workers
    try:
        while len(ended) < len(started):
            if cancel.is_set() and given_up_at is None:
                stop.set()
                given_up_at = time.monotonic() + STOP_GRACE_S
            if given_up_at is not None and time.monotonic() > given_up_at:
                break
            try:
                kind, payload = out.get(timeout=runner.POLL_S)
            except queue_module.Empty:
                for k, p in enumerate(started):
                    if k not in ended and p.exitcode not in (None, 0):  # killed, crashed
                        failures.append(f"a load-generator worker died (exit code {p.exitcode})")
                        ended.add(k)
                continue
            if kind == "record":
                on_record(payload)
            elif kind == "in_flight":
                in_flight.add(payload)
            elif kind == "silent":
                worker, seconds = payload
                silent[worker] = seconds
                if on_silence is not None:  # the longest of any worker: they share the server
                    on_silence(max(silent.values()))
            elif kind == "done":
                ended.add(payload[0])
                stats.append(payload[1])
            else:
                ended.add(payload[0])
                failures.append(payload[1])
    finally:
        stop.set()
        _end(started, given_up_at or time.monotonic() + 30)
        in_flight.add(-in_flight.now)  # those of killed workers never came back
        parent.close()
        alive.close()
    if failures and given_up_at is None:
        raise RuntimeError("; ".join(failures))
    return _merge(stats, n)


def _end(procs: list, deadline: float) -> None:
    """Let the workers end by `deadline` (time.monotonic), then kill those still running."""
    for p in procs:
        p.join(max(0.0, deadline - time.monotonic()))
    for p in procs:
        if p.is_alive():
            p.kill()
            p.join(5)


def _merge(stats: list[dict], n: int) -> dict:
    """The point's client figures from those of its workers (none for a cancelled point
    whose workers were still starting)."""
    cpu = sum(s["cpu_s"] for s in stats)
    wall = max((s["wall_s"] for s in stats), default=0.0)
    lags = [s["loop_lag_p99_s"] for s in stats if s["loop_lag_p99_s"] is not None]
    warnings = [s["warning"] for s in stats if s["warning"]]
    return {
        "workers": n,
        "cpu_s": cpu,
        "wall_s": wall,
        "cpu_share": cpu / wall if wall else 0.0,  # in cores: up to the number of workers
        "loop_lag_p50_s": None,
        "loop_lag_p99_s": max(lags) if lags else None,
        "loop_lag_max_s": max((s["loop_lag_max_s"] or 0 for s in stats), default=None),
        "timed_out": any(s["timed_out"] for s in stats),
        "stopped_on_stall": any(s["stopped_on_stall"] for s in stats),
        "saturated": any(s["saturated"] for s in stats),
        "warning": warnings[0] if warnings else None,
        "event_loop": stats[0]["event_loop"] if stats else session.EVENT_LOOP,
    }
