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

from benchlib import LATENESS_HEADER, lateness_line, stub_server, trace_lateness

from llmsweep.loadgen import workers
from llmsweep.loadgen.session import raise_fd_limit


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("--seconds", type=float, default=5.0)
    parser.add_argument("--tokens", type=int, default=32)
    parser.add_argument("--rates", type=float, nargs="+", default=[100, 1000])
    parser.add_argument("--workers", type=int, default=1, help="load-generator processes")
    args = parser.parse_args()
    raise_fd_limit()
    workers.prepare()
    with stub_server() as url:
        print(
            f"stub on {url}, {args.tokens} chunks per request, {args.seconds:g} s of trace per"
            f" rate, {args.workers} generator process(es), {os.cpu_count()} cores shared by"
            " stub and generator"
        )
        print(LATENESS_HEADER)
        for rate in args.rates:
            m = trace_lateness(url, rate, args.seconds, args.tokens, args.workers)
            print(lateness_line(m), flush=True)


if __name__ == "__main__":
    main()
