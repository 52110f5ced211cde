"""The service controller: ensure (lock, reuse or start, wait for readiness), status,
stop-all and prune, over one backend."""

from __future__ import annotations

import hashlib
import json
import os
import shutil
import socket
import sys
import time
import uuid
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path

from llmsweep import secret
from llmsweep.paths import RunPaths
from llmsweep.procs import DRIVER_ENV, HEARTBEAT_ENV, pid_alive, start_time
from llmsweep.services.local import LocalBackend
from llmsweep.services.readiness import check_health
from llmsweep.services.slurm import SlurmBackend
from llmsweep.util import read_json, tail, wait_until, write_json_atomic

LOCK_TIMEOUT_S = 900
LIVE = {"RUNNING", "PENDING", "CONFIGURING", "COMPLETING", "SUSPENDED", "RESIZING"}


class ServiceError(RuntimeError):
    """A service could not be started or is not healthy; the message says why."""


def current_owner() -> dict:
    """The workflow driver that owns services it starts (from the environment), if any."""
    pid = os.environ.get(DRIVER_ENV)
    if not pid:
        return {}
    owner = {"pid": int(pid), "pid_start": start_time(int(pid)), "host": socket.gethostname()}
    if os.environ.get(HEARTBEAT_ENV):
        owner["heartbeat"] = os.environ[HEARTBEAT_ENV]
    return owner


def spec_hash(spec: dict) -> str:
    keys = ("argv", "env", "host", "port", "ready", "sidecars")
    return hashlib.sha256(
        json.dumps({k: spec.get(k) for k in keys}, sort_keys=True).encode()
    ).hexdigest()


