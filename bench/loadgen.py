"""How fast the load generator is, on this machine.

Starts the minimal streaming stub (llmsweep.loadgen.stub_server) in its own process on
loopback and drives it with llmsweep's load generator, closed loop, at concurrency 1, 64,
512 and 2048 for a fixed time each. Prints the request rate and streamed-chunk rate
sustained, the generator's CPU share, and at concurrency 1 its added latency: client TTFT
minus the stub's own time from request to first byte.

With --servebench PATH it also runs an established load generator, servebench (PyPI),
at each level against the same stub, alternating with llmsweep, and prints the ratios.
Install it in a venv of its own, never in the project's:
    python3 -m venv /tmp/peer && /tmp/peer/bin/pip install servebench==1.1.3

Usage: .venv/bin/python bench/loadgen.py [--seconds 5] [--tokens 32] [--servebench PATH]
"""

from __future__ import annotations

import argparse
import asyncio
import csv
import os
import subprocess
import sys
import tempfile
import threading
from pathlib import Path

from llmsweep.loadgen import point_request, runner
from llmsweep.loadgen.session import InFlight, raise_fd_limit
from llmsweep.util import free_port, http_json, http_ok, wait_until


def measure(url: str, clients: int, seconds: float, tokens: int) -> dict:
    records: list[dict] = []
    request = point_request.complete(
        {
            "pattern": "closed",
            "sweep": {
                "clients": clients,
                "requests_per_client": 10**9,
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
    )
    server = runner.Server(url, "openai", "stub")
    _, before = http_json(url + "/stats")
    stats = asyncio.run(runner.run(server, request, records.append, threading.Event(), InFlight()))
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


def servebench(binary: str, url: str, clients: int, seconds: float, tokens: int) -> dict:
    """One level with servebench; its CSV gives req/s, tokens/s and TTFT p50."""
    with tempfile.TemporaryDirectory() as tmp:
        out = Path(tmp) / "levels.csv"
        subprocess.run(
            [
                binary,
                "run",
                "--url",
                url + "/v1",
                "--model",
                "stub",
                "--endpoint",
                "completions",
                "--concurrency",
                str(clients),
                "--duration",
                str(seconds),
                "--input-len",
                "8",
                "--output-len",
                str(tokens),
                "--no-gpu",
                "--csv",
                str(out),
            ],
            check=True,
            stdout=subprocess.DEVNULL,
            stderr=subprocess.DEVNULL,
            timeout=600,
        )
        row = next(csv.DictReader(out.open()))
    return {
        "req_s": float(row["req_s"]),
        "chunks_s": float(row["out_tok_s"]),
        "ttft_p50_ms": float(row["ttft_p50_ms"]),
    }


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("--seconds", type=float, default=5.0)
    parser.add_argument("--tokens", type=int, default=32)
    parser.add_argument("--servebench", help="path of a servebench binary to compare with")
    args = parser.parse_args()
    raise_fd_limit()
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
            f"stub on {url}, {args.tokens} chunks per request, {args.seconds:g} s per level,"
            f" {os.cpu_count()} cores shared by stub and generator"
        )
        peer = "  servebench req/s  TTFT p50  llmsweep/servebench" if args.servebench else ""
        print(
            f"{'clients':>8} {'req/s':>9} {'chunks/s':>10} {'errors':>7} {'gen CPU':>8}"
            f" {'TTFT p50':>9} {'added':>9}{peer}"
        )
        for clients in (1, 64, 512, 2048):
            m = measure(url, clients, args.seconds, args.tokens)
            added = f"{m['added_ms']:7.3f}ms" if clients == 1 else ""
            line = (
                f"{m['clients']:>8} {m['req_s']:>9.0f} {m['chunks_s']:>10.0f} {m['errors']:>7}"
                f" {m['cpu_share']:>7.0%} {m['ttft_p50_ms']:>7.2f}ms {added:>9}"
            )
            if args.servebench:
                p = servebench(args.servebench, url, clients, args.seconds, args.tokens)
                line += (
                    f"  {p['req_s']:>16.0f} {p['ttft_p50_ms']:>7.2f}ms"
                    f" {m['req_s'] / p['req_s']:>20.2f}"
                )
            print(line, flush=True)
    finally:
        stub.terminate()
        stub.wait(10)


if __name__ == "__main__":
    main()
