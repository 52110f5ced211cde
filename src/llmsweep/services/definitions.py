"""What each service is: its command, readiness probe, port and file_sd registration, and
how it takes the run's secret (llmsweep.secret): every spec names the secret file and how
its clients present the token ("auth": basic or bearer)."""

from __future__ import annotations

import shutil
import sys
from pathlib import Path
from urllib.parse import urlsplit

import yaml

from llmsweep import programs, secret
from llmsweep.engines import engine_module
from llmsweep.monitoring import grafana
from llmsweep.paths import RunPaths
from llmsweep.util import write_atomic, write_json_atomic

# The Prometheus scrape jobs by how a target takes the run's token: file_sd files named
# <prefix>-*.json. LLM servers take it as a bearer token; the other services of the run as
# basic authentication (or either); a server llmsweep does not run is sent neither.
TARGET_AUTH = {"service": "basic", "server": "bearer", "external": None}


def _base(cfg: dict, key: str, role: str, port_key: str, paths: RunPaths) -> dict:
    svc = cfg["services"]
    secret.ensure(paths.secret)
    return {
        "key": key,
        "role": role,
        "run": cfg["run"],
        "host": svc["host"],
        "port": svc["ports"][port_key],
        "port_key": f"services.ports.{port_key}",
        "env": {},
        "ready_timeout_s": svc["ready_timeout_s"],
        "idle_timeout_s": svc["idle_timeout_s"],
        "owner_timeout_s": svc["owner_timeout_s"],
        "targets": [],
        "secret_file": str(paths.secret.resolve()),
        "auth": "basic",
    }


def web_config(paths: RunPaths) -> Path:
    """The monitoring programs' --web.config.file for the run's token."""
    return secret.ensure_web_config(paths.web_config, secret.ensure(paths.secret)).resolve()


def _target(paths: RunPaths, name: str, labels: dict, path: str = "/metrics") -> dict:
    return {"file": str(paths.targets / f"{name}.json"), "labels": labels, "path": path}


def exporters(cfg: dict, paths: RunPaths, key: str, role: str, gpu: bool) -> list[dict]:
    """Node (and GPU) exporters that run beside a service on its node."""
    mon = cfg["monitoring"]
    if not mon["enabled"]:
        return []
    labels = {"run": cfg["run"], "role": role, "service": key}
    out = []
    if mon["node_exporter"]["enabled"]:
        config = web_config(paths)
        argv, env = programs.command(
            "node_exporter",
            mon["node_exporter"],
            ["--web.listen-address={host}:{port}", f"--web.config.file={config}"],
            binds=(config,),
        )
        out.append(
            {
                "name": "node exporter",
                "argv": argv,
                "env": env,
                "file": str(paths.targets / f"service-node-{key}.json"),
                "labels": {**labels, "exporter": "node"},
            }
        )
    if gpu and mon["gpu_exporter"]:
        if mon["gpu_exporter_kind"] == "dcgm":
            argv = list(mon["dcgm_exporter"])
            if not shutil.which(argv[0]):
                raise programs.MissingProgram(
                    f"monitoring.dcgm_exporter: {argv[0]} is not on PATH (load the module "
                    "that provides dcgm-exporter, or give its path or an apptainer command)"
                )
        else:
            argv = [
                sys.executable,
                "-m",
                "llmsweep.metrics.gpu_exporter",
                "--host",
                "{host}",
                "--port",
                "{port}",
                "--secret-file",
                str(paths.secret.resolve()),
            ]
        out.append(
            {
                "name": "GPU exporter",
                "argv": argv,
                "file": str(paths.targets / f"service-gpu-{key}.json"),
                "labels": {**labels, "exporter": "gpu"},
            }
        )
    return out


def pushgateway(cfg: dict, paths: RunPaths) -> dict:
    spec = _base(cfg, "pushgateway", "pushgateway", "pushgateway", paths)
    state = paths.monitoring / "pushgateway.state"
    state.parent.mkdir(parents=True, exist_ok=True)
    args = [
        "--web.listen-address={host}:{port}",
        f"--web.config.file={web_config(paths)}",
        f"--persistence.file={state.resolve()}",
        "--persistence.interval=5s",
    ]
    spec["argv"], spec["env"] = programs.command(
        "pushgateway", cfg["monitoring"]["pushgateway"], args, binds=(state.parent.resolve(),)
    )
    spec["ready"] = {"kind": "http", "path": "/-/ready"}
    labels = {"run": cfg["run"], "role": "pushgateway"}
    spec["targets"] = [_target(paths, "pushgateway", labels)]
    return spec


