"""profiles/slurm adapted to the test cluster of cluster.sh (used by tests and bench/)."""

from pathlib import Path

import yaml

ROOT = Path(__file__).resolve().parents[2]


def write_test_profile(workdir: Path, **resources) -> Path:
    """profiles/slurm with the test cluster's account, small jobs and quick status checks;
    `resources` overrides set-resources per rule. Returns the profile folder."""
    profile = yaml.safe_load((ROOT / "profiles" / "slurm" / "config.yaml").read_text())
    profile["default-resources"]["slurm_account"] = "bench"
    for res in profile["set-resources"].values():
        res.update(mem_mb=500, cpus_per_task=1, runtime=30)
    profile["set-resources"]["deployment"].update(
        cpus_per_task=2, mem_mb=1500, client_mem_mb=500, client_cpus_per_task=1, client_runtime=30
    )
    for rule, res in resources.items():
        profile["set-resources"].setdefault(rule, {}).update(res)
    profile["slurm-init-seconds-before-status-checks"] = 2
    profile["seconds-between-status-checks"] = 2
    folder = workdir / "profile"
    folder.mkdir(exist_ok=True)
    (folder / "config.yaml").write_text(yaml.safe_dump(profile))
    return folder
