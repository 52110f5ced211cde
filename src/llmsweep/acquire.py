"""The acquire_* rules: ensure a service for one sweep point and write its lease."""

from __future__ import annotations

import time

from llmsweep import gpus
from llmsweep.engines import openai
from llmsweep.monitoring import grafana
from llmsweep.paths import RunPaths
from llmsweep.services import definitions
from llmsweep.services.controller import Controller
from llmsweep.services.local import LocalBackend
from llmsweep.services.slurm import SlurmBackend, merge_infrastructure
from llmsweep.util import read_json, wait_until, write_atomic, write_json_atomic

ROLES = {
    "pushgateway": "pushgateway",
    "prometheus": "prometheus",
    "llm_server": "llm_server",
    "client_service": "client",
}


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
    backend: str = "local",
    resources: dict | None = None,
) -> dict:
    """Ensure `service` (for `model`) with `backend` and write the point's lease.

    With the slurm backend, `resources` (the rule's, from the profile's set-resources)
    become the service job's sbatch flags.
    """
    paths = RunPaths(cfg["run"], results)
    if service == "llm_server" and cfg["engine"] == "openai":
        lease = external_server(cfg, model)
        if cfg["monitoring"]["enabled"]:
            definitions.external_target(cfg, paths, model)
        write_json_atomic(lease_path, lease)
        return lease
    deps = {}
    if llm_lease:
        deps["llm_url"] = read_json(llm_lease)["url"]
    resources = resources or {}
    if backend == "slurm":
        resources = merge_infrastructure(resources, cfg["infrastructure"], ROLES[service])
        deps["cpus"] = resources.get("cpus_per_task")
        deps["gpus"] = gpus.requested(resources)
    elif service == "llm_server":  # only the LLM server uses GPUs: NVML is asked once
        deps["gpus"] = gpus.visible()
    spec = definitions.build(cfg, paths, service, model, **deps)
    if backend == "slurm":
        spec["host"] = cfg["services"]["cluster_host"]
        spec["queue_timeout_s"] = cfg["services"]["queue_timeout_s"]
        job_name = f"llmsweep-{cfg['run']}-{spec['key']}"
        runner = SlurmBackend(resources, job_name)
    else:
        runner = LocalBackend()
    lease = Controller(paths, runner).ensure(spec)
    lease["point_lease"] = lease_path
    write_json_atomic(lease_path, lease)
    if service == "prometheus" and lease["status"] == "started":
        announce(cfg, paths, lease["url"], remote=backend == "slurm")
    return lease


def announce(cfg: dict, paths: RunPaths, prometheus_url: str, remote: bool) -> None:
    """Say on the workflow's output, and in monitoring/ACCESS.txt, how to watch the run."""
    text = grafana.access_text(cfg, paths, prometheus_url, remote)
    write_atomic(paths.monitoring / "ACCESS.txt", text)
    print("".join(f"llmsweep: {line}\n" for line in text.splitlines()), end="", flush=True)
