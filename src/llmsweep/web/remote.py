"""Operations on runs, executed where the runs live: on this machine, or on a cluster's login
node over SSH. The web front end calls them the same way on both (an argument list, never a
shell line built from user text) and maps their exit status to an HTTP status.

Usage: python -m llmsweep.web.remote --workflow DIR --workdir DIR OP [ARGS]
Ops: defaults, validate (config YAML on stdin), launch RUN --profile NAME (config on stdin),
     supervise RUN -- ARGV (internal), progress RUN, queue RUN, cancel RUN JOBID, stop RUN,
     ls RUN [PATH], cat RUN PATH, monitoring RUN, runs.
Prints JSON (cat prints the file). Exit status: 0 done, 2 bad request, 3 refused,
4 not found, 5 conflict.
"""

from __future__ import annotations

import argparse
import json
import os
import re
import shutil
import signal
import subprocess
import sys
import time
from pathlib import Path, PurePosixPath

import yaml

from llmsweep import config as configuration
from llmsweep.paths import RunPaths, run_name
from llmsweep.procs import pid_alive, start_time

BAD, REFUSED, MISSING, CONFLICT = 2, 3, 4, 5
JOB_ID = re.compile(r"^[0-9]+(_[0-9]+)?$")
PROFILE = re.compile(r"^[A-Za-z0-9][A-Za-z0-9._-]{0,63}$")
VIEW_LIMIT = 4 * 2**20  # bytes of a file shown in the page; downloads take all


class Failure(Exception):
    def __init__(self, status: int, message: str, **extra):
        super().__init__(message)
        self.status, self.extra = status, extra


