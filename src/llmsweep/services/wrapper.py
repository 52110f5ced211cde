"""The service wrapper: runs where the service runs, picks the port, execs the server.

Before the exec it forks a watcher (detached from the server's process tree, same process
group) that probes the server's own readiness, writes the endpoint file atomically,
registers the file_sd target, and then watches: it stops the service when its leases go
idle or its owner (the workflow driver) is gone, and cleans up when the server exits.

Usage: python -m llmsweep.services.wrapper SPEC_JSON
"""

from __future__ import annotations

import json
import os
import signal
import socket
import subprocess
import sys
import time
from pathlib import Path

from llmsweep import secret
from llmsweep.engines import NotServable
from llmsweep.procs import pid_alive
from llmsweep.services.readiness import check_ready
from llmsweep.util import free_port, port_is_free, read_json, write_json_atomic

WATCH_INTERVAL_S = 1.0
STOP_GRACE_S = 10.0


def log(msg: str) -> None:
    print(f"[llmsweep wrapper {time.strftime('%H:%M:%S')}] {msg}", file=sys.stderr, flush=True)


def substitute(argv: list[str], host: str, port: int, service_url: str = "") -> list[str]:
    """Fill `{host}`, `{port}` and `{service_url}` in each argument; no shell is involved."""
    return [
        a.replace("{host}", host).replace("{port}", str(port)).replace("{service_url}", service_url)
        for a in argv
    ]


def fill_secret(env: dict[str, str], spec: dict) -> None:
    """Put the run's token in the variables that ask for it (secret.ENV_PLACEHOLDER), read
    from its file now: the spec and the command line never hold it."""
    wanted = [k for k, v in env.items() if v == secret.ENV_PLACEHOLDER]
    if wanted:
        token = secret.read(spec["secret_file"])
        env.update(dict.fromkeys(wanted, token))


def _remove(path: str | Path) -> None:
    try:
        os.unlink(path)
    except FileNotFoundError:
        pass


def stop_group(server_pid: int, tidy) -> None:
    """SIGTERM the server (and its exporters), SIGKILL them if still there after a grace
    period (a server may drain its requests first); this watcher tidies up and goes too."""
    signal.signal(signal.SIGTERM, signal.SIG_IGN)  # outlive the SIGTERM to escalate
    os.killpg(os.getpgid(0), signal.SIGTERM)
    deadline = time.monotonic() + STOP_GRACE_S
    while time.monotonic() < deadline and pid_alive(server_pid):
        time.sleep(0.1)
    tidy()
    os.killpg(os.getpgid(0), signal.SIGKILL)


def _history(spec: dict, event: str, **extra) -> None:
    """One line per instance event, kept after the run (start-up times, restarts)."""
    line = {"instance": spec["instance"], "event": event, "time": time.time(), **extra}
    with open(Path(spec["endpoint_file"]).with_name("history.jsonl"), "a") as f:
        f.write(json.dumps(line) + "\n")


def _read_from(path: Path, offset: int) -> str:
    """The service log from `offset` (this start) on; empty when it cannot be read."""
    try:
        with open(path, "rb") as f:
            f.seek(offset)
            return f.read().decode(errors="replace")
    except OSError:
        return ""


DEFAULT_OWNER_TIMEOUT_S = 60


def _owner_alive(spec: dict) -> bool:
    owner_file = spec.get("owner_file")
    if not owner_file:
        return True
    try:
        owner = read_json(owner_file)
    except (OSError, ValueError):
        return True
    if not owner or not owner.get("pid"):
        return True
    if owner.get("host", socket.gethostname()) != socket.gethostname():
        return _heartbeat_fresh(owner, spec.get("owner_timeout_s", DEFAULT_OWNER_TIMEOUT_S))
    return pid_alive(owner["pid"], owner.get("pid_start"))


def _heartbeat_fresh(owner: dict, timeout_s: float) -> bool:
    """A driver on another host, whose process this host cannot see: alive while its
    heartbeat file on the shared filesystem is younger than `timeout_s` (a driver that
    records none is trusted: its time limit and the idle watchdog apply)."""
    if not owner.get("heartbeat"):
        return True
    try:
        age = time.time() - os.stat(owner["heartbeat"]).st_mtime
    except OSError:
        return False
    return age < timeout_s


