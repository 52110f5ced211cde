"""Deployments on the real SLURM test cluster: four server configurations, two at a time on
its two GPUs, each server job held only while its points run."""

import csv
import fnmatch

import pytest

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
from slurm.workflow import assert_queue_empties, snakemake

pytestmark = pytest.mark.slurm
RUN = "d"


@pytest.mark.timeout(2400)
def test_two_deployments_at_a_time_each_server_stopped_after_its_last_point(cluster, tmp_path):
    write_config(tmp_path, RUN, parallel=2)
    write_test_profile(tmp_path, **RESOURCES)
    first = last_job_id()

    proc = snakemake(tmp_path, timeout=2000)
    assert proc.returncode == 0, (proc.stdout + proc.stderr)[-6000:]

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
