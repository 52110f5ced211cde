"""The snakemake command line of llmsweep's workflow for a scratch folder: one place for the
tests and the benchmarks under bench/."""

import sys
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
