"""The acquire_* rules: ensure a service for one sweep point and write its lease."""

from __future__ import annotations

import os
import time

from llmsweep.engines import openai
from llmsweep.paths import RunPaths
from llmsweep.services import definitions
from llmsweep.services.controller import Controller
from llmsweep.util import read_json, wait_until, write_json_atomic


def external_server(cfg: dict, model: str) -> dict:
    """An OpenAI-compatible server llmsweep does not run: check it serves `model`."""
    url = cfg["engines"]["openai"]["base_url"].rstrip("/")
    wait_until(
        lambda: openai.ready(url, model),
        cfg["services"]["ready_timeout_s"],
        f"the server at {url} to serve {model}",
        max_delay=2,
    )
    return {
        "key": "llm_server.external",
        "role": "llm_server",
        "instance": "external",
        "url": url,
        "backend": "external",
        "pid": None,
        "job_id": None,
        "status": "external",
        "acquired_at": time.time(),
    }


def acquire(
    cfg: dict,
    service: str,
    lease_path: str,
    model: str | None = None,
    llm_lease: str | None = None,
    results: str = "results",
) -> dict:
    paths = RunPaths(cfg["run"], results)
    if service == "llm_server" and cfg["engine"] == "openai":
        lease = external_server(cfg, model)
        write_json_atomic(lease_path, lease)
        return lease
    deps = {}
    if llm_lease:
        deps["llm_url"] = read_json(llm_lease)["url"]
    cpus = int(os.environ.get("SLURM_CPUS_ON_NODE", 0)) or None
    spec = definitions.build(cfg, paths, service, model, cpus=cpus, **deps)
    lease = Controller(paths).ensure(spec)
    lease["point_lease"] = lease_path
    write_json_atomic(lease_path, lease)
    return lease
