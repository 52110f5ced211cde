"""The `local` backend: each service is a process in its own session, killed by process group."""

from __future__ import annotations

import os
import signal
import subprocess
import time
from pathlib import Path


def _proc_stat(pid: int) -> list[str] | None:
    try:
        with open(f"/proc/{pid}/stat") as f:
            raw = f.read()
    except OSError:
        return None
    # The command name may contain spaces; fields after it start at the last ')'.
    return raw[raw.rindex(")") + 2 :].split()


def start_time(pid: int) -> str | None:
    """The process's start time in clock ticks since boot, to tell reused PIDs apart."""
    fields = _proc_stat(pid)
    return fields[19] if fields else None


def pid_alive(pid: int, started: str | None = None) -> bool:
    """True when `pid` runs (not a zombie) and, if given, started at `started`."""
    fields = _proc_stat(pid)
    if fields is None or fields[0] in ("Z", "X"):
        return False
    return started is None or fields[19] == started


class LocalBackend:
    name = "local"
    poll_max_delay = 0.5

    def start(self, argv: list[str], log: Path, cwd: Path | None = None) -> dict:
        with open(log, "ab") as out:
            proc = subprocess.Popen(
                argv,
                stdin=subprocess.DEVNULL,
                stdout=out,
                stderr=subprocess.STDOUT,
                start_new_session=True,
                cwd=cwd,
            )
        return {"backend": self.name, "pid": proc.pid, "pid_start": start_time(proc.pid)}

    def alive(self, instance: dict) -> bool:
        return pid_alive(instance["pid"], instance.get("pid_start"))

    def state(self, instance: dict) -> str:
        return "RUNNING" if self.alive(instance) else "GONE"

    def stop(self, instance: dict, grace: float = 10.0) -> bool:
        """SIGTERM the whole process group, SIGKILL what is left after `grace` seconds.

        The group is ours while its leader runs with the recorded start time, or, once the
        leader is gone, while any member lives (Linux keeps a live group's ID from reuse).
        Returns whether anything was running.
        """
        pgid = instance["pid"]
        leader_ours = self.alive(instance)
        if not leader_ours and (pid_alive(pgid) or not _group_alive(pgid)):
            return False
        try:
            os.killpg(pgid, signal.SIGTERM)
        except ProcessLookupError:
            return False
        deadline = time.monotonic() + grace
        delay = 0.02
        while time.monotonic() < deadline:
            if not _group_alive(pgid):
                return True
            time.sleep(delay)
            delay = min(delay * 1.5, 0.3)
        try:
            os.killpg(pgid, signal.SIGKILL)
        except ProcessLookupError:
            pass
        return True


def _group_alive(pgid: int) -> bool:
    """True while any live (non-zombie) process belongs to process group `pgid`."""
    for entry in os.listdir("/proc"):
        if entry.isdigit():
            fields = _proc_stat(int(entry))
            if fields and fields[2] == str(pgid) and fields[0] not in ("Z", "X"):
                return True
    return False
