"""What the bench scripts share: the streaming stub in a process of its own, and a trace
replay's send lateness on it (bench/trace.py, bench/loadgen.py --trace-rates)."""

from __future__ import annotations

import contextlib
import random
import subprocess
import sys
import threading

from llmsweep.loadgen import point_request, runner, workers
from llmsweep.loadgen.patterns import trace
from llmsweep.loadgen.session import InFlight
from llmsweep.util import free_port, http_ok, wait_until


@contextlib.contextmanager
def stub_server():
    """The minimal streaming stub (llmsweep.loadgen.stub_server) on a free loopback port,
    in its own process, until the block ends; yields its URL."""
    port = free_port("127.0.0.1")
    stub = subprocess.Popen(
        [sys.executable, "-m", "llmsweep.loadgen.stub_server", "--port", str(port)],
        stdout=subprocess.DEVNULL,
        stderr=subprocess.DEVNULL,
    )
    url = f"http://127.0.0.1:{port}"
    try:
        wait_until(lambda: http_ok(url + "/v1/models"), 30, "the stub server")
        yield url
    finally:
        stub.terminate()
        stub.wait(10)


def trace_body(rate: float, seconds: float, tokens: int, workers: int, seed: int = 0) -> dict:
    """A trace point: Poisson arrivals at `rate` for `seconds`, replayed as recorded."""
    rng = random.Random(seed)
    arrivals, at = [], 0.0
    while at < seconds:
        arrivals.append(at)
        at += rng.expovariate(rate)
    return {
        "pattern": "trace",
        "sweep": {
            "time_scale": 1,
            "arrivals_s": arrivals,
            "max_point_duration_s": seconds + 60,
        },
        "workload": {
            "prompts": [{"prompt": "x", "max_tokens": tokens}] * len(arrivals),
            "api": "completions",
            "ignore_eos": False,
            "request_timeout_s": 60,
        },
        "client": {"workers": workers},
    }


def trace_lateness(url: str, rate: float, seconds: float, tokens: int, workers_: int) -> dict:
    records: list[dict] = []
    body = trace_body(rate, seconds, tokens, workers_)
    assert point_request.refusal(body, point_request.schema()) is None
    request = point_request.complete(body)
    server = runner.Server(url, "openai", "stub")
    stats = workers.run(server, request, records.append, threading.Event(), InFlight())
    late = trace.figures(records)["lateness_s"]
    return {
        "rate": rate,
        "rows": len(body["sweep"]["arrivals_s"]),
        "sent": len(records),
        "errors": sum(not r["ok"] for r in records),
        "cpu_share": stats["cpu_share"],
        "p50_ms": late["p50"] * 1000,
        "p99_ms": late["p99"] * 1000,
        "max_ms": late["max"] * 1000,
    }


LATENESS_HEADER = (
    f"{'req/s':>7} {'rows':>6} {'sent':>6} {'errors':>7} {'gen CPU':>8}"
    f" {'late p50':>10} {'late p99':>10} {'late max':>10}"
)


def lateness_line(m: dict) -> str:
    """One trace_lateness result as a line under LATENESS_HEADER."""
    return (
        f"{m['rate']:>7g} {m['rows']:>6} {m['sent']:>6} {m['errors']:>7}"
        f" {m['cpu_share']:>7.0%} {m['p50_ms']:>8.2f}ms {m['p99_ms']:>8.2f}ms"
        f" {m['max_ms']:>8.2f}ms"
    )
