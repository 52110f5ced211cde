"""Launching a run's workflow driver (Snakemake) in the background, supervising it, stopping
it; and what that leaves in the run's launch folder: the config it runs with, the driver's
record (PID, host), its log and how it ended."""

from __future__ import annotations

import json
import os
import re
import signal
import subprocess
import sys
import time
from pathlib import Path

import yaml

from llmsweep.paths import RunPaths
from llmsweep.procs import pid_alive, start_time
from llmsweep.web import runs_config
from llmsweep.web.failure import BAD, CONFLICT, MISSING, Failure
from llmsweep.web.workspace import Workspace

PROFILE = re.compile(r"^[A-Za-z0-9][A-Za-z0-9._-]{0,63}$")


# -- the records in the launch folder -------------------------------------------------------
def driver(paths: RunPaths) -> dict | None:
    """The launched driver's record, or None when there is none (or it cannot be read)."""
    try:
        return json.loads(paths.driver_record.read_text())
    except (OSError, ValueError):
        return None


def driver_alive(paths: RunPaths) -> bool:
    """Whether the run's launched driver still runs (on this host: a PID is only meaningful
    where it was started)."""
    d = driver(paths)
    if not d or d.get("host") != os.uname().nodename:
        return False
    return pid_alive(d["pid"], d.get("pid_start"))


def ended(paths: RunPaths) -> dict | None:
    """How the driver ended ({returncode, finished_at}), or None while it has not said."""
    try:
        return json.loads(paths.driver_exit.read_text())
    except (OSError, ValueError):
        return None


def launched_config(paths: RunPaths) -> dict:
    """The config the run was launched with; a run not launched from here is not found."""
    if not paths.launch_config.exists():
        raise Failure(MISSING, f"run {paths.run} was not launched from here")
    return yaml.safe_load(paths.launch_config.read_text()) or {}


def launched_runs(workspace: Workspace) -> dict:
    """The names of the runs launched from this working folder."""
    runs = workspace.results.glob("*")
    names = [d.name for d in runs if RunPaths.of_run_dir(d).launch_config.exists()]
    return {"runs": sorted(names)}


# -- launch ---------------------------------------------------------------------------------
def launch(workspace: Workspace, run: str, profile_name: str, text: str) -> dict:
    """Start the run's workflow with the config in `text` and the named profile, in the
    background under a supervisor; refused while the run's driver still runs."""
    user = runs_config.accepted(text)
    if user.get("run", run) != run:
        raise Failure(BAD, f"the config's run {user['run']!r} is not {run!r}")
    folder = profile(workspace, profile_name)
    paths = workspace.paths(run)
    if driver_alive(paths):
        raise Failure(CONFLICT, f"run {run} is already running")
    _write_config(paths, {**user, "run": run})
    argv = _workflow_argv(workspace, folder, paths.launch_config)
    proc = _start_supervisor(workspace, paths, argv)
    _write_record(paths, proc.pid, profile_name, argv)
    return {"run": run, "pid": proc.pid}


def profile(workspace: Workspace, name: str) -> Path:
    """A profile by name: the site's own in <workdir>/profiles first, then the
    workflow's (default, slurm)."""
    if PROFILE.match(name):
        for base in workspace.profile_dirs():
            if (base / name / "config.yaml").is_file():
                return base / name
    searched = " or ".join(str(base) for base in workspace.profile_dirs())
    raise Failure(BAD, f"no profile {name!r} in {searched}")


def _write_config(paths: RunPaths, cfg: dict) -> None:
    """The config to launch with; the last launch's exit record is gone."""
    paths.launch.mkdir(parents=True, exist_ok=True)
    paths.launch_config.write_text(yaml.safe_dump(cfg, sort_keys=False))
    paths.driver_exit.unlink(missing_ok=True)


def _workflow_argv(workspace: Workspace, profile_dir: Path, config: Path) -> list[str]:
    return [
        sys.executable,
        *("-m", "snakemake"),
        *("--snakefile", str(workspace.workflow / "Snakefile")),
        *("--directory", str(workspace.workdir)),
        *("--profile", str(profile_dir)),
        *("--configfile", str(config)),
    ]


def _supervisor_argv(workspace: Workspace, run: str, argv: list[str]) -> list[str]:
    return [
        sys.executable,
        *("-m", "llmsweep.web.remote"),
        f"--workflow={workspace.workflow}",
        f"--workdir={workspace.workdir}",
        *("--", "supervise", run, *argv),
    ]


def _environment() -> dict[str, str]:
    """This one, with the environment's own programs first on PATH (an SSH session has a
    bare PATH)."""
    path = os.environ.get("PATH", "/usr/bin:/bin")
    return {**os.environ, "PATH": f"{Path(sys.executable).parent}:{path}"}


def _start_supervisor(workspace: Workspace, paths: RunPaths, argv: list[str]):
    """The supervisor of `argv`, in a session of its own, writing to the driver's log."""
    with open(paths.driver_log, "ab") as log:
        return subprocess.Popen(
            _supervisor_argv(workspace, paths.run, argv),
            cwd=workspace.workdir,
            stdin=subprocess.DEVNULL,
            stdout=log,
            stderr=subprocess.STDOUT,
            env=_environment(),
            start_new_session=True,
        )


def _write_record(paths: RunPaths, pid: int, profile_name: str, argv: list[str]) -> None:
    record = {
        "pid": pid,
        "pid_start": start_time(pid),
        "host": os.uname().nodename,
        "started_at": time.time(),
        "profile": profile_name,
        "argv": argv,
    }
    paths.driver_record.write_text(json.dumps(record))


# -- supervise and stop ---------------------------------------------------------------------
def supervise(workspace: Workspace, run: str, argv: list[str]) -> int:
    """Run the workflow, pass SIGINT/SIGTERM on as Ctrl-C, record how it ended."""
    proc = subprocess.Popen(argv, cwd=workspace.workdir, stdin=subprocess.DEVNULL)

    def forward(*_):
        if proc.poll() is None:
            proc.send_signal(signal.SIGINT)

    signal.signal(signal.SIGTERM, forward)
    signal.signal(signal.SIGINT, forward)
    rc = proc.wait()
    ending = {"returncode": rc, "finished_at": time.time()}
    workspace.paths(run).driver_exit.write_text(json.dumps(ending))
    return rc


def stop(paths: RunPaths) -> dict:
    """Ask the run's driver to stop (its supervisor passes it on as Ctrl-C)."""
    if not driver_alive(paths):
        raise Failure(CONFLICT, f"run {paths.run} is not running")
    os.kill(driver(paths)["pid"], signal.SIGTERM)
    return {"run": paths.run, "stopping": True}