def scrape_auth(kind: str | None, secret_file: Path) -> dict:
    """A scrape config's authentication with the run's token, read from its file."""
    if kind == "basic":
        return {"basic_auth": {"username": secret.USER, "password_file": str(secret_file)}}
    if kind == "bearer":
        return {"authorization": {"type": "Bearer", "credentials_file": str(secret_file)}}
    return {}


def prometheus_config(cfg: dict, paths: RunPaths) -> dict:
    """Scrape the Pushgateway (keeping pushed labels) and every registered service, each
    with the run's token as it takes it (TARGET_AUTH)."""
    interval = f"{cfg['monitoring']['scrape_interval_s']}s"
    targets = paths.targets.resolve()
    token = paths.secret.resolve()
    jobs = [
        {
            "job_name": "pushgateway",
            "honor_labels": True,
            **scrape_auth("basic", token),
            "file_sd_configs": [{"files": [str(targets / "pushgateway.json")]}],
        }
    ]
    for prefix, kind in TARGET_AUTH.items():
        jobs.append(
            {
                "job_name": "llmsweep" if prefix == "service" else f"llmsweep-{prefix}",
                **scrape_auth(kind, token),
                "file_sd_configs": [{"files": [str(targets / f"{prefix}-*.json")]}],
            }
        )
    return {
        "global": {"scrape_interval": interval, "evaluation_interval": interval},
        "scrape_configs": jobs,
    }


def prometheus(cfg: dict, paths: RunPaths) -> dict:
    spec = _base(cfg, "prometheus", "prometheus", "prometheus", paths)
    paths.targets.mkdir(parents=True, exist_ok=True)
    conf = paths.monitoring / "prometheus.yml"
    write_atomic(conf, yaml.safe_dump(prometheus_config(cfg, paths), sort_keys=False))
    data = paths.monitoring / "prometheus-data"
    data.mkdir(parents=True, exist_ok=True)
    args = [
        f"--config.file={conf.resolve()}",
        f"--storage.tsdb.path={data.resolve()}",
        "--storage.tsdb.retention.time=100y",  # the run's data is kept, reopened later
        "--web.listen-address={host}:{port}",
        f"--web.config.file={web_config(paths)}",
        "--web.enable-lifecycle",
    ]
    spec["argv"], spec["env"] = programs.command(
        "prometheus",
        cfg["monitoring"]["prometheus"],
        args,
        # config, web config, file_sd targets, data; the token its scrapes send
        binds=(paths.monitoring.resolve(), paths.secret.resolve()),
    )
    spec["ready"] = {"kind": "http", "path": "/-/ready"}
    labels = {"run": cfg["run"], "role": "prometheus"}
    spec["targets"] = [_target(paths, "service-prometheus", labels)]
    ui = grafana.sidecar(cfg, paths)
    spec["sidecars"] = [ui] if ui else []
    return spec


def external_target(cfg: dict, paths: RunPaths, dep: dict) -> Path | None:
    """Register the metrics of an OpenAI-compatible server llmsweep does not run (vLLM's
    /metrics) when engines.openai.metrics_path is set; return the target file."""
    ocfg = cfg["engines"]["openai"]
    if not ocfg["metrics_path"]:
        return None
    url = urlsplit(ocfg["base_url"])
    labels = {
        "run": cfg["run"],
        "role": "llm_server",
        "model": dep["model"],
        "deployment": dep["slug"],
        "engine": "openai",
        "__metrics_path__": ocfg["metrics_path"],
        "__scheme__": url.scheme,
    }
    path = paths.targets / f"external-llm_server.{dep['slug']}.json"
    paths.targets.mkdir(parents=True, exist_ok=True)
    write_json_atomic(path, [{"targets": [url.netloc], "labels": labels}])
    return path


