"""Deployments side by side on the SLURM test cluster, against one at a time.

Needs the single-node cluster of tests/slurm/cluster.sh (started here if it is down).
Runs the four-deployment sweep of tests/test_slurm_deployments.py (the demo model with
llama_cpp parallel [1, 2] x ctx_size [1024, 2048], one fake GPU per server job, two points
each) twice, with parallel_deployments 1 and then 2, each under a fresh run name, and
prints for each: its wall time; the sum of its LLM server jobs' durations (sacct); the share
of server time spent outside points once started (report/deployments.csv: idle_s over
wall_s - startup_s, summed over deployments); and the SLURM commands the run issued per
minute (counted by wrappers first on the driver's PATH). Then whether the expectations
hold: the parallel wall time at most 0.6 x the serial one, and under 15 % of server time
outside points.

Usage: .venv/bin/python bench/deployments.py [--requests N (16)] [--keep]
"""

from __future__ import annotations

import argparse
import csv
import json
import shutil
import subprocess
import sys
import tempfile
import time
from itertools import pairwise
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
sys.path[:0] = [str(ROOT / "tests"), str(ROOT / "src")]
from slurm.deployment_sweep import (  # noqa: E402
    RESOURCES,
    last_job_id,
    most_at_once,
    server_jobs,
    write_config,
)
from slurm.testprofile import write_test_profile  # noqa: E402
from slurm.workflow import assert_queue_empties, command, env  # noqa: E402

COMMANDS = ("squeue", "sacct", "scontrol", "sbatch", "scancel", "sinfo")
WALL_RATIO_MAX = 0.6  # parallel wall time over serial
OUTSIDE_POINTS_MAX = 0.15  # server time outside points, start-up excluded
WRAPPER = """#!/bin/sh
echo "$(date +%s.%N) {name}" >>"{log}"
IFS=:
for dir in $PATH; do
  if [ "$dir" != "{folder}" ] && [ -x "$dir/{name}" ]; then exec "$dir/{name}" "$@"; fi
done
echo "{name}: not found on PATH after {folder}" >&2
exit 127
"""


def make_wrappers(folder: Path, log: Path) -> None:
    """One wrapper per SLURM command: a line with the time and its name, then the real
    command, the next of that name on PATH."""
    folder.mkdir()
    for name in COMMANDS:
        wrapper = folder / name
        wrapper.write_text(WRAPPER.format(name=name, log=log, folder=folder))
        wrapper.chmod(0o755)


def drive(work: Path, wrappers: Path) -> float:
    """Run the workflow in `work` with `wrappers` first on PATH; its wall time."""
    run_env = env()
    run_env["PATH"] = f"{wrappers}:{run_env['PATH']}"
    t0 = time.time()
    proc = subprocess.run(
        command(work, "--quiet"),
        env=run_env,
        cwd=work,
        capture_output=True,
        text=True,
        timeout=3600,
    )
    wall = time.time() - t0
    if proc.returncode != 0:
        sys.exit(f"snakemake failed in {work}:\n{(proc.stdout + proc.stderr)[-4000:]}")
    return wall


def outside_points_share(table: Path) -> float:
    """idle_s / (wall_s - startup_s), summed over the deployments of deployments.csv."""
    with open(table) as f:
        rows = list(csv.DictReader(f))
    idle = sum(float(r["idle_s"]) for r in rows)
    serving = sum(float(r["wall_s"]) - float(r["startup_s"]) for r in rows)
    return idle / serving if serving > 0 else float("nan")


def outside_points(run_dir: Path) -> dict[str, float]:
    """Server time outside points after start-up, summed over the deployment records'
    sessions: before the first point (the client service's start), between points, and
    after the last one (stopping the client service and the server)."""
    out = {"before": 0.0, "between": 0.0, "after": 0.0}
    for record in run_dir.glob("bench/*/deployment.json"):
        for session in json.loads(record.read_text())["sessions"]:
            server, points = session["server"], session["points"]
            if not points:
                continue
            out["before"] += points[0]["started_at"] - server["ready_at"]
            out["between"] += sum(b["started_at"] - a["finished_at"] for a, b in pairwise(points))
            out["after"] += server["stopped_at"] - points[-1]["finished_at"]
    return out