class Runs:
    def __init__(self, workflow: Path, workdir: Path):
        self.workflow, self.workdir = workflow.resolve(), workdir.resolve()

    def paths(self, run: str) -> RunPaths:
        try:
            return RunPaths(run_name(run), self.workdir / "results")
        except ValueError as exc:
            raise Failure(BAD, str(exc)) from None

    def launch_dir(self, run: str) -> Path:
        return self.paths(run).root / "launch"

    # -- config ---------------------------------------------------------------------------
    def check(self, user: dict) -> tuple[dict, list[dict]]:
        if not isinstance(user, dict):
            return {}, [{"key": "(top level)", "message": "the config must be a mapping"}]
        cfg = configuration.merged(user)
        return cfg, configuration.field_errors(cfg)

    def validate(self, text: str) -> dict:
        try:
            user = yaml.safe_load(text) or {}
        except yaml.YAMLError as exc:
            raise Failure(BAD, f"not YAML: {exc}") from None
        cfg, errors = self.check(user)
        return {"ok": not errors, "errors": errors, "points": len(_points(cfg, errors))}

    # -- the driver -----------------------------------------------------------------------
    def driver(self, run: str) -> dict | None:
        try:
            return json.loads((self.launch_dir(run) / "driver.json").read_text())
        except (OSError, ValueError):
            return None

    def driver_alive(self, run: str) -> bool:
        d = self.driver(run)
        return (
            bool(d)
            and d.get("host") == os.uname().nodename
            and pid_alive(d["pid"], d.get("pid_start"))
        )

    def launch(self, run: str, profile: str, text: str) -> dict:
        result = self.validate(text)
        if not result["ok"]:
            raise Failure(BAD, "invalid config", errors=result["errors"])
        user = yaml.safe_load(text) or {}
        if user.get("run", run) != run:
            raise Failure(BAD, f"the config's run {user['run']!r} is not {run!r}")
        folder = self.profile(profile)
        if self.driver_alive(run):
            raise Failure(CONFLICT, f"run {run} is already running")
        ldir = self.launch_dir(run)
        ldir.mkdir(parents=True, exist_ok=True)
        (ldir / "config.yaml").write_text(yaml.safe_dump({**user, "run": run}, sort_keys=False))
        (ldir / "exit.json").unlink(missing_ok=True)
        argv = [sys.executable, "-m", "snakemake",
                "--snakefile", str(self.workflow / "Snakefile"),
                "--directory", str(self.workdir),
                "--profile", str(folder),
                "--configfile", str(ldir / "config.yaml")]  # fmt: skip
        supervisor = [sys.executable, "-m", "llmsweep.web.remote",
                      "--workflow", str(self.workflow), "--workdir", str(self.workdir),
                      "supervise", run, "--", *argv]  # fmt: skip
        # The environment's own programs first (an SSH session has a bare PATH).
        env = {
            **os.environ,
            "PATH": f"{Path(sys.executable).parent}:{os.environ.get('PATH', '/usr/bin:/bin')}",
        }
        with open(ldir / "driver.log", "ab") as log:
            proc = subprocess.Popen(supervisor, cwd=self.workdir, stdin=subprocess.DEVNULL,
                                    stdout=log, stderr=subprocess.STDOUT, env=env,
                                    start_new_session=True)  # fmt: skip
        info = {"pid": proc.pid, "pid_start": start_time(proc.pid),
                "host": os.uname().nodename, "started_at": time.time(), "profile": profile,
                "argv": argv}  # fmt: skip
        (ldir / "driver.json").write_text(json.dumps(info))
        return {"run": run, "pid": proc.pid}

    def profile(self, name: str) -> Path:
        """A profile by name: the site's own in <workdir>/profiles first, then the
        workflow's (default, slurm)."""
        if PROFILE.match(name):
            for base in (self.workdir, self.workflow):
                if (base / "profiles" / name / "config.yaml").is_file():
                    return base / "profiles" / name
        raise Failure(BAD, f"no profile {name!r} in {self.workdir / 'profiles'} or "
                      f"{self.workflow / 'profiles'}")  # fmt: skip

    def supervise(self, run: str, argv: list[str]) -> int:
        """Run the workflow, pass SIGINT/SIGTERM on as Ctrl-C, record how it ended."""
        proc = subprocess.Popen(argv, cwd=self.workdir, stdin=subprocess.DEVNULL)

        def forward(*_):
            if proc.poll() is None:
                proc.send_signal(signal.SIGINT)

        signal.signal(signal.SIGTERM, forward)
        signal.signal(signal.SIGINT, forward)
        rc = proc.wait()
        exit_file = self.launch_dir(run) / "exit.json"
        exit_file.write_text(json.dumps({"returncode": rc, "finished_at": time.time()}))
        return rc

    def stop(self, run: str) -> dict:
        if not self.driver_alive(run):
            raise Failure(CONFLICT, f"run {run} is not running")
        os.kill(self.driver(run)["pid"], signal.SIGTERM)
        return {"run": run, "stopping": True}

    # -- progress -------------------------------------------------------------------------
    def progress(self, run: str) -> dict:
        paths = self.paths(run)
        ldir = self.launch_dir(run)
        if not (ldir / "config.yaml").exists():
            raise Failure(MISSING, f"run {run} was not launched from here")
        cfg, errors = self.check(yaml.safe_load((ldir / "config.yaml").read_text()) or {})
        points = _points(cfg, errors)
        done, running = [], []
        for p in points:
            folder = paths.root / "bench" / p["slug"] / p["load"]
            if (folder / "summary.json").exists():
                done.append(p["name"])
            elif (folder / "requests.jsonl").exists():
                running.append(((folder / "requests.jsonl").stat().st_mtime, p["name"]))
        try:
            ended = json.loads((ldir / "exit.json").read_text())
        except (OSError, ValueError):
            ended = None
        report = (paths.root / "report" / "index.html").exists()
        if self.driver_alive(run):
            state = "running"
        elif ended is None:
            state = "stopped"  # the driver is gone without saying how it ended
        else:
            state = "finished" if ended["returncode"] == 0 else "failed"
        tail = _tail(ldir / "driver.log", 4000)
        return {
            "run": run, "state": state, "total": len(points), "done": len(done),
            "percent": round(100 * len(done) / len(points)) if points else 0,
            "current": max(running)[1] if running and state == "running" else None,
            "points_done": done, "report": report,
            "returncode": ended["returncode"] if ended else None, "log_tail": tail,
        }  # fmt: skip

    # -- SLURM ----------------------------------------------------------------------------
    def queue(self, run: str) -> dict:
        """This user's SLURM jobs of this run: its service jobs (named llmsweep-RUN-...) and
        the jobs its driver submitted (their ids are in the driver's log)."""
        self.paths(run)
        if not shutil.which("squeue"):
            return {"slurm": False, "jobs": [], "note": "no SLURM here"}
        out = subprocess.run(
            ["squeue", "--me", "--noheader", "--format=%i|%j|%T|%M|%l|%P|%R"],
            capture_output=True, text=True, timeout=30,
        )  # fmt: skip
        if out.returncode != 0:
            return {"slurm": False, "jobs": [], "note": f"squeue: {out.stderr.strip()}"}
        log = self.launch_dir(run) / "driver.log"
        submitted = set()
        if log.exists():
            submitted = set(re.findall(r"SLURM jobid (\d+)", log.read_text(errors="replace")))
        jobs = []
        for line in out.stdout.splitlines():
            job, name, state, used, limit, partition, where = line.split("|", 6)
            if name.startswith(f"llmsweep-{run}-") or job in submitted:
                jobs.append(
                    {
                        "id": job,
                        "name": name,
                        "state": state,
                        "time": used,
                        "time_limit": limit,
                        "partition": partition,
                        "nodes": where,
                    }
                )
        return {"slurm": True, "jobs": jobs}

    def cancel(self, run: str, job: str) -> dict:
        if not JOB_ID.match(job):
            raise Failure(BAD, f"{job!r} is not a SLURM job id")
        if job not in {j["id"] for j in self.queue(run)["jobs"]}:
            raise Failure(REFUSED, f"job {job} is not a queued job of run {run}; not cancelled")
        out = subprocess.run(["scancel", job], capture_output=True, text=True, timeout=30)
        if out.returncode != 0:
            raise Failure(CONFLICT, f"scancel {job}: {out.stderr.strip()}")
        return {"run": run, "cancelled": job}

    # -- files ----------------------------------------------------------------------------
    def confined(self, run: str, rel: str) -> Path:
        """`rel` inside the run's folder, symlinks resolved; anything that leaves it is a
        bad request, whatever the spelling (.., absolute, a link pointing out)."""
        root = self.paths(run).root
        if not root.is_dir():
            raise Failure(MISSING, f"no run {run}")
        rel = rel or "."
        if "\0" in rel or "\\" in rel or rel.startswith("/") or ".." in PurePosixPath(rel).parts:
            raise Failure(BAD, f"path {rel!r} is not inside the run's folder")
        real_root = root.resolve()
        path = (root / rel).resolve()
        if path != real_root and real_root not in path.parents:
            raise Failure(BAD, f"path {rel!r} leads out of the run's folder")
        if not path.exists():
            raise Failure(MISSING, f"no {rel} in run {run}")
        return path

    def ls(self, run: str, rel: str) -> dict:
        path = self.confined(run, rel)
        if not path.is_dir():
            raise Failure(BAD, f"{rel} is not a folder")
        run_root = self.paths(run).root
        root = run_root.resolve()
        entries = []
        for child in sorted(path.iterdir(), key=lambda p: (not p.is_dir(), p.name)):
            try:
                real = child.resolve()
                inside = real == root or root in real.parents
                st = child.stat()
            except OSError:
                continue
            if not inside:
                continue  # a link out of the run is not shown, and cannot be opened
            entries.append({"name": child.name, "dir": child.is_dir(), "size": st.st_size,
                            "mtime": st.st_mtime,
                            "path": str(child.relative_to(run_root))})  # fmt: skip
        here = "" if path == root else str(path.relative_to(root))
        return {"run": run, "path": here, "entries": entries}

    def cat(self, run: str, rel: str, limit: int | None) -> bytes:
        path = self.confined(run, rel)
        if not path.is_file():
            raise Failure(BAD, f"{rel} is not a file")
        with open(path, "rb") as f:
            return f.read(limit) if limit else f.read()

    def monitoring(self, run: str) -> dict:
        paths = self.paths(run)
        out: dict = {"grafana": None, "prometheus": None}
        try:
            out["grafana"] = json.loads((paths.monitoring / "grafana" / "access.json").read_text())
        except (OSError, ValueError):
            pass
        try:
            ep = json.loads((paths.service_dir("prometheus") / "endpoint.json").read_text())
            out["prometheus"] = ep["url"]
        except (OSError, ValueError, KeyError):
            pass
        return out

    def runs(self) -> dict:
        results = self.workdir / "results"
        names = sorted(p.parent.parent.name for p in results.glob("*/launch/config.yaml"))
        return {"runs": names}


