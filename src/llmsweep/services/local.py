"""The `local` backend: each service is a process in its own session, killed by process group."""

from __future__ import annotations

import os
import signal
import subprocess
import time
from pathlib import Path

from llmsweep.procs import group_alive, pid_alive, start_time


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

    def stop(self, instance: dict, grace: float = 10.0, settle: bool = True) -> bool:
        """SIGTERM the whole process group, SIGKILL what is left after `grace` seconds.

        The group is ours while its leader runs with the recorded start time, or, once the
        leader is gone, while any member lives (Linux keeps a live group's ID from reuse).
        Returns whether anything was running. (`settle` is the slurm backend's; a process
        group is waited for in any case.)
        """
        pgid = instance["pid"]
        leader_ours = self.alive(instance)
        if not leader_ours and (pid_alive(pgid) or not group_alive(pgid)):
            return False
        try:
            os.killpg(pgid, signal.SIGTERM)
        except ProcessLookupError:
            return False
        deadline = time.monotonic() + grace
        delay = 0.02
        while time.monotonic() < deadline:
            if not group_alive(pgid):
                return True
            time.sleep(delay)
            delay = min(delay * 1.5, 0.3)
        try:
            os.killpg(pgid, signal.SIGKILL)
        except ProcessLookupError:
            pass
        return True
