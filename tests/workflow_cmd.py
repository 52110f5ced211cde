"""The snakemake command line of llmsweep's workflow for a scratch folder: one place for the
tests and the benchmarks under bench/."""

import sys
import tempfile
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]


def snakemake_cmd(workdir: Path, *extra: str, configfile: bool = True) -> list[str]:
    """snakemake on this checkout's Snakefile in `workdir` (with its config.yaml unless
    `configfile` is false), then `extra`."""
    cmd = [sys.executable, "-m", "snakemake", "--snakefile", str(ROOT / "Snakefile")]
    cmd += ["--directory", str(workdir)]
    if configfile:
        cmd += ["--configfile", str(workdir / "config.yaml")]
    return cmd + list(extra)


# Snakemake imports every installed executor plugin at start, and the SLURM plugin then runs
# `scontrol show config`. On a machine with SLURM's client but no controller answering (CI
# and the development machines between SLURM tests) that waits about 9 s (10 s without a
# slurm.conf) on every snakemake start, local runs included. A local run never talks to
# SLURM: pointing SLURM_CONF at a config whose controller cannot be reached and whose
# timeout is 1 s makes that question fail at once.
NO_CONTROLLER_CONF = "ClusterName=none\nSlurmctldHost=localhost(127.0.0.1)\nMessageTimeout=1\n"


def local_env(base: dict) -> dict:
    """`base` for a local run (one that uses no SLURM), without the SLURM plugin's wait."""
    path = Path(tempfile.gettempdir()) / "llmsweep-local-only-slurm.conf"
    if not path.exists():
        path.write_text(NO_CONTROLLER_CONF)
    return {**base, "SLURM_CONF": str(path)}
