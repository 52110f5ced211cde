"""How much time the workflow itself adds, on this machine.

Runs the demo sweep (default config, its own results folder) from scratch and prints:
- the time from starting snakemake to the first benchmark request,
- the services' own start-up times (process start to first successful readiness probe),
- the orchestration overhead: the first figure minus the start-up times of the services
  the first point waited for,
- the time of a no-op re-run.

Usage: .venv/bin/python bench/orchestration.py [--keep]
"""

from __future__ import annotations

import argparse
import json
import os
import shutil
import subprocess
import sys
import tempfile
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT / "tests"))
from workflow_cmd import local_env, snakemake_cmd  # noqa: E402


def snakemake(workdir: Path, slurm_client_wait: bool = False) -> float:
    env = {**os.environ, "PATH": f"{Path(sys.executable).parent}:{os.environ['PATH']}"}
    if not slurm_client_wait:
        env = local_env(env)
    cmd = snakemake_cmd(workdir, "--quiet", "all", configfile=False)
    t0 = time.time()
    subprocess.run(cmd, check=True, env=env, cwd=workdir, stdout=subprocess.DEVNULL)
    return t0


def startup_times(run_dir: Path) -> dict[str, float]:
    """Seconds from start to ready of each service's first instance."""
    out = {}
    for history in sorted(run_dir.glob("services/*/history.jsonl")):
        events = [json.loads(line) for line in history.read_text().splitlines()]
        started = next(e for e in events if e["event"] == "started")
        ready = next(e for e in events if e["event"] == "ready")
        out[history.parent.name] = ready["time"] - started["time"]
    return out


def first_request(run_dir: Path) -> float:
    starts = []
    for path in run_dir.glob("bench/*/*/requests.jsonl"):
        starts += [json.loads(line)["start"] for line in path.read_text().splitlines()]
    return min(starts)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("--keep", action="store_true", help="keep the scratch folder")
    args = parser.parse_args()
    workdir = Path(tempfile.mkdtemp(prefix="llmsweep-bench-"))
    try:
        t0 = snakemake(workdir)
        run_dir = workdir / "results" / "demo"
        to_first = first_request(run_dir) - t0
        startup = startup_times(run_dir)
        # The first point waits for both chains: pushgateway -> prometheus and
        # llm_server -> client_service; they may overlap, so the sum is an upper bound.
        waited = sum(startup.values())
        t1 = time.time()
        snakemake(workdir)
        noop = time.time() - t1
        t2 = time.time()
        snakemake(workdir, slurm_client_wait=True)
        noop_waiting = time.time() - t2
        print(f"snakemake start -> first benchmark request: {to_first:6.2f} s")
        for key, seconds in startup.items():
            print(f"  start-up of {key:32s} {seconds:6.2f} s")
        print(f"orchestration overhead (minus all start-ups): {to_first - waited:6.2f} s")
        print(f"no-op re-run:                                 {noop:6.2f} s")
        print(f"no-op re-run, SLURM plugin asking scontrol:   {noop_waiting:6.2f} s")
    finally:
        if args.keep:
            print(f"kept {workdir}")
        else:
            shutil.rmtree(workdir, ignore_errors=True)


if __name__ == "__main__":
    main()
