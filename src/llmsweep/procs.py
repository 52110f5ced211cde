"""Processes on this machine, read from /proc: alive, start time, process groups."""

from __future__ import annotations

import os

# The environment variable naming the workflow driver's PID: services started under it
# record it as their owner and stop when it dies.
DRIVER_ENV = "LLMSWEEP_DRIVER_PID"
# The driver's heartbeat file on the shared filesystem: services on other hosts, which
# cannot see its process, stop when it goes stale.
HEARTBEAT_ENV = "LLMSWEEP_DRIVER_HEARTBEAT"


def proc_stat(pid: int) -> list[str] | None:
    try:
        with open(f"/proc/{pid}/stat") as f:
            raw = f.read()
    except OSError:
        return None
    # The command name may contain spaces; fields after it start at the last ')'.
    return raw[raw.rindex(")") + 2 :].split()


def start_time(pid: int) -> str | None:
    """The process's start time in clock ticks since boot, to tell reused PIDs apart."""
    fields = proc_stat(pid)
    return fields[19] if fields else None


def pid_alive(pid: int, started: str | None = None) -> bool:
    """True when `pid` runs (not a zombie) and, if given, started at `started`."""
    fields = proc_stat(pid)
    if fields is None or fields[0] in ("Z", "X"):
        return False
    return started is None or fields[19] == started


def group_alive(pgid: int) -> bool:
    """True while any live (non-zombie) process belongs to process group `pgid`."""
    for entry in os.listdir("/proc"):
        if entry.isdigit():
            fields = proc_stat(int(entry))
            if fields and fields[2] == str(pgid) and fields[0] not in ("Z", "X"):
                return True
    return False
