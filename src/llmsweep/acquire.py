"""Ensure a service (reuse or start it through the controller) and hand out its lease: the
acquire_* rules for the run's Pushgateway and Prometheus, and each deployment for its LLM
server and client service."""

from __future__ import annotations

import time

from llmsweep import gpus, programs
from llmsweep.engines import openai
from llmsweep.monitoring import grafana
from llmsweep.paths import RunPaths
from llmsweep.services import definitions
from llmsweep.services.controller import Controller, ServiceError
from llmsweep.services.local import LocalBackend
from llmsweep.services.slurm import QueueView, SlurmBackend, SlurmError, merge_infrastructure
from llmsweep.util import wait_until, write_atomic, write_json_atomic

# What can stop a service from starting, each with a message meant for the user (shown as
# it is, without a traceback).
FAILURES = (ServiceError, SlurmError, programs.MissingProgram, gpus.GPUError)

ROLES = {
    "pushgateway": "pushgateway",
    "prometheus": "prometheus",
    "llm_server": "llm_server",
    "client_service": "client",
}


def external_server(cfg: dict, dep: dict) -> dict:
    """An OpenAI-compatible server llmsweep does not run: check it serves the model."""
    url = cfg["engines"]["openai"]["base_url"].rstrip("/")
    model = dep["model"]
    wait_until(
        lambda: openai.ready(url, model),
        cfg["services"]["ready_timeout_s"],
        f"the server at {url} to serve {model}",
        max_delay=2,
    )
    if cfg["monitoring"]["enabled"]:
        definitions.external_target(cfg, paths_of(cfg), dep)
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


def paths_of(cfg: dict, results: str = "results") -> RunPaths:
    return RunPaths(cfg["run"], results)


def server_resources(resources: dict, gpus_per_server: int | None) -> dict:
    """The LLM server job's resources with the deployment's GPU count, when it gives one,
    in place of the profile's (gres gpu:N, or gpu: N with the profile's gpu_model)."""
    out = dict(resources)
    if gpus_per_server is None:
        return out
    out.pop("gres", None)
    out.pop("gpu", None)
    if gpus_per_server and "gpu_model" in out:
        out["gpu"] = gpus_per_server
    elif gpus_per_server:
        out["gres"] = f"gpu:{gpus_per_server}"
    return out


def acquire(
    cfg: dict,
    service: str,
    lease_path: str | None = None,
    dep: dict | None = None,
    llm_url: str | None = None,
    results: str = "results",
    backend: str = "local",
    resources: dict | None = None,
    queue: QueueView | None = None,
    devices: list[str] | None = None,
    poll_interval_s: float | None = None,
) -> dict:
    """Ensure `service` (for deployment `dep`) with `backend`; return its lease, written
    to `lease_path` when given.

    With the slurm backend, `resources` (from the profile) become the service job's sbatch
    flags, and `queue` is the run's shared view of the queue (made here when only its
    `poll_interval_s` is given). Locally, `devices` are the GPUs the LLM server may see.
    """
    paths = paths_of(cfg, results)
    if backend == "slurm" and queue is None and poll_interval_s:
        queue = QueueView(paths.slurm_queue, job_name(cfg, ""), poll_interval_s)
    if service == "llm_server" and dep["engine"] == "openai":
        lease = external_server(cfg, dep)
    else:
        spec, runner = _spec_and_runner(
            cfg, paths, service, dep, llm_url, backend, resources, queue, devices
        )
        lease = Controller(paths, runner).ensure(spec)
    if lease_path:
        lease["point_lease"] = lease_path
        write_json_atomic(lease_path, lease)
    if service == "prometheus" and lease["status"] == "started":
        announce(cfg, paths, lease["url"], remote=backend == "slurm")
    return lease


def _spec_and_runner(cfg, paths, service, dep, llm_url, backend, resources, queue, devices):
    """The service's spec and the backend that starts it."""
    deps = {"llm_url": llm_url}
    resources = resources or {}
    if backend == "slurm":
        resources = merge_infrastructure(resources, cfg["infrastructure"], ROLES[service])
        if service == "llm_server":
            resources = server_resources(resources, dep["gpus"])
        deps["cpus"] = resources.get("cpus_per_task")
        deps["gpus"] = gpus.requested(resources)
    elif service == "llm_server":
        deps["devices"] = devices if devices is not None else gpus.visible_ids()
        deps["gpus"] = len(deps["devices"])
    spec = definitions.build(cfg, paths, service, dep, **deps)
    if backend == "slurm":
        spec["host"] = cfg["services"]["cluster_host"]
        spec["queue_timeout_s"] = cfg["services"]["queue_timeout_s"]
        return spec, SlurmBackend(resources, job_name(cfg, spec["key"]), queue)
    return spec, LocalBackend()


def job_name(cfg: dict, key: str) -> str:
    """The SLURM job name of service `key` of this run (the run's queue view looks for
    names with job_name(cfg, ""))."""
    return f"llmsweep-{cfg['run']}-{key}"


def announce(cfg: dict, paths: RunPaths, prometheus_url: str, remote: bool) -> None:
    """Say on the workflow's output, and in monitoring/ACCESS.txt, how to watch the run."""
    text = grafana.access_text(cfg, paths, prometheus_url, remote)
    write_atomic(paths.monitoring / "ACCESS.txt", text)
    print("".join(f"llmsweep: {line}\n" for line in text.splitlines()), end="", flush=True)
