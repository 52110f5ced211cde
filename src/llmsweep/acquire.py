"""The acquire_* rules: ensure a service for one sweep point and write its lease."""

from __future__ import annotations

import os

from llmsweep.paths import RunPaths
from llmsweep.services import definitions
from llmsweep.services.controller import Controller
from llmsweep.util import read_json, write_json_atomic


def acquire(
    cfg: dict,
    service: str,
    lease_path: str,
    model: str | None = None,
    llm_lease: str | None = None,
    results: str = "results",
) -> dict:
    paths = RunPaths(cfg["run"], results)
    deps = {}
    if llm_lease:
        deps["llm_url"] = read_json(llm_lease)["url"]
    cpus = int(os.environ.get("SLURM_CPUS_ON_NODE", 0)) or None
    spec = definitions.build(cfg, paths, service, model, cpus=cpus, **deps)
    lease = Controller(paths).ensure(spec)
    lease["point_lease"] = lease_path
    write_json_atomic(lease_path, lease)
    return lease
