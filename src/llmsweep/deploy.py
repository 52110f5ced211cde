"""One deployment, start to end: skip its finished points, start its LLM server and client
service (on GPUs of its own), run its unfinished points back to back, and stop both as
soon as the last one ends. The `deployment` rule runs this, one job per deployment, so a
server is held exactly while its points need it and the number of deployments served at
once is a Snakemake resource (llmsweep_deployments).
"""

from __future__ import annotations

import hashlib
import json
import os
import sys
import time
from concurrent.futures import ThreadPoolExecutor

from llmsweep import gpus, secret
from llmsweep.acquire import FAILURES, acquire, job_name
from llmsweep.benchmark import run_point
from llmsweep.engines import engine_module
from llmsweep.loadgen import patterns, search, sweep
from llmsweep.paths import RunPaths
from llmsweep.procs import DRIVER_ENV, pid_alive
from llmsweep.services.controller import Controller
from llmsweep.services.local import LocalBackend
from llmsweep.services.slurm import QueueView, SlurmBackend
from llmsweep.util import read_json, write_json_atomic

SECTIONS = ("sweep", "warmup", "workload", "slo", "client")
CLIENT_PREFIX = "client_"  # resources of the deployment rule for its client service's job


class DeploymentFailed(RuntimeError):
    """Some of a deployment's points failed; the finished ones are kept."""


def fingerprint(cfg: dict, dep: dict, point: dict) -> str:
    """What a point's figures depend on: its deployment, its pattern's sweep settings and
    the warm-up, workload, SLO and client settings. A finished point with the same
    fingerprint is not run again."""
    what = {
        "deployment": {k: dep[k] for k in ("engine", "model", "gpus", "settings")},
        "sweep": sweep.point_settings(cfg, point),
        **{k: cfg[k] for k in SECTIONS[1:]},
    }
    return hashlib.sha256(json.dumps(what, sort_keys=True).encode()).hexdigest()[:16]


def finished_summary(paths: RunPaths, point: dict, expected: str) -> dict | None:
    """The point's summary if it has the same fingerprint (one written before fingerprints
    were recorded counts as finished), else None."""
    try:
        summary = read_json(paths.summary(point["deployment"], point["load"]))
    except (OSError, ValueError):
        return None
    same = summary.get("point", {}).get("fingerprint", expected) == expected
    return summary if same else None


def finished(paths: RunPaths, point: dict, expected: str) -> bool:
    """Whether the point has a summary of the same fingerprint (finished_summary)."""
    return finished_summary(paths, point, expected) is not None


def split_resources(resources: dict) -> tuple[dict, dict]:
    """The deployment rule's resources as (the LLM server job's, the client service job's).

    The client's are those named client_<resource> (client_slurm_partition,
    client_cpus_per_task, ...), over the server's account and time limit.
    """
    server = {k: v for k, v in resources.items() if not k.startswith(CLIENT_PREFIX)}
    client = {k: server[k] for k in ("slurm_account", "runtime") if k in server}
    client.update(
        {k[len(CLIENT_PREFIX) :]: v for k, v in resources.items() if k.startswith(CLIENT_PREFIX)}
    )
    return server, client


