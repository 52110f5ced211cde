"""The workflow driver (the main snakemake process): its record, and stale-lock recovery.

Snakemake leaves its directory lock behind when its process is killed (SIGKILL, a node
crash, a batch job's time limit). The driver records itself; a later run on the same host
that finds the recorded driver dead removes the stale lock, so re-running resumes.
"""

from __future__ import annotations

import json
import os
import socket
import sys
from pathlib import Path

from llmsweep.services.local import pid_alive, start_time
from llmsweep.util import write_json_atomic

DRIVER_ENV = "LLMSWEEP_DRIVER_PID"


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
