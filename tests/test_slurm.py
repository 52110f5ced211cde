"""The workflow on a real single-node SLURM cluster (tests/slurm/cluster.sh): services as
batch jobs, points and report driven from the driver's host, nothing left queued."""

import signal
import subprocess
from pathlib import Path

import pytest
import yaml

from conftest import ROOT
from llmsweep.benchmark import read_records
from llmsweep.util import read_json, wait_until
from slurm.testprofile import write_test_profile
from slurm.workflow import assert_queue_empties, command, env, snakemake, squeue

pytestmark = pytest.mark.slurm


def write_config(workdir: Path, clients=(1, 2), requests=2, gpu_layers=0) -> None:
    cfg = {
        "run": "s",
        "sweep": {"clients": list(clients), "requests_per_client": requests},
        "workload": {"max_tokens": 16},
        # The test cluster's GPUs are fake and llama-server is a CPU build: run on the CPU
        # on purpose (the default would offload to the job's GPU, and be refused).
        "engines": {"llama_cpp": {"parallel": 2, "ctx_size": 1024, "gpu_layers": gpu_layers}},
        "services": {"ready_timeout_s": 120, "queue_timeout_s": 120},
        "monitoring": {"scrape_interval_s": 1},
    }
    (workdir / "config.yaml").write_text(yaml.safe_dump(cfg))


def sacct(since_job: int = 0) -> list[dict]:
    out = subprocess.run(
        [
            "sacct",
            "-a",
            "-X",
            "-n",
            "-P",
            "-S",
            "now-1day",
            "-o",
            "JobID,JobName%60,Partition,AllocTRES%80,State,Comment%80",
        ],
        capture_output=True,
        text=True,
        check=True,
    ).stdout
    keys = ("id", "name", "partition", "tres", "state", "comment")
    rows = [dict(zip(keys, line.split("|"), strict=True)) for line in out.splitlines()]
    return [r for r in rows if int(r["id"].split("_")[0]) > since_job]


def last_job_id() -> int:
    rows = sacct()
    return max((int(r["id"].split("_")[0]) for r in rows), default=0)


def point(workdir: Path, clients: int) -> Path:
    return workdir / "results" / "s" / "bench" / "gemma3-270m" / f"c{clients}"


def test_sweep_on_slurm_to_report(cluster, tmp_path):
    write_config(tmp_path)
    write_test_profile(tmp_path)
    first = last_job_id()

    dry = snakemake(tmp_path, "-n")
    assert dry.returncode == 0, dry.stdout + dry.stderr
    assert "deployment" in dry.stdout and "acquire_prometheus" in dry.stdout
    assert last_job_id() == first, "a dry run submitted a job"

    proc = snakemake(tmp_path)
    assert proc.returncode == 0, proc.stdout + proc.stderr
    assert (tmp_path / "results/s/report/index.html").exists()
    for clients in (1, 2):
        summary = read_json(point(tmp_path, clients) / "summary.json")
        assert summary["successful"] == clients * 2
        assert summary["point"]["llm_server"]["job_id"]
    jobs = sacct(first)
    by_name = {r["name"]: r for r in jobs}
    llm = by_name["llmsweep-s-llm_server.gemma3-270m"]
    assert llm["partition"] == "gpu" and "gres/gpu=1" in llm["tres"]
    assert by_name["llmsweep-s-client_service.gemma3-270m"]["partition"] == "cpu"
    assert by_name["llmsweep-s-prometheus"]["partition"] == "cpu"
    # Points are driven from the driver's host and the report is built there: every job
    # in the queue is a service of the run, none a Snakemake job waiting for a node.
    assert {r["name"] for r in jobs} == {
        "llmsweep-s-pushgateway",
        "llmsweep-s-prometheus",
        "llmsweep-s-llm_server.gemma3-270m",
        "llmsweep-s-client_service.gemma3-270m",
    }
    assert_queue_empties()


def test_cpu_only_server_given_a_gpu_is_refused_at_readiness(cluster, tmp_path):
    """By default a server job that has a GPU offloads the whole model; the CPU-only
    llama-server here cannot, and readiness says so instead of measuring a CPU server."""
    write_config(tmp_path, clients=(1,), requests=1, gpu_layers=None)
    write_test_profile(tmp_path)
    proc = snakemake(tmp_path)
    assert proc.returncode != 0
    service_log = tmp_path / "results/s/services/llm_server.gemma3-270m/service.log"
    out = proc.stdout + proc.stderr
    assert "offloaded no layer to a GPU" in out, out[-4000:]
    assert "offloaded no layer to a GPU" in service_log.read_text()
    assert "--n-gpu-layers 999" in service_log.read_text()
    assert not list((tmp_path / "results").rglob("summary.json"))
    assert_queue_empties()


