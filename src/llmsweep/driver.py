"""The workflow driver (the main snakemake process): its record, and stale-lock recovery.

Snakemake leaves its directory lock behind when its process is killed (SIGKILL, a node
crash, a batch job's time limit). The driver records itself; a later run on the same host
that finds the recorded driver dead removes the stale lock, so re-running resumes.
"""

from __future__ import annotations

import json
import os
import signal
import socket
import sys
import threading
from pathlib import Path

from llmsweep.procs import DRIVER_ENV, pid_alive, start_time
from llmsweep.util import write_json_atomic


def _record_path(workdir: Path) -> Path:
    return workdir / ".snakemake" / "llmsweep-driver.json"


def become_driver(workdir: str | Path = ".") -> None:
    """Record this process as the driver; clear Snakemake's locks if the last one died."""
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
        stale = sorted(locks.glob("*")) if locks.is_dir() else []
        for lock in stale:
            lock.unlink(missing_ok=True)
        if stale:
            print(
                f"llmsweep: removed the lock of a killed run (pid {last['pid']})",
                file=sys.stderr,
            )
    write_json_atomic(record, {"pid": pid, "pid_start": start_time(pid), "host": host})


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
