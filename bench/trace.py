"""How closely the load generator keeps a trace's schedule, on this machine.

Starts the minimal streaming stub (llmsweep.loadgen.stub_server) in its own process on
loopback and replays a made-up trace on it with llmsweep's load generator, in worker
processes as the client service runs a point (client.workers, 1 unless --workers): Poisson
arrivals at 100 and 1000 requests/s (or the rates given) for a fixed time each, time scale
1. Prints, per rate, the requests sent and failed, the generator's CPU share (in cores),
and how late requests were sent against the trace's schedule (lateness: actual send time
minus scheduled, p50, p99 and the worst).

Usage: .venv/bin/python bench/trace.py [--seconds 5] [--tokens 32] [--rates 100 1000]
                                       [--workers 1]
"""

from __future__ import annotations

import argparse
import os
import random
import subprocess
import sys
import threading

from llmsweep.loadgen import point_request, runner, workers
from llmsweep.loadgen.patterns import trace
from llmsweep.loadgen.session import InFlight, raise_fd_limit
from llmsweep.util import free_port, http_ok, wait_until


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


def measure(url: str, rate: float, seconds: float, tokens: int, workers_: int) -> dict:
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


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("--seconds", type=float, default=5.0)
    parser.add_argument("--tokens", type=int, default=32)
    parser.add_argument("--rates", type=float, nargs="+", default=[100, 1000])
    parser.add_argument("--workers", type=int, default=1, help="load-generator processes")
    args = parser.parse_args()
    raise_fd_limit()
    workers.prepare()
    port = free_port("127.0.0.1")
    stub = subprocess.Popen(
        [sys.executable, "-m", "llmsweep.loadgen.stub_server", "--port", str(port)],
        stdout=subprocess.DEVNULL,
        stderr=subprocess.DEVNULL,
    )
    url = f"http://127.0.0.1:{port}"
    try:
        wait_until(lambda: http_ok(url + "/v1/models"), 30, "the stub server")
        print(
            f"stub on {url}, {args.tokens} chunks per request, {args.seconds:g} s of trace per"
            f" rate, {args.workers} generator process(es), {os.cpu_count()} cores shared by"
            " stub and generator"
        )
        print(
            f"{'req/s':>7} {'rows':>6} {'sent':>6} {'errors':>7} {'gen CPU':>8}"
            f" {'late p50':>10} {'late p99':>10} {'late max':>10}"
        )
        for rate in args.rates:
            m = measure(url, rate, args.seconds, args.tokens, args.workers)
            print(
                f"{m['rate']:>7g} {m['rows']:>6} {m['sent']:>6} {m['errors']:>7}"
                f" {m['cpu_share']:>7.0%} {m['p50_ms']:>8.2f}ms {m['p99_ms']:>8.2f}ms"
                f" {m['max_ms']:>8.2f}ms",
                flush=True,
            )
    finally:
        stub.terminate()
        stub.wait(10)


if __name__ == "__main__":
    main()