def test_scancel_llm_server_then_resume(cluster, tmp_path):
    write_config(tmp_path, clients=(1, 2), requests=12)
    write_test_profile(tmp_path)
    log = open(tmp_path / "driver.log", "w")
    driver = subprocess.Popen(
        command(tmp_path), stdout=log, stderr=subprocess.STDOUT, env=env(), cwd=tmp_path
    )
    try:
        bench = tmp_path / "results" / "s" / "bench"

        def second_point_running():
            done = list(bench.rglob("summary.json"))
            running = [
                p
                for p in bench.rglob("requests.jsonl")
                if p.stat().st_size and not (p.parent / "summary.json").exists()
            ]
            return done and running

        wait_until(second_point_running, 600, "a finished point and a running one", max_delay=1)
        instance = read_json(tmp_path / "results/s/services/llm_server.gemma3-270m/instance.json")
        subprocess.run(["scancel", instance["job_id"]], check=True)
        driver.wait(600)
    finally:
        if driver.poll() is None:
            driver.kill()
    assert driver.returncode != 0
    assert_queue_empties()
    done = {p.parent.name: p.stat().st_mtime_ns for p in bench.rglob("summary.json")}
    assert len(done) == 1

    proc = snakemake(tmp_path)
    assert proc.returncode == 0, proc.stdout + proc.stderr
    after = {p.parent.name: p.stat().st_mtime_ns for p in bench.rglob("summary.json")}
    assert set(after) == {"c1", "c2"}
    assert {k: after[k] for k in done} == done, "a finished point was redone"
    new = read_json(tmp_path / "results/s/services/llm_server.gemma3-270m/instance.json")
    assert new["job_id"] != instance["job_id"]
    for clients in (1, 2):
        assert len(read_records(point(tmp_path, clients) / "requests.jsonl")) == clients * 12
    assert_queue_empties()


@pytest.mark.parametrize("sig", [signal.SIGINT, signal.SIGTERM])
def test_signal_to_driver_leaves_no_job(cluster, tmp_path, sig):
    write_config(tmp_path, clients=(2,), requests=50)
    write_test_profile(tmp_path)
    log = open(tmp_path / "driver.log", "w")
    driver = subprocess.Popen(
        command(tmp_path), stdout=log, stderr=subprocess.STDOUT, env=env(), cwd=tmp_path
    )
    try:
        requests = point(tmp_path, 2) / "requests.jsonl"
        wait_until(
            lambda: requests.exists() and requests.stat().st_size,
            600,
            "a running point",
            max_delay=1,
        )
        assert squeue()
        driver.send_signal(sig)
        driver.wait(300)
    finally:
        if driver.poll() is None:
            driver.kill()
    assert_queue_empties()


@pytest.mark.parametrize(
    ("resources", "message"),
    [
        ({"deployment": {"slurm_partition": "nosuchpartition"}}, "invalid partition"),
        ({"deployment": {"slurm_account": "nosuchaccount"}}, "Invalid account"),
    ],
)
def test_bad_profile_values_show_slurms_error(cluster, tmp_path, resources, message):
    write_config(tmp_path)
    write_test_profile(tmp_path, **resources)
    proc = snakemake(tmp_path)
    assert proc.returncode != 0
    out = proc.stdout + proc.stderr
    assert message.lower() in out.lower(), out[-3000:]
    assert not list((tmp_path / "results").rglob("requests.jsonl"))
    assert_queue_empties()


def test_batch_wrapper_runs_the_driver_as_a_job(cluster, tmp_path):
    write_config(tmp_path, clients=(1,), requests=1)
    write_test_profile(tmp_path)
    proc = subprocess.run(
        [
            "sbatch",
            "--parsable",
            "--wait",
            "--account=bench",
            "--time=20",
            f"--output={tmp_path / 'driver.out'}",
            str(ROOT / "bin" / "slurm-driver.sbatch"),
            "--directory",
            str(tmp_path),
            "--configfile",
            str(tmp_path / "config.yaml"),
        ],
        capture_output=True,
        text=True,
        timeout=900,
        cwd=ROOT,
        env={**env(), "LLMSWEEP_PROFILE": str(tmp_path / "profile")},
    )
    out = (tmp_path / "driver.out").read_text()
    assert proc.returncode == 0, proc.stderr + out[-3000:]
    assert (point(tmp_path, 1) / "summary.json").exists()
    assert_queue_empties()