def sweep(parallel: int, requests: int, keep: bool = False) -> dict:
    """One run of the four deployments, `parallel` at once: its figures."""
    work = Path(tempfile.mkdtemp(prefix=f"llmsweep-deployments-{parallel}-"))
    try:
        run = f"p{parallel}-{time.strftime('%Y%m%d-%H%M%S')}"
        calls = work / "calls.log"
        make_wrappers(work / "wrappers", calls)
        write_config(work, run, parallel, requests)
        write_test_profile(work, **RESOURCES)
        first = last_job_id()
        wall = drive(work, work / "wrappers")
        servers = server_jobs(run, first)
        lines = calls.read_text().splitlines() if calls.exists() else []
        assert_queue_empties()
        return {
            "wall_s": wall,
            "server_s": sum(r["end"] - r["start"] for r in servers),
            # The deployments' phase: first server start to last server end (the rest of
            # the wall time, monitoring start-up and the report, does not depend on it).
            "span_s": max(r["end"] for r in servers) - min(r["start"] for r in servers),
            "at_once": most_at_once(servers),
            "outside": outside_points_share(work / "results" / run / "report/deployments.csv"),
            "parts": outside_points(work / "results" / run),
            "per_min": len(lines) / wall * 60,
            "calls": {c: sum(1 for x in lines if x.endswith(" " + c)) for c in COMMANDS},
        }
    finally:
        if keep:
            print(f"kept {work}")
        else:
            shutil.rmtree(work, ignore_errors=True)


def print_table(serial: dict, parallel: dict) -> None:
    rows = [
        ("wall time (s)", "wall_s", "{:.0f}"),
        ("server jobs' time, summed (s)", "server_s", "{:.0f}"),
        ("first server start to last server end (s)", "span_s", "{:.0f}"),
        ("most server jobs at once", "at_once", "{}"),
        ("server time outside points, start-up excluded", "outside", "{:.1%}"),
        ("SLURM commands per minute", "per_min", "{:.1f}"),
    ]
    print(f"{'':48s} {'parallel_deployments=1':>24s} {'parallel_deployments=2':>24s}")
    for label, key, fmt in rows:
        print(f"{label:48s} {fmt.format(serial[key]):>24s} {fmt.format(parallel[key]):>24s}")
    for part in ("before", "between", "after"):
        label = f"  outside points, {part} points (s)"
        print(f"{label:48s} {serial['parts'][part]:>24.1f} {parallel['parts'][part]:>24.1f}")
    for name, run in (("=1", serial), ("=2", parallel)):
        counts = ", ".join(f"{c} {n}" for c, n in run["calls"].items() if n)
        print(f"  commands with parallel_deployments{name}: {counts}")


def print_expectations(serial: dict, parallel: dict) -> None:
    ratio = parallel["wall_s"] / serial["wall_s"]
    print(
        f"parallel wall / serial wall = {ratio:.2f} (expected <= {WALL_RATIO_MAX}): "
        + ("holds" if ratio <= WALL_RATIO_MAX else "does NOT hold")
    )
    span = parallel["span_s"] / serial["span_s"]
    print(f"the deployments' phase alone, parallel / serial = {span:.2f}")
    for name, run in (("1", serial), ("2", parallel)):
        ok = run["outside"] < OUTSIDE_POINTS_MAX
        print(
            f"outside points with parallel_deployments={name}: {run['outside']:.1%} "
            f"(expected < {OUTSIDE_POINTS_MAX:.0%}): " + ("holds" if ok else "does NOT hold")
        )


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument(
        "--requests", type=int, default=16, help="requests per client (16: points of seconds)"
    )
    parser.add_argument("--keep", action="store_true", help="keep the scratch folders")
    args = parser.parse_args()
    subprocess.run([str(ROOT / "tests" / "slurm" / "cluster.sh"), "start"], check=True)
    serial = sweep(1, args.requests, args.keep)
    parallel = sweep(2, args.requests, args.keep)
    print_table(serial, parallel)
    print_expectations(serial, parallel)


if __name__ == "__main__":
    main()
