"""The `slurm` backend: each service is a batch job (sbatch), watched with squeue,
stopped with scancel. The one place that builds sbatch command lines and calls SLURM's
commands, for the services and for the web front end's view of a run's queue."""

from __future__ import annotations

import fcntl
import json
import os
import re
import shlex
import shutil
import subprocess
import time
from pathlib import Path

JOB_SCRIPT = Path(__file__).with_name("slurm_job.sh")
LIVE_STATES = {"PENDING", "CONFIGURING", "RUNNING", "COMPLETING", "SUSPENDED", "RESIZING"}
DEFAULT_RUNTIME_MIN = 240
JOB_ID = re.compile(r"^[0-9]+(_[0-9]+)?$")  # a job, or one task of an array job
# squeue's fields, in the order of QUEUE_FIELDS: id, name, state, time used, time limit,
# partition, and the nodes (or why the job waits).
QUEUE_FORMAT = "%i|%j|%T|%M|%l|%P|%R"
QUEUE_FIELDS = ("id", "name", "state", "time", "time_limit", "partition", "nodes")


class SlurmError(RuntimeError):
    """A SLURM command failed; the message carries SLURM's own words."""


def _run(cmd: list[str], timeout: float = 60) -> str:
    proc = subprocess.run(cmd, capture_output=True, text=True, timeout=timeout)
    if proc.returncode != 0:
        raise SlurmError(f"{cmd[0]} failed: {(proc.stderr or proc.stdout).strip()}")
    return proc.stdout


def _output(cmd: list[str], label: str, timeout: float) -> str:
    """`cmd`'s output; when it fails, SlurmError "LABEL: what SLURM said"."""
    proc = subprocess.run(cmd, capture_output=True, text=True, timeout=timeout)
    if proc.returncode != 0:
        raise SlurmError(f"{label}: {proc.stderr.strip()}")
    return proc.stdout


def available() -> bool:
    """Whether SLURM's commands are on this machine (squeue on PATH)."""
    return shutil.which("squeue") is not None


def queue_of_user(timeout: float = 30) -> list[dict]:
    """This user's jobs in the queue (squeue --me), one dict of QUEUE_FIELDS per job."""
    cmd = ["squeue", "--me", "--noheader", f"--format={QUEUE_FORMAT}"]
    return [_queue_row(line) for line in _output(cmd, "squeue", timeout).splitlines()]


def _queue_row(line: str) -> dict:
    values = line.split("|", len(QUEUE_FIELDS) - 1)
    if len(values) != len(QUEUE_FIELDS):
        raise ValueError(f"squeue printed {line!r}, not {QUEUE_FORMAT}")
    return dict(zip(QUEUE_FIELDS, values, strict=True))


def valid_job_id(text: str) -> bool:
    """Whether `text` is a job id (digits, or digits_digits for a task of an array job)."""
    return isinstance(text, str) and bool(JOB_ID.fullmatch(text))  # "$" would allow a "\n"


def cancel(job_id: str, timeout: float = 30) -> None:
    """scancel one job, by an id checked to be one (never an option or a user's text)."""
    if not valid_job_id(job_id):
        raise ValueError(f"{job_id!r} is not a SLURM job id")
    _output(["scancel", job_id], f"scancel {job_id}", timeout)


def _minutes(runtime) -> int:
    """Snakemake's runtime resource is minutes; accept '2h', '90m', '1d' too."""
    if isinstance(runtime, int | float):
        return int(runtime)
    text = str(runtime).strip().lower()
    for suffix, factor in (("d", 1440), ("h", 60), ("m", 1), ("s", 1 / 60)):
        if text.endswith(suffix):
            return max(1, int(float(text[: -len(suffix)]) * factor))
    return int(float(text))


# Snakemake resource -> sbatch flag, for those passed through as they are.
PLAIN_FLAGS = (
    ("slurm_partition", "partition"),
    ("slurm_account", "account"),
    ("qos", "qos"),
    ("constraint", "constraint"),
    ("nodes", "nodes"),
    ("cpus_per_task", "cpus-per-task"),
)


