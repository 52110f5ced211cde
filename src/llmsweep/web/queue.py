"""A run's SLURM jobs, as the web front end shows them, and cancelling one of them: only a
job of the run is cancelled. The SLURM commands themselves are llmsweep.services.slurm's."""

from __future__ import annotations

import re

from llmsweep.paths import RunPaths
from llmsweep.services import slurm
from llmsweep.web.failure import BAD, CONFLICT, REFUSED, Failure

SUBMITTED = re.compile(r"SLURM jobid (\d+)")  # how Snakemake's log names a job it submitted


def queue(paths: RunPaths) -> dict:
    """This user's SLURM jobs of this run: its service jobs (named llmsweep-RUN-...) and
    the jobs its driver submitted (their ids are in the driver's log)."""
    if not slurm.available():
        return {"slurm": False, "jobs": [], "note": "no SLURM here"}
    try:
        jobs = slurm.queue_of_user()
    except slurm.SlurmError as exc:
        return {"slurm": False, "jobs": [], "note": str(exc)}
    submitted = _submitted(paths)
    return {"slurm": True, "jobs": [j for j in jobs if _of_run(j, paths.run, submitted)]}


def _submitted(paths: RunPaths) -> set[str]:
    if not paths.driver_log.exists():
        return set()
    return set(SUBMITTED.findall(paths.driver_log.read_text(errors="replace")))


def _of_run(job: dict, run: str, submitted: set[str]) -> bool:
    return job["name"].startswith(f"llmsweep-{run}-") or job["id"] in submitted


def cancel(paths: RunPaths, job: str) -> dict:
    """Cancel a queued job of the run; any other job is refused and left alone."""
    if not slurm.valid_job_id(job):
        raise Failure(BAD, f"{job!r} is not a SLURM job id")
    if job not in {j["id"] for j in queue(paths)["jobs"]}:
        message = f"job {job} is not a queued job of run {paths.run}; not cancelled"
        raise Failure(REFUSED, message)
    try:
        slurm.cancel(job)
    except slurm.SlurmError as exc:
        raise Failure(CONFLICT, str(exc)) from None
    return {"run": paths.run, "cancelled": job}