def llm_server(
    cfg: dict,
    paths: RunPaths,
    dep: dict,
    cpus: int | None = None,
    gpus: int = 0,
    devices: list[str] | None = None,
) -> dict:
    """The LLM server of deployment `dep`, with the `cpus` and `gpus` its job (or machine)
    gives it; `devices`, when given, are the GPUs it may see (CUDA_VISIBLE_DEVICES)."""
    key = f"llm_server.{dep['slug']}"
    spec = _base(cfg, key, "llm_server", "llm_server", paths)
    spec["auth"] = "bearer"
    name, model, settings = dep["engine"], dep["model"], dep["settings"]
    engine = engine_module(name)
    if not engine.LAUNCHED:
        raise ValueError(f"engine {name} is not started by llmsweep")
    spec["argv"], spec["env"] = engine.command(settings, model, cpus, gpus, spec["secret_file"])
    spec["gpus"] = gpus
    if devices is not None:
        spec["env"]["CUDA_VISIBLE_DEVICES"] = ",".join(devices)
    if not shutil.which(spec["argv"][0]):
        raise programs.MissingProgram(f"engines.{name}: {spec['argv'][0]} is not on PATH")
    spec["ready"] = {
        "kind": "llm",
        "engine": name,
        "model": model,
        **engine.readiness(settings, model, gpus),
    }
    labels = {
        "run": cfg["run"],
        "role": "llm_server",
        "model": model,
        "deployment": dep["slug"],
        "engine": name,
    }
    if engine.METRICS_PATH and cfg["monitoring"]["enabled"]:
        spec["targets"] = [_target(paths, f"server-{key}", labels, engine.METRICS_PATH)]
    spec["sidecars"] = exporters(cfg, paths, key, "llm_server", gpu=True)
    return spec


def client_service(cfg: dict, paths: RunPaths, dep: dict, llm_url: str | None = None) -> dict:
    """The client service that loads deployment `dep`'s server: at `llm_url`, or, when
    None, at the URL the server's service writes once ready (so both start together)."""
    key = f"client_service.{dep['slug']}"
    spec = _base(cfg, key, "client", "client_service", paths)
    spec["auth"] = "bearer"
    spec["argv"] = [
        sys.executable,
        "-m",
        "gunicorn",
        "--bind",
        "{host}:{port}",
        "--workers",
        "1",  # one process holds the running points
        "--worker-class",
        "llmsweep.client_service.worker.ThreadWorker",  # gthread, slow clients hold no thread
        "--threads",
        "16",
        "--graceful-timeout",
        "5",
        "--no-control-socket",  # gunicorn 27 would make one in $HOME, shared by every service
        "--access-logfile",
        "-",
        "llmsweep.client_service.app:create_app()",
    ]
    spec["env"] = {
        "LLMSWEEP_UPSTREAM": llm_url or "",
        "LLMSWEEP_UPSTREAM_FILE": "" if llm_url else str(endpoint_file(paths, dep)),
        "LLMSWEEP_ENGINE": dep["engine"],
        "LLMSWEEP_MODEL": dep["model"],
        "LLMSWEEP_RUN": cfg["run"],
        "LLMSWEEP_SECRET_FILE": spec["secret_file"],
    }
    spec["ready"] = {"kind": "http", "path": "/health"}
    labels = {
        "run": cfg["run"],
        "role": "client",
        "model": dep["model"],
        "deployment": dep["slug"],
        "engine": dep["engine"],
    }
    if cfg["monitoring"]["enabled"]:
        spec["targets"] = [_target(paths, f"service-{key}", labels)]
    spec["sidecars"] = exporters(cfg, paths, key, "client", gpu=False)
    return spec


def endpoint_file(paths: RunPaths, dep: dict) -> Path:
    """Where deployment `dep`'s LLM server says its URL once ready (absolute: the client
    service may run on another node)."""
    return (paths.service_dir(f"llm_server.{dep['slug']}") / "endpoint.json").resolve()


def build(cfg: dict, paths: RunPaths, service: str, dep: dict | None = None, **deps) -> dict:
    """The spec of `service` ('pushgateway', 'prometheus', 'llm_server', 'client_service');
    the last two for deployment `dep`."""
    if service == "pushgateway":
        return pushgateway(cfg, paths)
    if service == "prometheus":
        return prometheus(cfg, paths)
    if service == "llm_server":
        return llm_server(
            cfg, paths, dep, deps.get("cpus"), deps.get("gpus", 0), deps.get("devices")
        )
    if service == "client_service":
        return client_service(cfg, paths, dep, deps.get("llm_url"))
    raise ValueError(f"unknown service {service!r}")