def _idle_for(spec: dict) -> float:
    try:
        return time.time() - os.stat(spec["heartbeat_file"]).st_mtime
    except (KeyError, OSError):
        return 0.0


def _remove_if_ours(path: str, instance: str, owner_of) -> None:
    """Remove a registration file written by this instance (`owner_of(content)` names the
    instance that wrote it); leave a newer instance's alone."""
    try:
        if owner_of(read_json(path)) == instance:
            _remove(path)
    except (OSError, ValueError, LookupError):
        pass


def unregister(spec: dict, sidecars: list[subprocess.Popen]) -> None:
    """Unregister this instance: history, sidecars, file_sd targets, access files, endpoint."""
    _history(spec, "stopped")
    for proc in sidecars:
        proc.terminate()
    instance = spec["instance"]
    exporters = [s for s in spec.get("sidecars", []) if "file" in s]
    for target in spec.get("targets", []) + exporters:
        _remove_if_ours(target["file"], instance, lambda t: t[0]["labels"].get("instance_id"))
    for sidecar in spec.get("sidecars", []):
        if "access_file" in sidecar:
            _remove_if_ours(sidecar["access_file"], instance, lambda a: a["instance_id"])
    _remove_if_ours(spec["endpoint_file"], instance, lambda e: e.get("instance"))


def _give_up(message: str) -> None:
    """Stop the server and its sidecars, and this watcher, before the service was ready."""
    log(message)
    os.killpg(os.getpgid(0), signal.SIGTERM)
    os._exit(1)


def wait_ready(spec: dict, url: str, server_pid: int) -> None:
    """Probe until the service does its job; give up when the server exits, cannot serve
    as configured, or is not ready in time."""
    service_log = Path(spec["endpoint_file"]).with_name("service.log")
    log_start = service_log.stat().st_size if service_log.exists() else 0
    deadline = time.monotonic() + spec["ready_timeout_s"]
    delay = 0.02
    reason: object = "no answer yet"
    headers = secret.headers_of(spec)
    while True:
        if not pid_alive(server_pid):
            log("server exited before it was ready")
            os._exit(1)
        try:
            if check_ready(spec["ready"], url, _read_from(service_log, log_start), headers):
                return
            reason = "probe answered not ready"
        except NotServable as exc:
            _give_up(f"cannot serve as configured: {exc}; stopping")
        except Exception as exc:  # noqa: BLE001 - any probe failure means "not yet"
            reason = exc
        if time.monotonic() > deadline:
            _give_up(f"not ready after {spec['ready_timeout_s']} s (last: {reason!r}); stopping")
        time.sleep(delay)
        delay = min(delay * 1.5, 0.5)


def register(spec: dict, host: str, port: int, server_pid: int) -> list[subprocess.Popen]:
    """Start the sidecars, then write the endpoint file and the file_sd targets; return
    the sidecars' processes. Sidecars first: whoever sees the endpoint also finds their
    files (Grafana's URL)."""
    url = f"http://{host}:{port}"
    sidecars = []
    for sidecar in spec.get("sidecars", []):
        proc = start_sidecar(sidecar, host, spec["instance"], url)
        if proc is not None:
            sidecars.append(proc)
    endpoint = {
        "key": spec["key"],
        "instance": spec["instance"],
        "url": url,
        "host": host,
        "port": port,
        "pid": server_pid,
        "ready_at": time.time(),
    }
    write_json_atomic(spec["endpoint_file"], endpoint)
    _history(spec, "ready", url=url)
    for target in spec.get("targets", []):
        labels = {
            **target.get("labels", {}),
            "instance_id": spec["instance"],
            "__metrics_path__": target.get("path", "/metrics"),
        }
        write_json_atomic(target["file"], [{"targets": [f"{host}:{port}"], "labels": labels}])
    log(f"ready at {url}")
    return sidecars


