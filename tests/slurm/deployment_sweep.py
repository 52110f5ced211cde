"""Four deployments on the test cluster (its two fake GPUs), and what SLURM's accounting
says of their server jobs: for tests/test_slurm_deployments.py and bench/deployments.py."""

import subprocess
from datetime import datetime
from pathlib import Path

import yaml

from llmsweep.util import wait_until

# The test cluster has 8 CPUs: two servers, their two clients, the Pushgateway and
# Prometheus take one each, which leaves two for the report's jobs.
RESOURCES = {"deployment": {"cpus_per_task": 1, "mem_mb": 1000}}


def write_config(workdir: Path, run: str, parallel: int, requests: int = 1) -> None:
    """parallel [1, 2] x ctx_size [1024, 2048]: four deployments of the demo model with
    one GPU job each, two points each, `parallel` of them at once."""
    cfg = {
        "run": run,
        "gpus": 1,
        "parallel_deployments": parallel,
        "sweep": {"clients": [1, 2], "requests_per_client": requests},
        "workload": {"max_tokens": 8},
        # The GPUs are fake and llama-server a CPU build: the CPU on purpose.
        "engines": {"llama_cpp": {"parallel": [1, 2], "ctx_size": [1024, 2048], "gpu_layers": 0}},
        "services": {"ready_timeout_s": 180, "queue_timeout_s": 300},
        "monitoring": {"scrape_interval_s": 1},
    }
    (workdir / "config.yaml").write_text(yaml.safe_dump(cfg))


def server_prefix(run: str) -> str:
    """The start of the job names of the run's LLM servers (the deployment's slug follows)."""
    return f"llmsweep-{run}-llm_server."


def sacct_jobs(since_job: int = 0) -> list[dict]:
    """Every job after `since_job` (one line each, -X): id, name, state, start and end
    (epoch seconds; None while unknown), and comment (rule_<rule>... for the executor's)."""
    fields = "JobID,JobName,State,Start,End,Comment"
    out = subprocess.run(
        ["sacct", "-a", "-X", "-n", "-P", "-S", "now-1day", "-o", fields],
        capture_output=True,
        text=True,
        check=True,
    ).stdout
    keys = ("id", "name", "state", "start", "end", "comment")
    rows = [dict(zip(keys, line.split("|", 5), strict=True)) for line in out.splitlines()]
    for r in rows:
        r["start"], r["end"] = _time(r["start"]), _time(r["end"])
    return [r for r in rows if int(r["id"].split("_")[0]) > since_job]


def _time(text: str) -> float | None:
    try:
        return datetime.fromisoformat(text).timestamp()  # the cluster's local time
    except ValueError:  # Unknown, None
        return None


def last_job_id() -> int:
    return max((int(r["id"].split("_")[0]) for r in sacct_jobs()), default=0)


def server_jobs(run: str, since_job: int = 0, count: int = 4) -> list[dict]:
    """The run's `count` LLM server jobs, once accounting knows when each ended, with their
    deployment's slug."""

    def ended():
        jobs = [r for r in sacct_jobs(since_job) if r["name"].startswith(server_prefix(run))]
        done = len(jobs) >= count and all(r["start"] and r["end"] for r in jobs)
        return done and jobs

    jobs = wait_until(ended, 120, f"{count} ended server jobs in sacct", max_delay=2)
    for r in jobs:
        r["slug"] = r["name"].removeprefix(server_prefix(run))
    return jobs


def most_at_once(jobs: list[dict]) -> int:
    """The most jobs running at the same time (one ending as another starts is not two)."""
    events = sorted([(r["start"], 1) for r in jobs] + [(r["end"], -1) for r in jobs])
    most = running = 0
    for _, step in events:  # at equal times the end (-1) sorts first
        running += step
        most = max(most, running)
    return most


def last_summaries(run_dir: Path) -> dict[str, float]:
    """Each deployment's last summary.json's mtime, by slug."""
    last: dict[str, float] = {}
    for path in run_dir.glob("bench/*/*/summary.json"):
        slug = path.parent.parent.name
        last[slug] = max(last.get(slug, 0.0), path.stat().st_mtime)
    return last
