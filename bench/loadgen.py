"""How fast the load generator is, on this machine.

Starts the minimal streaming stub (llmsweep.loadgen.stub_server) in its own process on
loopback and drives it with llmsweep's load generator, closed loop, at concurrency 1, 64,
512 and 2048 for a fixed time each. Prints the request rate and streamed-chunk rate
sustained, the generator's CPU share, and at concurrency 1 its added latency: client TTFT
minus the stub's own time from request to first byte.

Each level runs in a new process of its own, whose CPU time is read from the process table
from the stub's first request of the level to its last one's end. Divided into the
requests the stub served meanwhile (its own count) it gives requests/s and chunks/s per
core: what one core does, whatever share of one the generator got.

With --servebench PATH it also runs an established load generator, servebench (PyPI),
at each level against the same stub, measured the same way, and prints the ratios.
Install it in a venv of its own, never in the project's:
    python3 -m venv /tmp/peer && /tmp/peer/bin/pip install servebench==1.1.3

With --baseline REV it also runs the load generator of git revision REV (its tree, taken
from git) at each level, in turn with this checkout's, and prints after/before per core.
--repeats N runs every generator N times a level, in turn, and prints the medians, and of
the ratios per core the median over the turns and their range.

With --live it measures the cost of the live view instead: each level runs as a sweep
point does, in the client service (under gunicorn, as services.definitions starts it),
followed by benchmark.follow_point; alternately without the live view and with it
(llmsweep.live: live.json every 2 s, the rich live line drawn on a pseudo-terminal), in
the same run, and prints the load generator's figures of both, their ratio, and the CPU
time the live view itself took in the following process (ms per second of the point).

With --trace-rates it then replays a made-up trace of Poisson arrivals on the same stub
at each rate and prints how late requests were sent against the schedule (as
bench/trace.py does).

Usage: .venv/bin/python bench/loadgen.py [--seconds 5] [--tokens 32] [--loops asyncio,uvloop]
                                          [--levels 1,64,512,2048] [--servebench PATH]
                                          [--baseline REV] [--repeats 1]
                                          [--trace-rates 100 1000]
       .venv/bin/python bench/loadgen.py --live [--seconds 5] [--repeats 2]
"""

from __future__ import annotations

import argparse
import asyncio
import contextlib
import csv
import itertools
import json
import os
import statistics
import subprocess
import sys
import tempfile
import threading
import time
from pathlib import Path

import psutil
from benchlib import LATENESS_HEADER, lateness_line, stub_server, trace_lateness

from llmsweep import secret
from llmsweep.benchmark import follow_point, start_point
from llmsweep.live.terminal import Terminal
from llmsweep.live.watch import PointWatch
from llmsweep.loadgen import point_request, runner, session, workers
from llmsweep.loadgen.session import InFlight, raise_fd_limit
from llmsweep.paths import RunPaths
from llmsweep.util import free_port, http_json, http_ok, wait_until

LEVELS = (1, 64, 512, 2048)
ROOT = Path(__file__).resolve().parents[1]


def point_body(clients: int, seconds: float, tokens: int) -> dict:
    """A closed-loop point of `clients` for `seconds`, against the stub."""
    return {
        "pattern": "closed",
        "sweep": {
            "clients": clients,
            "requests_per_client": 10**6,
            "duration_s": seconds,
            "max_point_duration_s": seconds + 60,
        },
        "warmup": {"requests": 0, "duration_s": 0},
        "workload": {
            "prompts": [{"prompt": "x", "max_tokens": tokens}],
            "api": "completions",
            "ignore_eos": False,
            "request_timeout_s": 60,
        },
    }