def sbatch_args(resources: dict) -> list[str]:
    """sbatch flags from a rule's resources (the keys the Snakemake SLURM executor uses)."""
    r = {k: v for k, v in resources.items() if v not in (None, "", 0)}
    args = [f"--{flag}={r[key]}" for key, flag in PLAIN_FLAGS if key in r]
    if "mem_mb" in r:
        args.append(f"--mem={int(r['mem_mb'])}M")
    elif "mem_mb_per_cpu" in r:
        args.append(f"--mem-per-cpu={int(r['mem_mb_per_cpu'])}M")
    if "gres" in r:
        args.append(f"--gres={r['gres']}")
    elif "gpu" in r:
        model = f"{r['gpu_model']}:" if "gpu_model" in r else ""
        args.append(f"--gpus={model}{r['gpu']}")
    args.append(f"--time={_minutes(r.get('runtime', DEFAULT_RUNTIME_MIN))}")
    if "slurm_extra" in r:
        args += shlex.split(str(r["slurm_extra"]))  # split into arguments, never run by a shell
    return args


def merge_infrastructure(resources: dict, infra: dict, role: str) -> dict:
    """Overlay a recipe's job.infrastructure onto the resources of the LLM or client job."""
    out = dict(resources)
    prefix = "client_" if role == "client" else ""
    if role not in ("llm_server", "client"):
        return out
    if infra.get("account"):
        out["slurm_account"] = infra["account"]
    if infra.get(f"{prefix}partition"):
        out["slurm_partition"] = infra[f"{prefix}partition"]
    if infra.get(f"{prefix}mem_gb"):
        out["mem_mb"] = int(infra[f"{prefix}mem_gb"] * 1024)
    if infra.get(f"{prefix}time"):
        out["runtime"] = _slurm_time_minutes(infra[f"{prefix}time"])
    if role == "llm_server" and infra.get("nodes"):
        out["nodes"] = infra["nodes"]
    if role == "llm_server" and "gpus" in infra:
        for key in ("gres", "gpu", "gpu_model"):
            out.pop(key, None)
        if infra["gpus"]:
            out["gres"] = f"gpu:{infra['gpus']}"
    return out


def _slurm_time_minutes(text: str) -> int:
    days = 0
    if "-" in text:
        d, text = text.split("-", 1)
        days = int(d)
    parts = [int(p) for p in text.split(":")]
    h, m, s = ([0] * (3 - len(parts)) + parts) if len(parts) > 1 else (0, parts[0], 0)
    return max(1, days * 1440 + h * 60 + m + (1 if s else 0))


class QueueView:
    """The states of one run's jobs, shared by every process of the run through a file, so
    that the run's SLURM queries do not grow with its jobs: one `squeue` for all of them per
    interval, and one `sacct` for each job once it has left the queue.

    A job submitted after the last look is looked for at the next one (its submission
    forces a look), never by a query of its own.
    """

    def __init__(self, cache: Path, prefix: str, interval_s: float):
        self.cache = cache
        self.prefix = prefix  # the job names of this run start with it
        self.interval_s = interval_s

    def state(self, job_id: str, submitted_at: float) -> str:
        view = self._read()
        stale = time.time() - view["time"] > self.interval_s or view["time"] < submitted_at
        if stale:
            view = self._refresh(submitted_at)
        if job_id in view["queue"]:
            return view["queue"][job_id]
        if job_id not in view["ended"]:
            view = self._ended(job_id)
        return view["ended"][job_id]

    def _read(self) -> dict:
        try:
            view = json.loads(self.cache.read_text())
        except (OSError, ValueError):
            view = {}
        return {"time": 0.0, "queue": {}, "ended": {}, **view}

    def _locked(self):
        self.cache.parent.mkdir(parents=True, exist_ok=True)
        lock = open(self.cache.with_suffix(".lock"), "w")
        fcntl.flock(lock, fcntl.LOCK_EX)
        return lock

    def _refresh(self, submitted_at: float) -> dict:
        """One squeue for the run's jobs, unless another process looked meanwhile."""
        with self._locked():
            view = self._read()
            if time.time() - view["time"] <= self.interval_s and view["time"] >= submitted_at:
                return view
            cmd = ["squeue", "--me", "--noheader", "--format=%i|%T|%j"]
            view["time"] = time.time()
            view["queue"] = {}
            for line in _run(cmd, timeout=30).splitlines():
                job, state, name = (line.split("|", 2) + ["", ""])[:3]
                if name.startswith(self.prefix):
                    view["queue"][job] = state
            self._write(view)
            return view

    def _ended(self, job_id: str) -> dict:
        """A job that left the queue: its final state, from sacct once (GONE without
        accounting)."""
        with self._locked():
            view = self._read()
            if job_id not in view["ended"] and job_id not in view["queue"]:
                view["ended"][job_id] = _final_state(job_id)
                self._write(view)
            return view

    def _write(self, view: dict) -> None:
        tmp = self.cache.with_suffix(".tmp")
        tmp.write_text(json.dumps(view))
        os.replace(tmp, self.cache)