class Deployment:
    """One deployment's run: its points, its services and its session record."""

    def __init__(
        self,
        cfg: dict,
        dep: dict,
        backend: str = "local",
        resources: dict | None = None,
        poll_interval_s: float = 10,
        results: str = "results",
    ):
        self.cfg, self.dep, self.backend = cfg, dep, backend
        self.paths = RunPaths(cfg["run"], results)
        self.server_resources, self.client_resources = split_resources(resources or {})
        self.queue = (
            QueueView(self.paths.slurm_queue, job_name(cfg, ""), poll_interval_s)
            if backend == "slurm"
            else None
        )
        self.points = [self.prepare(p) for p in sweep.sweep_points(cfg, of=[dep])]
        self.search = cfg["sweep"]["search"]
        self.session: dict = {}

    def prepare(self, point: dict) -> dict:
        """A sweep point of this deployment, ready to run: its run, settings, fingerprint."""
        point.update(run=self.cfg["run"], settings=self.dep["settings"])
        point["fingerprint"] = fingerprint(self.cfg, self.dep, point)
        return point

    def todo(self) -> list[dict]:
        return [p for p in self.points if not finished(self.paths, p, p["fingerprint"])]

    def search_steps(self) -> tuple[list[search.Step], float | None]:
        """The capacity search's steps over the finished points, and its next level (None
        when done); no steps without sweep.search."""
        if not self.search:
            return [], None
        return search.replay(self.search, self.finished_summary)

    def search_point(self, level: float) -> dict:
        return self.prepare(sweep.search_point(self.cfg, self.dep, level))

    def finished_summary(self, level: float) -> dict | None:
        """The summary of the search's point at `level`, if finished (same fingerprint)."""
        point = self.search_point(level)
        return finished_summary(self.paths, point, point["fingerprint"])

    def run(self, held: dict[str, dict], record_path: str) -> dict:
        """Run the unfinished points and the rest of the capacity search (monitoring leases
        `held`), then write the record. Raises DeploymentFailed, after stopping the
        services, when a point failed."""
        todo = self.todo()
        steps, level = self.search_steps()
        say(
            f"{self.dep['label']}: {len(self.points) - len(todo)} of {len(self.points)} "
            "points finished before"
            + (f"; {len(steps)} of the capacity search" if self.search else "")
        )
        failed = self.serve(todo, held) if todo or level is not None else []
        if failed:
            raise DeploymentFailed(
                f"{self.dep['label']}: {len(failed)} point(s) failed: "
                + "; ".join(failed)
                + " (the finished points are kept; re-run to retry the others)"
            )
        record = self.record()
        write_json_atomic(record_path, record)
        return record

    def record(self) -> dict:
        """The deployment record (RunPaths.deployment_record): what it is and each session
        of its server."""
        folder = self.paths.deployment_sessions(self.dep["slug"])
        sessions = sorted(
            (read_json(p) for p in folder.glob("*.json")),
            key=lambda s: s["server"].get("started_at") or 0,
        )
        found = search.outcome(self.search, self.search_steps()[0]) if self.search else None
        searched = [step["load"] for step in found["steps"]] if found else []
        return {
            **{k: self.dep[k] for k in ("slug", "engine", "model", "gpus", "settings", "label")},
            "points": list(dict.fromkeys([p["load"] for p in self.points] + searched)),
            "sessions": sessions,
            "search": found,
        }

    # -- one session of the server ----------------------------------------------------------
    def serve(self, todo: list[dict], held: dict[str, dict]) -> list[str]:
        """Start the services, run `todo` back to back, stop the services; return what
        failed."""
        devices = self.claim_gpus()
        self.session = {"server": {"requested_at": time.time()}, "points": []}
        self.save_session()
        try:
            llm, client = self.start_both(devices)
            held = {**held, "llm_server": llm, "client_service": client}
            return self.run_points(todo, held) or self.run_search(held)
        finally:
            self.stop_services()
            if devices is not None:
                gpus.release(self.paths.gpu_claims)

    def claim_gpus(self) -> list[str] | None:
        """Locally, the GPUs this deployment's server may use, claimed for it alone (unless
        share_gpus); None on SLURM, where the job gets its own."""
        if self.backend == "slurm" or self.dep["engine"] == "openai":
            return None
        count = self.dep["gpus"]
        if count is None:
            count = 1 if gpus.visible() else 0
        claimed = gpus.claim(self.paths.gpu_claims, count, share=self.cfg["share_gpus"])
        if claimed:
            say(f"{self.dep['label']}: GPUs {','.join(claimed)}")
        return claimed

    def start_both(self, devices: list[str] | None) -> tuple[dict, dict]:
        """The LLM server and the client service, started together: the client service
        learns the server's URL from the file the server writes once ready, so neither
        waits in a queue for the other while the server holds its GPUs. (A server
        llmsweep does not run has its URL already.)"""
        if self.dep["engine"] == "openai":
            llm = self.start("llm_server")
            return llm, self.start("client_service", llm_url=llm["url"])
        with ThreadPoolExecutor(max_workers=2) as pool:
            client = pool.submit(self.start, "client_service")
            llm = self.start("llm_server", devices=devices)
            return llm, client.result()

    def start(self, service: str, llm_url: str | None = None, devices=None) -> dict:
        resources = self.server_resources if service == "llm_server" else self.client_resources
        lease = acquire(
            self.cfg,
            service,
            dep=self.dep,
            llm_url=llm_url,
            results=str(self.paths.root.parent),
            backend=self.backend,
            resources=resources,
            queue=self.queue,
            devices=devices,
        )
        if service == "llm_server":
            inst = Controller(self.paths).instance(lease["key"]) or {}
            self.session["server"].update(
                key=lease["key"],
                instance=lease["instance"],
                job_id=lease.get("job_id"),
                status=lease["status"],
                started_at=inst.get("started_at", lease["acquired_at"]),
                ready_at=lease["acquired_at"],
                gpus=self.server_gpus(lease),
            )
            self.save_session()
        return lease

    def server_gpus(self, lease: dict) -> int:
        """The GPUs the server was given (from its spec; none for a server llmsweep does
        not run)."""
        try:
            spec = read_json(self.paths.service_dir(lease["key"]) / "spec.json")
        except (OSError, ValueError):
            return 0
        return int(spec.get("gpus") or 0)

    def run_points(self, todo: list[dict], held: dict[str, dict]) -> list[str]:
        failed = []
        for i, point in enumerate(todo):
            if driver_gone():
                raise DeploymentFailed(f"{self.dep['label']}: the workflow driver is gone")
            self.keep_monitoring(held)
            say(f"{self.dep['label']}: point {point['load']} ({sweep.describe_load(point)})")
            point["gpus"] = self.session["server"].get("gpus", 0)
            entry = {"load": point["load"], "started_at": time.time()}
            try:
                run_point(
                    point,
                    {k: self.cfg[k] for k in SECTIONS},
                    held,
                    self.paths.requests(point["deployment"], point["load"]),
                    self.paths.summary(point["deployment"], point["load"]),
                )
                entry["ok"] = True
            except Exception as exc:  # noqa: BLE001 - a failed point is reported, the next runs
                entry["ok"] = False
                failed.append(f"{point['load']}: {exc}")
                say(f"{self.dep['label']} {point['load']} failed: {exc}")
            entry["finished_at"] = time.time()
            self.session["points"].append(entry)
            self.save_session()
            if not entry["ok"] and not self.server_answers(held["llm_server"]):
                failed += [f"{p['load']}: not run, the server stopped" for p in todo[i + 1 :]]
                break
        return failed

    def run_search(self, held: dict[str, dict]) -> list[str]:
        """Run the capacity search's next levels until it is done (or a point failed: what
        failed); a finished level is judged from its summary, never run again. Nothing
        without sweep.search."""
        while self.search:
            steps, level = self.search_steps()
            if steps:
                last = steps[-1]
                verdict = "passed" if last.passed else "failed"
                level_text = patterns.pattern(self.search["pattern"]).describe(last.level)
                say(f"{self.dep['label']}: search: {level_text} {verdict} ({last.why})")
            if level is None:
                found = search.outcome(self.search, steps)
                capacity = found["capacity"]
                say(f"{self.dep['label']}: search done: capacity {capacity}; {found['why']}")
                return []
            failed = self.run_points([self.search_point(level)], held)
            if failed:
                return failed
        return []

    def keep_monitoring(self, held: dict[str, dict]) -> None:
        """Restart the run's Pushgateway or Prometheus if it died, say so loudly, and note
        the gap in the session record (the report shows it)."""
        controller = Controller(self.paths)
        for service in ("pushgateway", "prometheus"):
            lease = held.get(service)
            if not lease or controller.alive(lease["key"]):
                continue
            noticed = time.time()
            say(f"WARNING: the run's {service} is gone; monitoring has a gap, restarting it")
            inst = controller.instance(lease["key"]) or {}
            held[service] = acquire(
                self.cfg,
                service,
                results=str(self.paths.root.parent),
                backend=self.backend,
                resources=inst.get("resources"),
                queue=self.queue,
            )
            gap = {"service": service, "noticed_at": noticed, "restarted_at": time.time()}
            self.session.setdefault("monitoring_gaps", []).append(gap)
            self.save_session()

    def server_answers(self, llm: dict) -> bool:
        return engine_module(self.dep["engine"]).healthy(llm["url"], secret.headers_of(llm))

    def stop_services(self) -> None:
        """Stop the client service and the LLM server of this deployment (not the run's
        Pushgateway and Prometheus), and note when."""
        controller = Controller(self.paths, self.runner())

        def stop(service: str) -> None:
            key = f"{service}.{self.dep['slug']}"
            try:
                if controller.stop(key, settle=False):
                    say(f"stopped {key}")
            except Exception as exc:  # noqa: BLE001 - the other must still be stopped
                say(f"could not stop {key}: {exc}")

        # Both at once: a job's scancel and its end take seconds the GPU would sit idle.
        with ThreadPoolExecutor(max_workers=2) as pool:
            list(pool.map(stop, ("llm_server", "client_service")))
        if self.session.get("server"):
            self.session["server"]["stopped_at"] = time.time()
            self.save_session()

    def runner(self):
        if self.backend == "slurm":
            return SlurmBackend(queue=self.queue)
        return LocalBackend()

    def save_session(self) -> None:
        folder = self.paths.deployment_sessions(self.dep["slug"])
        name = f"{int(self.session['server']['requested_at'] * 1000)}.json"
        write_json_atomic(folder / name, self.session)


def driver_gone() -> bool:
    """Whether the workflow driver that started this job has died (a killed driver leaves
    its jobs behind: they must not start another point)."""
    pid = os.environ.get(DRIVER_ENV)
    return bool(pid) and not pid_alive(int(pid))


def say(text: str) -> None:
    print(f"llmsweep: {text}", file=sys.stderr, flush=True)


def run(cfg: dict, dep: dict, held: dict, record_path: str, **options) -> dict:
    """Run deployment `dep` (the deployment rule); see Deployment."""
    try:
        return Deployment(cfg, dep, **options).run(held, record_path)
    except FAILURES as exc:
        raise DeploymentFailed(f"{dep['label']}: {exc}") from None