def _tail(path: Path, size: int) -> str:
    """The last `size` bytes of a file (the whole log is not read on every poll)."""
    try:
        with open(path, "rb") as f:
            f.seek(max(0, f.seek(0, os.SEEK_END) - size))
            return f.read().decode(errors="replace")
    except OSError:
        return ""


def _points(cfg: dict, errors: list) -> list[dict]:
    if errors:
        return []
    from llmsweep.paths import model_slug

    return [{**p, "slug": model_slug(p["model"]), "name": f"{p['model']} {p['load']}"}
            for p in configuration.sweep_points(cfg)]  # fmt: skip


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("--workflow", required=True, type=Path)
    parser.add_argument("--workdir", required=True, type=Path)
    parser.add_argument("op")
    parser.add_argument("args", nargs="*")
    parser.add_argument("--profile", default="default")
    parser.add_argument("--limit", type=int, default=0)
    args, rest = parser.parse_known_args(argv)
    runs = Runs(args.workflow, args.workdir)
    a = args.args
    try:
        if args.op == "supervise":  # supervise RUN -- ARGV: argparse gives ARGV as args
            return runs.supervise(a[0], a[1:] + rest)
        if args.op == "cat":
            sys.stdout.buffer.write(runs.cat(a[0], a[1], args.limit or None))
            return 0
        ops = {
            "defaults": lambda: {"config": configuration.defaults_file()},
            "validate": lambda: runs.validate(sys.stdin.read()),
            "launch": lambda: runs.launch(a[0], args.profile, sys.stdin.read()),
            "progress": lambda: runs.progress(a[0]),
            "queue": lambda: runs.queue(a[0]),
            "cancel": lambda: runs.cancel(a[0], a[1]),
            "stop": lambda: runs.stop(a[0]),
            "ls": lambda: runs.ls(a[0], a[1] if len(a) > 1 else ""),
            "monitoring": lambda: runs.monitoring(a[0]),
            "runs": runs.runs,
        }
        if args.op not in ops:
            raise Failure(BAD, f"unknown operation {args.op!r}")
        result = ops[args.op]()
    except IndexError:
        print(json.dumps({"error": f"{args.op}: missing argument"}))
        return BAD
    except Failure as exc:
        print(json.dumps({"error": str(exc), **exc.extra}))
        return exc.status
    print(json.dumps(result))
    return 0


if __name__ == "__main__":
    sys.exit(main())
