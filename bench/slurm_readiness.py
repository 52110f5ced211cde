"""Readiness overhead and scheduler load of the slurm backend, on the test cluster.

Needs the single-node cluster of tests/slurm/cluster.sh (started here if it is down).
Runs a 1 model x 2 client-count sweep with profiles/slurm (adapted to that cluster) and
prints, per service job: the time from the job reaching RUNNING to its lease being written
(what the original system spent in fixed sleeps, 45 s and more in all); and the SLURM
commands the driver and its jobs issued per minute (counted by shims on PATH).

Usage: .venv/bin/python bench/slurm_readiness.py
"""

from __future__ import annotations

import json
import os
import shutil
import subprocess
import sys
import tempfile
import time
from datetime import datetime
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT / "tests"))
from slurm.testprofile import write_test_profile  # noqa: E402
from workflow_cmd import snakemake_cmd  # noqa: E402

COMMANDS = ("sbatch", "squeue", "sacct", "scancel", "sinfo", "scontrol")


def make_shims(folder: Path, log: Path) -> None:
    """A logging shim per SLURM command: one line per call, then the real command."""
    folder.mkdir()
    for name in COMMANDS:
        real = shutil.which(name)
        shim = folder / name
        shim.write_text(f'#!/bin/sh\necho "$(date +%s.%N) {name}" >>"{log}"\nexec {real} "$@"\n')
        shim.chmod(0o755)


def running_since(job_id: str) -> float:
    out = subprocess.run(
        ["sacct", "-n", "-X", "-P", "-j", job_id, "-o", "Start"],
        capture_output=True,
        text=True,
        check=True,
    ).stdout
    return datetime.fromisoformat(out.split()[0]).timestamp()


def main() -> None:
    subprocess.run([str(ROOT / "tests" / "slurm" / "cluster.sh"), "start"], check=True)
    work = Path(tempfile.mkdtemp(prefix="llmsweep-slurm-bench-"))
    try:
        calls = work / "calls.log"
        make_shims(work / "shims", calls)
        write_test_profile(work)
        # The test cluster's GPUs are fake and llama-server a CPU build: the CPU on purpose.
        cfg = {
            "run": "b",
            "sweep": {"clients": [1, 2], "requests_per_client": 4},
            "workload": {"max_tokens": 32},
            "engines": {"llama_cpp": {"gpu_layers": 0}},
        }
        (work / "config.yaml").write_text(json.dumps(cfg))
        env = {
            **os.environ,
            "PATH": f"{work / 'shims'}:{Path(sys.executable).parent}:{os.environ['PATH']}",
        }
        t0 = time.time()
        subprocess.run(
            snakemake_cmd(work, "--profile", str(work / "profile"), "--quiet"),
            check=True,
            env=env,
            cwd=work,
            stdout=subprocess.DEVNULL,
        )
        wall = time.time() - t0
        print("readiness overhead (job RUNNING -> lease written):")
        for inst_file in sorted(work.glob("results/b/services/*/instance.json")):
            inst = json.loads(inst_file.read_text())
            events = [json.loads(x) for x in (inst_file.parent / "history.jsonl").open()]
            acquired = min(e["time"] for e in events if e["event"] == "acquired")
            ready = min(e["time"] for e in events if e["event"] == "ready")
            start = running_since(inst["job_id"])
            print(
                f"  {inst['key']:34s} {acquired - start:6.2f} s"
                f" (service's own start-up {ready - start:5.2f} s; sacct Start has 1 s steps)"
            )
        lines = calls.read_text().splitlines()
        per_cmd = {c: sum(1 for x in lines if x.endswith(" " + c)) for c in COMMANDS}
        print(
            f"SLURM commands: {len(lines)} in {wall:.0f} s = {len(lines) / wall * 60:.0f}/min "
            f"({', '.join(f'{c} {n}' for c, n in per_cmd.items() if n)})"
        )
    finally:
        shutil.rmtree(work, ignore_errors=True)


if __name__ == "__main__":
    main()
