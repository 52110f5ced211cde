"""Deployments on the real SLURM test cluster: four server configurations, two at a time on
its two GPUs, each server job held only while its points run; `llmsweep status` on the run
while it runs (its service jobs named) and once it is finished."""

import csv
import fnmatch
import re
import subprocess
import sys
import threading

import pytest

from llmsweep.util import wait_until
from slurm.deployment_sweep import (
    RESOURCES,
    last_job_id,
    last_summaries,
    most_at_once,
    sacct_jobs,
    server_jobs,
    write_config,
)
from slurm.testprofile import write_test_profile
from slurm.workflow import assert_queue_empties, command, env

pytestmark = pytest.mark.slurm
RUN = "d"


@pytest.mark.timeout(2400)
def test_two_deployments_at_a_time_each_server_stopped_after_its_last_point(cluster, tmp_path):
    write_config(tmp_path, RUN, parallel=2, requests=3)  # points long enough to be seen
    write_test_profile(tmp_path, **RESOURCES)
    first = last_job_id()

    proc = subprocess.Popen(
        command(tmp_path),
        stdout=subprocess.PIPE,
        stderr=subprocess.STDOUT,
        text=True,
        env=env(),
        cwd=tmp_path,
    )
    out: list[str] = []
    reader = threading.Thread(target=lambda: out.extend(proc.stdout), daemon=True)
    reader.start()
    try:
        running = wait_until(
            lambda: running_status(tmp_path, proc), 1500, "a point running on SLURM", max_delay=2
        )
    finally:
        rc = proc.wait(2000)
        reader.join(30)
    assert rc == 0, "".join(out)[-6000:]
    # While it ran: the run, its running point, and the server's batch job by its id.
    assert running[0].startswith(f"run {RUN}: running (driver pid "), running
    assert re.search(r"^  llm_server\.\S+: RUNNING, job \d+, http://", "\n".join(running), re.M)
    finished = status(tmp_path)
    assert finished[0].startswith(f"run {RUN}: finished"), finished
    points = len(list((tmp_path / "results" / RUN / "bench").glob("*/*/summary.json")))
    assert points == 8  # 4 deployments x 2 client counts
    assert finished[1] == f"sweep {RUN}: 8/8 points done", finished
    assert "running:" not in finished and not [x for x in finished if "RUNNING" in x], finished

    servers = server_jobs(RUN, first)
    assert len(servers) == 4, servers
    assert most_at_once(servers) == 2, servers  # never more than two, and two at once
    last = last_summaries(tmp_path / "results" / RUN)
    assert set(last) == {r["slug"] for r in servers}
    for r in servers:
        # sacct's times have one-second steps
        assert -1 <= r["end"] - last[r["slug"]] <= 15, (r, last[r["slug"]])
    assert_queue_empties()
    jobs = sacct_jobs(first)
    assert not fnmatch.filter([r["name"] for r in jobs], "llmsweep-*-benchmark*"), jobs
    assert not [r for r in jobs if r["comment"].startswith("rule_benchmark")], jobs
    with open(tmp_path / "results" / RUN / "report" / "deployments.csv") as f:
        assert len(list(csv.DictReader(f))) == 4


def status(workdir) -> list[str]:
    proc = subprocess.run(
        [sys.executable, "-m", "llmsweep.cli", "status", RUN],
        capture_output=True,
        text=True,
        timeout=120,
        env=env(),
        cwd=workdir,
    )
    assert proc.returncode == 0, proc.stdout + proc.stderr
    return proc.stdout.splitlines()


def running_status(workdir, proc) -> list[str] | None:
    """`llmsweep status` once it shows a point running and its server's job; None before."""
    if proc.poll() is not None:
        raise AssertionError("the sweep ended before a point was seen running")
    if not (workdir / "results" / RUN / "services").is_dir():
        return None  # the run's first service not started yet: status knows no such run
    lines = status(workdir)
    shown = "\n".join(lines)
    if "running:" in lines and re.search(r"llm_server\.\S+: RUNNING, job \d+", shown):
        return lines
    return None