def _final_state(job_id: str) -> str:
    try:
        acct = _run(["sacct", "-n", "-X", "-P", "-j", str(job_id), "-o", "State"])
    except (SlurmError, FileNotFoundError):
        return "GONE"
    return acct.strip().split()[0] if acct.strip() else "GONE"


class SlurmBackend:
    name = "slurm"
    poll_max_delay = 2.0  # squeue is a call to the controller: be gentle

    def __init__(
        self,
        resources: dict | None = None,
        job_name: str = "llmsweep",
        queue: QueueView | None = None,
    ):
        self.resources = resources or {}
        self.job_name = job_name
        self.queue = queue  # the run's shared view of the queue; None asks SLURM each time
        if queue:
            self.poll_max_delay = max(self.poll_max_delay, queue.interval_s)

    def command(self, argv: list[str], log: Path) -> list[str]:
        return [
            "sbatch",
            "--parsable",
            f"--job-name={self.job_name}",
            f"--output={log}",
            "--open-mode=append",
            *sbatch_args(self.resources),
            str(JOB_SCRIPT),
            *argv,
        ]

    def start(self, argv: list[str], log: Path, cwd: Path | None = None) -> dict:
        out = _run(self.command(argv, log))
        job_id = out.strip().split(";")[0]
        return {
            "backend": self.name,
            "job_id": job_id,
            "pid": None,
            "job_name": self.job_name,
            "submitted_at": time.time(),
            "resources": self.resources,  # to submit it again the same way
        }

    def state(self, instance: dict) -> str:
        if self.queue and instance.get("job_name", "").startswith(self.queue.prefix):
            return self.queue.state(str(instance["job_id"]), instance.get("submitted_at", 0))
        out = _run(["squeue", "-h", "-j", str(instance["job_id"]), "-o", "%T"], timeout=30)
        state = out.strip().splitlines()[0] if out.strip() else ""
        return state or _final_state(instance["job_id"])

    def alive(self, instance: dict) -> bool:
        return self._state_or_gone(instance) in LIVE_STATES

    def stop(self, instance: dict, grace: float = 60.0, settle: bool = True) -> bool:
        """scancel the job and wait until it has left the queue; with `settle` false, only
        until it stops running (a COMPLETING job holds nothing that matters: its GPUs are
        released as it completes)."""
        if not self.alive(instance):
            return False
        _run(["scancel", str(instance["job_id"])])
        busy = LIVE_STATES if settle else LIVE_STATES - {"COMPLETING"}
        deadline = time.monotonic() + grace
        delay = 0.1
        while time.monotonic() < deadline and self._state_or_gone(instance) in busy:
            time.sleep(delay)
            delay = min(delay * 1.5, self.poll_max_delay)
        return True

    def _state_or_gone(self, instance: dict) -> str:
        try:
            return self.state(instance)
        except SlurmError as exc:
            if "Invalid job id" in str(exc):
                return "GONE"
            raise
