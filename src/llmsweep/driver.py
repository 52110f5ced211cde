"""The workflow driver (the main snakemake process): its record, and stale-lock recovery.

Snakemake leaves its directory lock behind when its process is killed (SIGKILL, a node
crash, a batch job's time limit). The driver records itself; a later run on the same host
that finds the recorded driver dead runs `snakemake --unlock`, so re-running resumes.
"""

from __future__ import annotations

import json
import os
import signal
import socket
import subprocess
import sys
import threading
import time
from pathlib import Path

from llmsweep.procs import DRIVER_ENV, HEARTBEAT_ENV, pid_alive, start_time
from llmsweep.util import write_json_atomic


def _record_path(workdir: Path) -> Path:
    return workdir / ".snakemake" / "llmsweep-driver.json"


UNLOCKING_ENV = "LLMSWEEP_UNLOCKING"


def unlock_command(snakefile: str, workdir: str | Path, configfiles, config_args) -> list[str]:
    """`snakemake --unlock` for the same workflow, directory and config as this run."""
    argv = [sys.executable, "-m", "snakemake", "--unlock", "--cores", "1"]
    argv += ["--snakefile", str(snakefile), "--directory", str(workdir)]
    if configfiles:
        argv += ["--configfile", *map(str, configfiles)]
    if config_args:
        argv += ["--config", *config_args]
    return argv


def become_driver(workdir: str | Path = ".", unlock: list[str] | None = None) -> None:
    """Record this process as the driver. If the last driver on this host was killed, its
    Snakemake lock is left behind: remove it with Snakemake's own `--unlock` (the `unlock`
    command), so a re-run resumes."""
    workdir = Path(workdir)
    pid = os.getpid()
    os.environ[DRIVER_ENV] = str(pid)  # services started by this run stop if it dies
    record = _record_path(workdir)
    try:
        last = json.loads(record.read_text())
    except (OSError, ValueError):
        last = None
    host = socket.gethostname()
    if last and last.get("pid") != pid and last.get("host") == host:
        if pid_alive(last["pid"], last.get("pid_start")):
            return  # another run is active here; Snakemake's own lock will refuse this one
        locks = workdir / ".snakemake" / "locks"
        if unlock and locks.is_dir() and any(locks.iterdir()):
            env = {**os.environ, UNLOCKING_ENV: "1"}
            proc = subprocess.run(unlock, capture_output=True, text=True, env=env, timeout=300)
            if proc.returncode != 0:
                print(proc.stdout + proc.stderr, file=sys.stderr)
            else:
                print(
                    f"llmsweep: unlocked the directory of a killed run (pid {last['pid']})",
                    file=sys.stderr,
                )
    write_json_atomic(record, {"pid": pid, "pid_start": start_time(pid), "host": host})


HEARTBEAT_INTERVAL_S = 5.0


def keep_heartbeat(path: str | Path, interval_s: float = HEARTBEAT_INTERVAL_S) -> None:
    """Touch `path` every `interval_s` seconds for as long as this process lives (a daemon
    thread), and name it to the services this run starts: those on other hosts stop when
    it goes stale (services.owner_timeout_s)."""
    path = Path(path).resolve()
    path.parent.mkdir(parents=True, exist_ok=True)
    path.touch()
    os.environ[HEARTBEAT_ENV] = str(path)

    def beat() -> None:
        while True:
            try:
                path.touch()
            except OSError:
                pass  # a filesystem hiccup: the next beat tries again
            time.sleep(interval_s)

    threading.Thread(target=beat, name="llmsweep-heartbeat", daemon=True).start()


def stop_on_signals(stop) -> None:
    """On SIGINT or SIGTERM, run `stop` (stop the services) at once, then Snakemake's own
    handler. Snakemake waits for running local jobs before its onerror hook; a benchmark
    job whose services are gone ends at once instead of running its point to the end."""

    def wrap(signum: int) -> None:
        previous = signal.getsignal(signum)

        def handler(sig, frame):
            threading.Thread(target=stop, name="llmsweep-stop", daemon=True).start()
            if callable(previous):
                previous(sig, frame)
            elif previous == signal.SIG_DFL and sig == signal.SIGINT:
                raise KeyboardInterrupt

        signal.signal(signum, handler)

    for signum in (signal.SIGINT, signal.SIGTERM):
        wrap(signum)