def measure(url: str, clients: int, seconds: float, tokens: int, loop: str = "uvloop") -> dict:
    """One level run in this process on event loop `loop` (uvloop, or asyncio's own)."""
    records: list[dict] = []
    request = point_request.complete(point_body(clients, seconds, tokens))
    server = runner.Server(url, "openai", "stub")
    _, before = http_json(url + "/stats")
    point = runner.run(server, request, records.append, threading.Event(), InFlight())
    if loop == "uvloop":
        stats = session.run(point)
    else:
        stats = asyncio.run(point)
    _, after = http_json(url + "/stats")
    ok = [r for r in records if r["ok"]]
    wall = stats["wall_s"]
    served = after["requests"] - before["requests"]
    ttfb = (after["ttfb_s_sum"] - before["ttfb_s_sum"]) / served if served else 0.0
    ttft = sorted(r["ttft_s"] for r in ok)
    return {
        "clients": clients,
        "req_s": len(ok) / wall,
        "chunks_s": sum(r["chunks"] for r in ok) / wall,
        "errors": len(records) - len(ok),
        "cpu_share": stats["cpu_share"],
        "ttft_p50_ms": ttft[len(ttft) // 2] * 1000 if ttft else float("nan"),
        "added_ms": (sum(ttft) / len(ttft) - ttfb) * 1000 if ttft else float("nan"),
    }


def client_service(stub_url: str) -> tuple[subprocess.Popen, dict]:
    """The client service under gunicorn, as services.definitions.client_service starts it,
    loading the stub; and its lease (URL, and the token it requires)."""
    secret_file = secret.ensure(Path(tempfile.mkdtemp()) / "secret")
    port = free_port("127.0.0.1")
    argv = [sys.executable, "-m", "gunicorn", "--bind", f"127.0.0.1:{port}", "--workers", "1"]
    argv += ["--worker-class", "gthread", "--threads", "16", "--graceful-timeout", "5"]
    argv += ["llmsweep.client_service.app:create_app()"]
    env = {**os.environ, "LLMSWEEP_UPSTREAM": stub_url, "LLMSWEEP_ENGINE": "openai"}
    env |= {"LLMSWEEP_MODEL": "stub", "LLMSWEEP_RUN": "bench"}
    env |= {"LLMSWEEP_SECRET_FILE": str(secret_file)}
    proc = subprocess.Popen(argv, env=env, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
    lease = {"url": f"http://127.0.0.1:{port}", "auth": "bearer", "secret_file": str(secret_file)}
    health = lease["url"] + "/health"
    wait_until(lambda: http_ok(health, headers=secret.headers_of(lease)), 60, "client service")
    return proc, lease


class PseudoTerminal:
    """A terminal for the live line (rich draws on a TTY), drained in a thread."""

    def __init__(self):
        import pty

        self.master, slave = pty.openpty()
        self.out = os.fdopen(slave, "w")
        threading.Thread(target=self._drain, daemon=True).start()

    def _drain(self) -> None:
        try:
            while os.read(self.master, 65536):
                pass
        except OSError:
            pass


def measure_followed(client: dict, clients: int, seconds: float, tokens: int, live) -> dict:
    """One level run as a sweep point: through the client service, followed to its end by
    follow_point, with the live view when `live` is (RunPaths, terminal output)."""
    point = {"deployment": "stub", "load": f"c{clients}", "pattern": "closed"}
    point |= {"clients": clients, "repeat": 0}
    body = point_body(clients, seconds, tokens)
    paths = live[0] if live else RunPaths("bench", tempfile.mkdtemp())
    watch = PointWatch(paths, point, body, Terminal(live[1])) if live else None
    spent = 0.0  # CPU time of the live view in this (the deployment job's) process

    def timed(view: dict) -> None:
        nonlocal spent
        t = time.thread_time()
        update(view)
        spent += time.thread_time() - t

    point_id = start_point(client, body)
    if watch:
        watch.begin()
        update, watch.update = watch.update, timed
    requests = paths.requests("stub", f"c{clients}")
    requests.parent.mkdir(parents=True, exist_ok=True)
    with open(os.devnull, "w") as log, contextlib.redirect_stderr(log):  # the job's log
        view = follow_point(client, point_id, requests, point, [], watch)
    records = [json.loads(line) for line in requests.read_text().splitlines()]
    ok = [r for r in records if r["ok"]]
    wall = view["client"]["wall_s"]
    ttft = sorted(r["ttft_s"] for r in ok)
    return {
        "req_s": len(ok) / wall,
        "chunks_s": sum(r["chunks"] for r in ok) / wall,
        "errors": len(records) - len(ok),
        "cpu_share": view["client"]["cpu_share"],
        "ttft_p50_ms": ttft[len(ttft) // 2] * 1000 if ttft else float("nan"),
        "live_cpu_ms_s": spent / wall * 1000,
    }


def live_cost(url: str, seconds: float, tokens: int, repeats: int) -> None:
    """Each level without and with the live view, alternating, `repeats` times each."""
    service, client = client_service(url)
    terminal = PseudoTerminal()
    print(
        f"{'clients':>8} {'live view':>9} {'req/s':>9} {'chunks/s':>10} {'errors':>7}"
        f" {'gen CPU':>8} {'TTFT p50':>9} {'live view CPU':>14}",
        flush=True,
    )
    try:
        with tempfile.TemporaryDirectory() as tmp:
            paths = RunPaths("bench", tmp)
            for clients in LEVELS:
                runs: dict[bool, list[dict]] = {False: [], True: []}
                for k in range(2 * repeats):
                    with_live = bool(k % 2)
                    live = (paths, terminal.out) if with_live else None
                    runs[with_live].append(measure_followed(client, clients, seconds, tokens, live))
                for with_live, ms in runs.items():
                    m = {key: sum(x[key] for x in ms) / len(ms) for key in ms[0]}
                    print(
                        f"{clients:>8} {'on' if with_live else 'off':>9} {m['req_s']:>9.0f}"
                        f" {m['chunks_s']:>10.0f} {m['errors']:>7.0f} {m['cpu_share']:>7.0%}"
                        f" {m['ttft_p50_ms']:>7.2f}ms {m['live_cpu_ms_s']:>9.2f} ms/s",
                        flush=True,
                    )
                on, off = (sum(x["req_s"] for x in runs[b]) for b in (True, False))
                print(f"{'':>8} {'on/off':>9} {on / off:>9.3f}", flush=True)
    finally:
        service.terminate()
        service.wait(30)


class CpuSamples(threading.Thread):
    """The CPU time a process has taken, sampled every few milliseconds while it lives."""

    def __init__(self, pid: int):
        super().__init__(daemon=True)
        self.process = psutil.Process(pid)
        self.samples: list[tuple[float, float]] = []  # (monotonic time, CPU seconds)
        self.start()

    def run(self) -> None:
        with contextlib.suppress(psutil.NoSuchProcess):
            while True:
                times = self.process.cpu_times()
                self.samples.append((time.monotonic(), times.user + times.system))
                time.sleep(0.005)

    def at(self, moment: float) -> float:
        """CPU seconds taken by `moment` (the last sample before it)."""
        return max((cpu for t, cpu in self.samples if t <= moment), default=0.0)


def level_window(proc: subprocess.Popen, url: str, seconds: float) -> dict:
    """The requests the stub served in one level of `proc`, the CPU time `proc` took for
    them and the time they spanned: from the stub's first request of the level to the
    moment it has none in flight and gets no more. Both ends are read when the stub is
    idle, so it answers at once; the generator's start-up and summary fall outside."""
    cpu = CpuSamples(proc.pid)

    def stub() -> dict:
        return http_json(url + "/stats", timeout=60)[1]

    def started() -> float | None:
        if proc.poll() is not None:
            raise RuntimeError(f"the load generator ended early (exit {proc.returncode})")
        sent = time.monotonic()
        return sent if stub()["requests"] > before else None

    before = stub()["requests"]
    start = wait_until(started, 120, "the level's first request", 0.005, 0.005)
    time.sleep(seconds)
    idle: tuple[float, int] | None = None  # the first poll that found the stub as it is
    while True:
        sent, state = time.monotonic(), stub()
        if state["in_flight"]:
            idle = None
        elif idle and idle[1] == state["requests"]:
            break  # nothing arrived for a poll interval: the level is over
        else:
            idle = (sent, state["requests"])
        time.sleep(0.02)
    end, served = idle
    return {
        "window_s": end - start,
        "cpu_s": cpu.at(end) - cpu.at(start),
        "served": served - before,
    }


def per_core(window: dict, tokens: int) -> dict:
    """Requests and chunks per second of one core's time, and the share of a core taken."""
    cpu = window["cpu_s"] or float("nan")
    return {
        "cpu_share": window["cpu_s"] / window["window_s"],
        "req_s_core": window["served"] / cpu,
        "chunks_s_core": window["served"] * tokens / cpu,
    }


def llmsweep_level(src: Path, url: str, clients: int, seconds: float, tokens: int, loop: str):
    """One level run by a new process with the load generator of `src` (a src/ folder)."""
    argv = [sys.executable, __file__, "--level", str(clients), "--url", url, "--loops", loop]
    argv += ["--seconds", str(seconds), "--tokens", str(tokens)]
    path = [str(src), *filter(None, os.environ.get("PYTHONPATH", "").split(os.pathsep))]
    env = {**os.environ, "PYTHONPATH": os.pathsep.join(path)}
    with subprocess.Popen(argv, env=env, stdout=subprocess.PIPE, text=True) as proc:
        window = level_window(proc, url, seconds)
        out, _ = proc.communicate(timeout=600)
    if proc.returncode:
        raise RuntimeError(f"the load generator of {src} failed (exit {proc.returncode})")
    return {**json.loads(out), **per_core(window, tokens)}


def servebench(binary: str, url: str, clients: int, seconds: float, tokens: int) -> dict:
    """One level with servebench; its CSV gives req/s, tokens/s and TTFT p50."""
    with tempfile.TemporaryDirectory() as tmp:
        out = Path(tmp) / "levels.csv"
        argv = [binary, "run", "--url", url + "/v1", "--model", "stub"]
        argv += ["--endpoint", "completions", "--concurrency", str(clients)]
        argv += ["--duration", str(seconds), "--input-len", "8", "--output-len", str(tokens)]
        argv += ["--warmup", "0", "--no-gpu", "--csv", str(out)]
        quiet = {"stdout": subprocess.DEVNULL, "stderr": subprocess.DEVNULL}
        with subprocess.Popen(argv, **quiet) as proc:
            window = level_window(proc, url, seconds)
            proc.wait(600)
        if proc.returncode:
            raise RuntimeError(f"servebench failed (exit {proc.returncode})")
        row = next(csv.DictReader(out.open()))
    return {
        "req_s": float(row["req_s"]),
        "chunks_s": float(row["out_tok_s"]),
        "errors": int(row.get("failed") or 0),
        "ttft_p50_ms": float(row["ttft_p50_ms"]),
        **per_core(window, tokens),
    }


def source_of(rev: str, into: Path) -> Path:
    """The src/ folder of git revision `rev` of this checkout, written into `into` with the
    rest of its tree (the package reads config/ beside it)."""
    archive = subprocess.run(
        ["git", "-C", str(ROOT), "archive", rev], check=True, capture_output=True
    ).stdout
    subprocess.run(["tar", "-x", "-C", str(into)], input=archive, check=True)
    return into / "src"


def compare(url: str, args: argparse.Namespace, repeats: int) -> None:
    """Each level with each generator in turn, `repeats` times: their medians, and their
    ratios per core (this checkout's against the baseline revision's and servebench's)."""
    loops = args.loops.split(",")

    def ours(src: Path, loop: str):
        return lambda clients: llmsweep_level(src, url, clients, args.seconds, args.tokens, loop)

    def peer(clients: int) -> dict:
        return servebench(args.servebench, url, clients, args.seconds, args.tokens)

    with tempfile.TemporaryDirectory() as tmp:
        sources = {"llmsweep": ROOT / "src"}
        if args.baseline:
            rev = ["git", "-C", str(ROOT), "rev-parse", "--short", args.baseline]
            short = subprocess.run(rev, check=True, capture_output=True, text=True).stdout
            sources[f"llmsweep {short.strip()}"] = source_of(args.baseline, Path(tmp))
        generators = {
            f"{name} {loop}" if len(loops) > 1 else name: ours(src, loop)
            for (name, src), loop in itertools.product(sources.items(), loops)
        }
        if args.servebench:
            generators["servebench"] = peer
        print(
            f"{'clients':>7} {'generator':<24} {'req/s':>7} {'chunks/s':>9} {'errors':>6}"
            f" {'CPU':>5} {'req/s/core':>10} {'chunks/s/core':>13} {'TTFT p50':>10} {'added':>8}"
        )
        for clients in map(int, args.levels.split(",")):
            runs: dict[str, list[dict]] = {label: [] for label in generators}
            for _, (label, run) in itertools.product(range(repeats), generators.items()):
                runs[label].append(run(clients))
            for label, ms in runs.items():
                m = {k: statistics.median(x.get(k, 0.0) for x in ms) for k in ms[0]}
                added = f"{m['added_ms']:6.3f}ms" if clients == 1 and "added_ms" in m else ""
                print(
                    f"{clients:>7} {label:<24} {m['req_s']:>7.0f} {m['chunks_s']:>9.0f}"
                    f" {m['errors']:>6.0f} {m['cpu_share']:>5.0%} {m['req_s_core']:>10.0f}"
                    f" {m['chunks_s_core']:>13.0f} {m['ttft_p50_ms']:>8.2f}ms {added:>8}",
                    flush=True,
                )
            first, *others = runs
            ratios = []
            for label in others:  # turn by turn: the two ran one after the other
                turns = zip(runs[first], runs[label], strict=True)
                r = sorted(a["req_s_core"] / b["req_s_core"] for a, b in turns)
                spread = f" ({r[0]:.2f}-{r[-1]:.2f})" if len(r) > 1 else ""
                ratios.append(f"{first}/{label} {statistics.median(r):.2f}{spread}")
            if ratios:
                print(f"{'':>7} per core: {', '.join(ratios)}", flush=True)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("--seconds", type=float, default=5.0)
    parser.add_argument("--tokens", type=int, default=32)
    parser.add_argument(
        "--levels",
        default=",".join(map(str, LEVELS)),
        help="the client counts to run, in turn (not with --live)",
    )
    parser.add_argument("--servebench", help="path of a servebench binary to compare with")
    parser.add_argument("--baseline", help="a git revision whose load generator to compare with")
    parser.add_argument(
        "--loops",
        default="asyncio,uvloop",
        help="the event loops to measure each level on, in turn (asyncio: Python's own)",
    )
    parser.add_argument(
        "--live", action="store_true", help="measure the live view's cost (see the docstring)"
    )
    parser.add_argument("--repeats", type=int, help="runs per level and generator (--live: 2)")
    parser.add_argument(
        "--trace-rates",
        type=float,
        nargs="*",
        default=[],
        help="then replay a trace at these rates (requests/s) and print its send lateness",
    )
    # One level in this process, its figures printed as JSON: how compare() runs each.
    parser.add_argument("--level", type=int, help=argparse.SUPPRESS)
    parser.add_argument("--url", help=argparse.SUPPRESS)
    args = parser.parse_args()
    raise_fd_limit()
    if args.level:
        m = measure(args.url, args.level, args.seconds, args.tokens, args.loops)
        print(json.dumps(m))
        return
    with stub_server() as url:
        print(
            f"stub on {url}, {args.tokens} chunks per request, {args.seconds:g} s per level,"
            f" {os.cpu_count()} cores shared by stub and generator"
        )
        if args.live:
            live_cost(url, args.seconds, args.tokens, args.repeats or 2)
        else:
            compare(url, args, args.repeats or 1)
        if args.trace_rates:
            workers.prepare()
            print(f"trace replay, {args.seconds:g} s of Poisson arrivals per rate, one process:")
            print(LATENESS_HEADER)
            for rate in args.trace_rates:
                m = trace_lateness(url, rate, args.seconds, args.tokens, 1)
                print(lateness_line(m), flush=True)


if __name__ == "__main__":
    main()
