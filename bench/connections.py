"""Failed requests against a server that closes its connections: llama.cpp's llama-server.

llama-server closes each connection after a streamed response. A client that pools
keep-alive connections (engine openai) finds some pooled connections dead when it sends
the next request; the load generator must retry those on a fresh connection, never count
them as failed. Engine llama_cpp opens a connection per request.

Starts llama-server with the demo model on loopback (tests/helpers.llama_server, with
slots for the largest level; 2 generated tokens per request, so that requests are fast)
and runs closed-loop points through the load generator as the client service does
(loadgen.workers.run): for each engine at 1, 4, 16 and 64 clients, `--requests` requests
per engine split evenly over the levels. Prints per point the requests, the failed ones
and the failures by error kind, then each engine's totals. The server is stopped
whatever happens.

Usage: .venv/bin/python bench/connections.py [--requests 10000] [--engines openai llama_cpp]
"""

from __future__ import annotations

import argparse
import collections
import sys
import threading
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
sys.path[:0] = [str(ROOT / "tests"), str(ROOT / "src")]
from helpers import llama_server  # noqa: E402
from llmsweep.loadgen import point_request, runner, workers  # noqa: E402
from llmsweep.loadgen.session import InFlight, raise_fd_limit  # noqa: E402
from llmsweep.models import DEMO_MODEL  # noqa: E402

LEVELS = (1, 4, 16, 64)
ENGINES = ("openai", "llama_cpp")
MAX_TOKENS = 2


def point_body(clients: int, requests: int) -> dict:
    """A closed-loop point of `clients` sending `requests` in all (rounded up per client)."""
    return {
        "pattern": "closed",
        "sweep": {"clients": clients, "requests_per_client": -(-requests // clients)},
        "warmup": {"requests": 0, "duration_s": 0},
        "workload": {
            "prompts": [{"prompt": "Say hi", "max_tokens": MAX_TOKENS}],
            "api": "completions",
            "ignore_eos": True,
            "request_timeout_s": 60,
        },
    }


def run_point(url: str, engine: str, clients: int, requests: int) -> list[dict]:
    """The records of one point, run as the client service runs it."""
    records: list[dict] = []
    request = point_request.complete(point_body(clients, requests))
    server = runner.Server(url, engine, DEMO_MODEL)
    workers.run(server, request, records.append, threading.Event(), InFlight())
    return records


def failures(records: list[dict]) -> collections.Counter:
    return collections.Counter(r["error_kind"] for r in records if not r["ok"])


def kinds_text(kinds: collections.Counter) -> str:
    return ", ".join(f"{k}: {n}" for k, n in kinds.most_common()) or "-"


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("--requests", type=int, default=10000, help="requests per engine")
    parser.add_argument("--engines", nargs="+", choices=ENGINES, default=list(ENGINES))
    args = parser.parse_args()
    raise_fd_limit()
    workers.prepare()
    with llama_server(parallel=max(LEVELS)) as url:
        print(f"llama-server on {url}, {max(LEVELS)} slots, the demo model on the CPU")
        print(f"{'engine':>9} {'clients':>8} {'requests':>9} {'failed':>7} {'req/s':>7}  failures")
        for engine in args.engines:
            total, failed, kinds = 0, 0, collections.Counter()
            for clients in LEVELS:
                t = time.monotonic()
                records = run_point(url, engine, clients, args.requests // len(LEVELS))
                wall = time.monotonic() - t
                point_kinds = failures(records)
                n_failed = sum(point_kinds.values())
                total, failed, kinds = total + len(records), failed + n_failed, kinds + point_kinds
                print(
                    f"{engine:>9} {clients:>8} {len(records):>9} {n_failed:>7}"
                    f" {len(records) / wall:>7.0f}  {kinds_text(point_kinds)}",
                    flush=True,
                )
            print(f"{engine:>9} {'all':>8} {total:>9} {failed:>7} {'':>7}  {kinds_text(kinds)}")


if __name__ == "__main__":
    main()
