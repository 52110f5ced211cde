"""The workflow's driver on the test cluster, and the queue it leaves: for the SLURM tests."""

import os
import subprocess
import sys
from pathlib import Path

from llmsweep.util import wait_until
from workflow_cmd import snakemake_cmd


def command(workdir: Path, *extra: str) -> list[str]:
    """snakemake for `workdir` with its config.yaml and the test profile in it."""
    return snakemake_cmd(workdir, "--profile", str(workdir / "profile"), *extra)


def env() -> dict:
    """This environment, with this interpreter's folder first on PATH."""
    return {**os.environ, "PATH": f"{Path(sys.executable).parent}:{os.environ['PATH']}"}


def snakemake(workdir: Path, *extra: str, timeout: float = 900) -> subprocess.CompletedProcess:
    return subprocess.run(
        command(workdir, *extra),
        capture_output=True,
        text=True,
        timeout=timeout,
        env=env(),
        cwd=workdir,
    )


def squeue() -> list[str]:
    """Every job in the queue, as 'id name state'."""
    out = subprocess.run(["squeue", "-h", "-o", "%i %j %T"], capture_output=True, text=True)
    return out.stdout.split("\n")[:-1]


def assert_queue_empties() -> None:
    wait_until(lambda: not squeue(), 120, "the queue to empty", max_delay=1)