def guard(spec: dict, server_pid: int, tidy) -> None:
    """Until the server exits: stop it when its leases go idle or its owner is gone."""
    while True:
        time.sleep(WATCH_INTERVAL_S)
        if not pid_alive(server_pid):
            log("server exited")
            tidy()
            os._exit(0)
        idle = _idle_for(spec)
        if idle > spec["idle_timeout_s"]:
            log(f"no lease renewed for {idle:.0f} s; stopping the service")
            stop_group(server_pid, tidy)
        elif not _owner_alive(spec):
            log("the workflow that owns this service is gone; stopping the service")
            stop_group(server_pid, tidy)


def watch(spec: dict, host: str, port: int, server_pid: int) -> None:
    """Body of the watcher process: wait until ready, register, guard; never returns."""
    sidecars: list[subprocess.Popen] = []

    def tidy() -> None:
        unregister(spec, sidecars)

    def cleanup(*_):
        tidy()
        os._exit(0)

    signal.signal(signal.SIGTERM, cleanup)
    signal.signal(signal.SIGINT, cleanup)
    wait_ready(spec, f"http://{host}:{port}", server_pid)
    sidecars.extend(register(spec, host, port, server_pid))
    guard(spec, server_pid, tidy)


def start_sidecar(
    sidecar: dict, host: str, spec_instance: str, service_url: str
) -> subprocess.Popen | None:
    """A process beside the service (same node, same process group): an exporter, whose
    file_sd target it registers, labelled with the node and the job; or Grafana, whose
    address it writes to its access file. None when its fixed port is taken."""
    port = sidecar.get("port") or free_port(host)
    if sidecar.get("port") and not port_is_free(host, port):
        log(f"{sidecar['name']}: port {port} on {host} is already in use; not started")
        return None
    env = {
        **os.environ,
        **{
            k: substitute([v], host, port, service_url)[0]
            for k, v in sidecar.get("env", {}).items()
        },
    }
    out = open(sidecar["log"], "ab") if sidecar.get("log") else None  # noqa: SIM115
    proc = subprocess.Popen(
        substitute(sidecar["argv"], host, port, service_url),
        stdin=subprocess.DEVNULL,
        stdout=out,
        stderr=out,
        env=env,
    )
    where = {
        "node": socket.gethostname(),
        "job_id": os.environ.get("SLURM_JOB_ID", ""),
        "instance_id": spec_instance,
    }
    if "file" in sidecar:
        labels = {**sidecar["labels"], **where, "__metrics_path__": "/metrics"}
        write_json_atomic(sidecar["file"], [{"targets": [f"{host}:{port}"], "labels": labels}])
    if "access_file" in sidecar:
        access = {
            "url": f"http://{host}:{port}",
            "host": host,
            "port": port,
            **where,
            **sidecar.get("access", {}),
            "pid": proc.pid,
        }
        write_json_atomic(sidecar["access_file"], access)
    log(f"{sidecar['name']} on {host}:{port}")
    return proc


def node_address() -> str:
    """The address other nodes reach this one at: what its hostname resolves to."""
    return socket.gethostbyname(socket.gethostname())


def main(argv: list[str] | None = None) -> None:
    argv = sys.argv[1:] if argv is None else argv
    spec = read_json(argv[0])
    host = node_address() if spec["host"] == "node" else spec["host"]
    port = spec["port"]
    if port:
        if not port_is_free(host, port):
            log(f"port {port} on {host} is already in use ({spec['port_key']}); not starting")
            sys.exit(3)
    else:
        port = free_port(host)
    command = substitute(spec["argv"], host, port)
    env = {**os.environ, **{k: substitute([v], host, port)[0] for k, v in spec["env"].items()}}
    fill_secret(env, spec)
    server_pid = os.getpid()
    child = os.fork()
    if child == 0:
        if os.fork() > 0:
            os._exit(0)
        watch(spec, host, port, server_pid)
    os.waitpid(child, 0)
    log(f"starting {spec['key']}: {' '.join(command)}")
    os.execvpe(command[0], command, env)


if __name__ == "__main__":
    main()
