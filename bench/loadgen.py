"""How fast the load generator is, on this machine.

Starts the minimal streaming stub (llmsweep.loadgen.stub_server) in its own process on
loopback and drives it with llmsweep's load generator, closed loop, at concurrency 1, 64,
512 and 2048 for a fixed time each. Prints the request rate and streamed-chunk rate
sustained, the generator's CPU share, and at concurrency 1 its added latency: client TTFT
minus the stub's own time from request to first byte.

Usage: .venv/bin/python bench/loadgen.py [--seconds 5] [--tokens 32]
"""

from __future__ import annotations

import argparse
import asyncio
import os
import subprocess
import sys
import threading

from llmsweep.loadgen import runner
from llmsweep.loadgen.session import InFlight, raise_fd_limit
from llmsweep.util import free_port, http_json, http_ok, wait_until


def measure(url: str, clients: int, seconds: float, tokens: int) -> dict:
    records: list[dict] = []
    params = {
        "engine": "openai", "api": "completions", "model": "stub", "ignore_eos": False,
        "prompts": [{"prompt": "x", "max_tokens": tokens}], "request_timeout_s": 60,
        "pattern": "closed", "n_clients": clients, "n_requests_per_client": 10**9,
        "duration_s": seconds, "warmup_requests": 0, "warmup_duration_s": 0,
        "max_duration_s": seconds + 60,
    }  # fmt: skip
    _, before = http_json(url + "/stats")
    stats = asyncio.run(runner.run(url, params, records.append, threading.Event(), InFlight()))
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


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("--seconds", type=float, default=5.0)
    parser.add_argument("--tokens", type=int, default=32)
    args = parser.parse_args()
    raise_fd_limit()
    port = free_port("127.0.0.1")
    stub = subprocess.Popen([sys.executable, "-m", "llmsweep.loadgen.stub_server",
                             "--port", str(port)], stdout=subprocess.DEVNULL,
                            stderr=subprocess.DEVNULL)  # fmt: skip
    url = f"http://127.0.0.1:{port}"
    try:
        wait_until(lambda: http_ok(url + "/v1/models"), 30, "the stub server")
        print(
            f"stub on {url}, {args.tokens} chunks per request, {args.seconds:g} s per level,"
            f" {os.cpu_count()} cores shared by stub and generator"
        )
        print(
            f"{'clients':>8} {'req/s':>9} {'chunks/s':>10} {'errors':>7} {'gen CPU':>8}"
            f" {'TTFT p50':>9} {'added':>9}"
        )
        for clients in (1, 64, 512, 2048):
            m = measure(url, clients, args.seconds, args.tokens)
            added = f"{m['added_ms']:7.3f}ms" if clients == 1 else ""
            print(
                f"{m['clients']:>8} {m['req_s']:>9.0f} {m['chunks_s']:>10.0f} {m['errors']:>7}"
                f" {m['cpu_share']:>7.0%} {m['ttft_p50_ms']:>7.2f}ms {added:>9}"
            )
    finally:
        stub.terminate()
        stub.wait(10)


if __name__ == "__main__":
    main()