class Controller:
    def __init__(self, paths: RunPaths, backend=None, owner: dict | None = None):
        self.paths = paths
        self.backend = backend or LocalBackend()
        self.owner = current_owner() if owner is None else owner

    # -- files of one service ------------------------------------------------------------
    def _dir(self, key: str) -> Path:
        return self.paths.service_dir(key)

    def instance(self, key: str) -> dict | None:
        try:
            return read_json(self._dir(key) / "instance.json")
        except (OSError, ValueError):
            return None

    def endpoint(self, key: str) -> dict | None:
        try:
            return read_json(self._dir(key) / "endpoint.json")
        except (OSError, ValueError):
            return None

    def keys(self) -> list[str]:
        if not self.paths.services.is_dir():
            return []
        return sorted(p.parent.name for p in self.paths.services.glob("*/instance.json"))

    def backend_of(self, inst: dict):
        """The backend that started `inst` (stop and status need no resources)."""
        if inst.get("backend") == self.backend.name:
            return self.backend
        return SlurmBackend() if inst.get("backend") == "slurm" else LocalBackend()

    def alive(self, key: str) -> bool:
        inst = self.instance(key)
        return bool(inst) and self.backend_of(inst).alive(inst)

    def renew(self, key: str) -> None:
        """Mark the service as in use, for its idle watchdog."""
        hb = self._dir(key) / "heartbeat"
        hb.touch()

    # -- the lock ------------------------------------------------------------------------
    def _lock(self, key: str) -> Path:
        lock = self._dir(key) / "lock"
        lock.parent.mkdir(parents=True, exist_ok=True)
        me = {"pid": os.getpid(), "pid_start": start_time(os.getpid())}

        def take() -> bool:
            try:
                lock.mkdir()  # atomic, also on NFS
            except FileExistsError:
                try:
                    holder = read_json(lock / "holder.json")
                except (OSError, ValueError):
                    holder = None
                if holder and not pid_alive(holder["pid"], holder.get("pid_start")):
                    shutil.rmtree(lock, ignore_errors=True)
                return False
            write_json_atomic(lock / "holder.json", me)
            return True

        wait_until(take, LOCK_TIMEOUT_S, f"the lock of service {key}", max_delay=0.2)
        return lock

    # -- ensure --------------------------------------------------------------------------
    def ensure(self, spec: dict) -> dict:
        """Reuse a live, healthy instance of `spec['key']` or start one; return the lease."""
        key = spec["key"]
        lock = self._lock(key)
        try:
            lease = self._ensure_locked(spec)
            self._history(key, lease["instance"], "acquired")
            return lease
        finally:
            shutil.rmtree(lock, ignore_errors=True)

    def _ensure_locked(self, spec: dict) -> dict:
        key = spec["key"]
        inst = self.instance(key)
        if inst:
            lease = self._reusable(spec, inst)
            if lease:
                return lease
            self.backend_of(inst).stop(inst)  # what is left of it, e.g. its watcher
        self._clean(key)
        inst = self._start(spec)
        ep = self._wait_ready(spec, inst)
        return self._lease(inst, ep, "started")

    def _reusable(self, spec: dict, inst: dict) -> dict | None:
        """The lease on `inst` when it is live, runs `spec` unchanged and is healthy (recorded
        as reused); None otherwise, saying on stderr why a live instance will be restarted."""
        key = spec["key"]
        if not self.backend_of(inst).alive(inst):
            return None
        ep = self.endpoint(key)
        same = inst.get("spec_hash") == spec_hash(spec)
        if same and ep and ep.get("instance") == inst["instance"]:
            if check_health(spec["ready"], ep["url"], secret.headers_of(spec)):
                self._history(key, inst["instance"], "reused")
                self._claim(key)
                self.renew(key)
                return self._lease(inst, ep, "reused")
        why = "its configuration changed" if not same else "it is not healthy"
        print(f"llmsweep: restarting {key}: {why}", file=sys.stderr)
        return None

    def _start(self, spec: dict) -> dict:
        """Write the full spec, start the service wrapper on it through the backend, and
        record the new instance (instance.json, history 'started'); return the instance."""
        key = spec["key"]
        sdir = self._dir(key)
        instance_id = uuid.uuid4().hex[:12]
        full = {
            **spec,
            "instance": instance_id,
            "endpoint_file": str(sdir / "endpoint.json"),
            "heartbeat_file": str(sdir / "heartbeat"),
            "owner_file": str(sdir / "owner.json"),
        }
        write_json_atomic(sdir / "spec.json", full)
        self._claim(key)
        self.renew(key)
        log = sdir / "service.log"
        with open(log, "a") as f:
            f.write(f"\n--- {time.strftime('%Y-%m-%d %H:%M:%S')} starting instance {instance_id}\n")
        started = self.backend.start(
            [sys.executable, "-m", "llmsweep.services.wrapper", str(sdir / "spec.json")], log
        )
        inst = {
            **started,
            "key": key,
            "role": spec["role"],
            "instance": instance_id,
            "spec_hash": spec_hash(spec),
            "auth": spec.get("auth"),
            "secret_file": spec.get("secret_file"),
            "started_at": time.time(),
            "log": str(log),
        }
        write_json_atomic(sdir / "instance.json", inst)
        self._history(key, instance_id, "started")
        return inst

    def _wait_ready(self, spec: dict, inst: dict) -> dict:
        """Wait for the endpoint `inst` writes and check its health; return the endpoint.

        On any failure (it ended, timed out, is not healthy, or the wait was interrupted)
        the instance is stopped, so no queued or running job is left behind, and it raises.
        """
        key, log = spec["key"], inst["log"]
        shown = {"state": None}
        deadline = spec["ready_timeout_s"] + spec.get("queue_timeout_s", 0) + 5
        try:
            ep = wait_until(
                lambda: self._endpoint_if_ready(inst, shown),
                deadline,
                f"service {key}",
                max_delay=self.backend.poll_max_delay,
            )
        except TimeoutError as exc:
            self.backend.stop(inst)
            raise ServiceError(f"{exc}; last lines of {log}:\n{tail(log)}") from None
        except BaseException:
            self.backend.stop(inst)  # interrupted or failed: leave no queued or running job
            raise
        if not check_health(spec["ready"], ep["url"], secret.headers_of(spec)):
            self.backend.stop(inst)
            raise ServiceError(f"service {key} wrote {ep['url']} but does not answer there")
        return ep

    def _endpoint_if_ready(self, inst: dict, shown: dict) -> dict | None:
        """One poll of a starting instance: its endpoint once written, else None; a job's
        state is printed when it changes; raises ServiceError once the instance has ended."""
        key, log = inst["key"], inst["log"]
        ep = self.endpoint(key)
        if ep and ep.get("instance") == inst["instance"]:
            return ep
        state = self.backend.state(inst)
        if state != shown["state"] and inst.get("job_id"):
            print(f"llmsweep: {key}: job {inst['job_id']} {state}", file=sys.stderr)
            shown["state"] = state
        if state not in LIVE:
            job = f" (job {inst['job_id']}: {state})" if inst.get("job_id") else ""
            raise ServiceError(
                f"service {key} ended before it was ready{job}; last lines of {log}:\n{tail(log)}"
            )
        return None

    def _history(self, key: str, instance: str, event: str) -> None:
        line = {"instance": instance, "event": event, "time": time.time()}
        with open(self._dir(key) / "history.jsonl", "a") as f:
            f.write(json.dumps(line) + "\n")

    def _claim(self, key: str) -> None:
        if self.owner:
            write_json_atomic(self._dir(key) / "owner.json", self.owner)

    def _lease(self, inst: dict, ep: dict, how: str) -> dict:
        return {
            "key": inst["key"],
            "role": inst["role"],
            "instance": inst["instance"],
            "url": ep["url"],
            "backend": inst["backend"],
            "pid": inst.get("pid"),
            "job_id": inst.get("job_id"),
            "heartbeat": str(self._dir(inst["key"]) / "heartbeat"),
            "auth": inst.get("auth"),  # how it takes the run's token (secret.headers_of)
            "secret_file": inst.get("secret_file"),
            "status": how,
            "acquired_at": time.time(),
        }

    def _clean(self, key: str) -> None:
        sdir = self._dir(key)
        sdir.mkdir(parents=True, exist_ok=True)
        for name in ("endpoint.json", "instance.json"):
            (sdir / name).unlink(missing_ok=True)

    # -- status, stop, prune -------------------------------------------------------------
    def status(self) -> list[dict]:
        rows = []
        for key in self.keys():
            inst = self.instance(key) or {}
            ep = self.endpoint(key) or {}
            rows.append(
                {
                    "key": key,
                    "state": self.backend_of(inst).state(inst) if inst else "GONE",
                    "url": ep.get("url") if ep.get("instance") == inst.get("instance") else None,
                    "pid": inst.get("pid"),
                    "job_id": inst.get("job_id"),
                    "instance": inst.get("instance"),
                }
            )
        return rows

    def stop(self, key: str, settle: bool = True) -> bool:
        """Stop service `key` (its job or process group) and drop its endpoint; record the
        stop in its history. Returns whether it was running. With `settle` false a SLURM
        job is waited for until it stops running, not until it has left the queue."""
        inst = self.instance(key)
        if not inst:
            return False
        ran = self.backend_of(inst).stop(inst, settle=settle)
        (self._dir(key) / "endpoint.json").unlink(missing_ok=True)
        self._history(key, inst["instance"], "stopped")
        return ran

    def stop_all(self) -> list[str]:
        """Stop every service of the run and drop every lease. The services stop at once:
        each stop mostly waits (a SLURM job leaving the queue takes seconds), and after a
        Ctrl-C every deployment's two services are still up."""

        def stop(key: str) -> bool:
            inst = self.instance(key)
            try:
                return bool(inst) and self.backend_of(inst).stop(inst)
            finally:
                (self._dir(key) / "endpoint.json").unlink(missing_ok=True)

        keys = self.keys()
        with ThreadPoolExecutor(max_workers=max(1, len(keys))) as pool:
            stopped = [key for key, done in zip(keys, pool.map(stop, keys), strict=True) if done]
        for target in self.paths.targets.glob("*.json") if self.paths.targets.is_dir() else []:
            target.unlink(missing_ok=True)
        if self.paths.leases.is_dir():
            shutil.rmtree(self.paths.leases, ignore_errors=True)
        return stopped

    def prune(self) -> list[Path]:
        """Delete leases whose service instance is gone; claim live services for this owner."""
        removed = []
        live = {}
        for key in self.keys():
            inst = self.instance(key)
            if inst and self.backend_of(inst).alive(inst):
                live[key] = inst["instance"]
                self._claim(key)
        if not self.paths.leases.is_dir():
            return removed
        for lease in sorted(self.paths.leases.rglob("*.json")):
            try:
                data = read_json(lease)
            except (OSError, ValueError):
                data = {}
            if live.get(data.get("key")) != data.get("instance"):
                lease.unlink(missing_ok=True)
                removed.append(lease)
        return removed
