"""Deployments on this machine: one server at a time without a GPU, side by side on GPUs of
their own with two (simulated) GPUs, released right after their last point, and a new
settings value running only its own points. Real llama.cpp server and model."""

import json
import os
import signal
import time
from pathlib import Path

import pytest

from conftest import ROOT
from helpers import (
    assert_nothing_alive,
    deployment_log,
    mtimes,
    snakemake,
    start_snakemake,
    write_config,
)
from llmsweep.util import read_json, wait_until

pytestmark = pytest.mark.e2e

SMALL = {
    "sweep": {"clients": [1, 2], "requests_per_client": 1},
    "workload": {"max_tokens": 8},
}


def lifetimes(workdir: Path, role: str) -> dict[str, tuple[float, float]]:
    """Each service of `role`'s first start and first stop, by key, from its history."""
    out = {}
    for path in (workdir / "results" / "t" / "services").glob(f"{role}.*/history.jsonl"):
        events = [json.loads(line) for line in path.read_text().splitlines()]
        started = min(e["time"] for e in events if e["event"] == "started")
        stopped = min(e["time"] for e in events if e["event"] == "stopped")
        out[path.parent.name] = (started, stopped)
    return out


def overlap(a: tuple[float, float], b: tuple[float, float]) -> float:
    return min(a[1], b[1]) - max(a[0], b[0])


def last_summary(workdir: Path, slug: str) -> float:
    bench = workdir / "results" / "t" / "bench" / slug
    return max(p.stat().st_mtime for p in bench.glob("*/summary.json"))


def test_without_a_gpu_one_server_at_a_time_each_released_after_its_points(tmp_path):
    write_config(tmp_path, engines={"llama_cpp": {"parallel": [1, 2], "gpu_layers": 0}}, **SMALL)
    proc = snakemake(tmp_path)
    assert proc.returncode == 0, proc.stdout + proc.stderr
    assert "up to 1 deployment(s) at once" in proc.stderr
    servers = lifetimes(tmp_path, "llm_server")
    clients = lifetimes(tmp_path, "client_service")
    slugs = ["gemma3-270m_parallel-1", "gemma3-270m_parallel-2"]
    assert sorted(servers) == [f"llm_server.{s}" for s in slugs]
    # From the services' start and stop history: never two servers (or clients) alive.
    for alive in (servers, clients):
        first, second = sorted(alive.values())
        assert overlap(first, second) < 0, alive
    for slug in slugs:
        stopped = servers[f"llm_server.{slug}"][1]
        assert 0 <= stopped - last_summary(tmp_path, slug) < 15
        record = read_json(tmp_path / "results" / "t" / "bench" / slug / "deployment.json")
        assert record["points"] == ["c1", "c2"] and len(record["sessions"]) == 1
        assert [p["load"] for p in record["sessions"][0]["points"]] == ["c1", "c2"]
    table = (tmp_path / "results" / "t" / "report" / "deployments.csv").read_text()
    assert len(table.splitlines()) == 3
    assert_nothing_alive(tmp_path)

    # A new value of a settings list runs the new deployment's points and nothing else.
    before = mtimes(tmp_path)
    records = {
        s: (tmp_path / f"results/t/bench/{s}/deployment.json").stat().st_mtime_ns for s in slugs
    }
    write_config(tmp_path, engines={"llama_cpp": {"parallel": [1, 2, 4], "gpu_layers": 0}}, **SMALL)
    proc = snakemake(tmp_path)
    assert proc.returncode == 0, proc.stdout + proc.stderr
    after = mtimes(tmp_path)
    assert {k: after[k] for k in before} == before
    # 4 is parallel's default: that deployment's folder is the model's alone.
    new = {k for k in set(after) - set(before) if k.rsplit("/", 1)[1] != "live.json"}
    assert new == {
        f"gemma3-270m/{load}/{name}"
        for load in ("c1", "c2")
        for name in ("requests.jsonl", "summary.json")
    }
    for slug, mtime in records.items():
        assert (tmp_path / f"results/t/bench/{slug}/deployment.json").stat().st_mtime_ns == mtime
    assert_nothing_alive(tmp_path)


def test_two_gpus_serve_two_deployments_at_once_each_on_its_own(tmp_path):
    write_config(
        tmp_path,
        engines={"llama_cpp": {"parallel": [1, 2], "gpu_layers": 0}},
        sweep={"clients": [1, 2], "requests_per_client": 2},
        workload={"max_tokens": 16},
        monitoring={"enabled": False},
    )
    fake_nvml = ROOT / "tests" / "fakes" / "nvml"
    env = {
        "PYTHONPATH": f"{fake_nvml}:{ROOT / 'src'}",
        "LLMSWEEP_FAKE_GPUS": "2",
    }
    saved = os.environ.pop("CUDA_VISIBLE_DEVICES", None)
    try:
        proc = snakemake(tmp_path, extra_env=env)
    finally:
        if saved is not None:
            os.environ["CUDA_VISIBLE_DEVICES"] = saved
    assert proc.returncode == 0, proc.stdout + proc.stderr
    assert "up to 2 deployment(s) at once" in proc.stderr
    servers = lifetimes(tmp_path, "llm_server")
    first, second = servers.values()
    assert overlap(first, second) > 0, servers
    services = tmp_path / "results" / "t" / "services"
    devices = {
        key: read_json(services / key / "spec.json")["env"]["CUDA_VISIBLE_DEVICES"]
        for key in servers
    }
    assert sorted(devices.values()) == ["0", "1"], devices
    for key in servers:
        assert read_json(services / key / "spec.json")["gpus"] == 1


@pytest.mark.parametrize(
    ("change", "message"),
    [
        ({"engines": {"llama_cpp": {"parallel": [1, "two"]}}}, "engines.llama_cpp.parallel[1]"),
        ({"engines": {"llama_cpp": {"ctx_size": []}}}, "engines.llama_cpp.ctx_size"),
        (
            {"deployments": [{"model": "gemma3-270m", "settings": {"paralel": 2}}]},
            "deployments[0].settings.paralel",
        ),
        ({"deployments": [{"model": "gemma3-270m", "engine": "tgi"}]}, "deployments[0].engine"),
        (
            {"deployments": [{"model": "gemma3-270m", "settings": {"parallel": 2}}]},
            "deployments[0]: the same deployment",
        ),
        ({"gpus": [1, 1]}, "gpus"),
    ],
)
def test_bad_deployments_are_rejected_before_any_job(tmp_path, change, message):
    write_config(tmp_path, **change)
    t0 = time.monotonic()
    proc = snakemake(tmp_path)
    assert proc.returncode != 0
    assert message in proc.stdout + proc.stderr
    assert not (tmp_path / "results").exists()
    assert time.monotonic() - t0 < 120


def test_the_original_recipe_runs_to_a_report(tmp_path):
    recipe = {
        "job": {
            "name": "t",
            "infrastructure": {"partition": "gpu", "gpus": 1},
            "service": {"model": "gemma3-270m", "n_clients": 1, "n_requests_per_client": 1},
        }
    }
    (tmp_path / "recipe.json").write_text(json.dumps(recipe))
    # The recipe's models are Ollama's unless the config names the engine, as here.
    write_config(
        tmp_path,
        engine="llama_cpp",
        engines={"llama_cpp": {"gpu_layers": 0}},
        workload={"max_tokens": 4},
    )
    files = [str(tmp_path / "config.yaml"), str(tmp_path / "recipe.json")]
    proc = snakemake(tmp_path, "--configfile", *files)
    assert proc.returncode == 0, proc.stdout + proc.stderr
    summary = read_json(tmp_path / "results/t/bench/gemma3-270m/c1/summary.json")
    assert summary["successful"] == 1
    assert (tmp_path / "results/t/report/index.html").stat().st_size > 0
    assert_nothing_alive(tmp_path)


@pytest.mark.parametrize("profile", ["default", "slurm"])
def test_a_dry_run_of_the_original_example_recipe_succeeds(tmp_path, profile):
    recipe = {
        "job": {
            "name": "ollama_inference_job",
            "infrastructure": {"partition": "gpu", "account": "p200981", "time": "01:00:00"},
            "service": {"model": "llama2", "n_clients": 100, "n_requests_per_client": 10},
        }
    }
    path = tmp_path / "recipe.json"
    path.write_text(json.dumps(recipe))
    cmd = ["--configfile", str(path), "--profile", str(ROOT / "profiles" / profile), "-n"]
    proc = snakemake(tmp_path, *cmd)
    assert proc.returncode == 0, proc.stdout + proc.stderr
    out = proc.stdout + proc.stderr
    assert "Deployment llama2" in out and "Traceback" not in out
    assert not (tmp_path / "results" / "ollama_inference_job" / "services").exists()


def test_a_prometheus_lost_mid_run_is_restarted_and_the_gap_reported(tmp_path):
    write_config(
        tmp_path,
        sweep={"clients": [1, 2, 3], "requests_per_client": 2},
        engines={"llama_cpp": {"gpu_layers": 0}},
    )
    driver = start_snakemake(tmp_path)
    services = tmp_path / "results" / "t" / "services"
    try:
        first = tmp_path / "results/t/bench/gemma3-270m/c1/summary.json"
        wait_until(first.exists, 300, "the first point's summary")
        prometheus = read_json(services / "prometheus" / "instance.json")
        os.killpg(prometheus["pid"], signal.SIGKILL)
        assert driver.wait(600) == 0, (tmp_path / "driver.log").read_text()[-3000:]
    finally:
        if driver.poll() is None:
            driver.kill()
    log = deployment_log(tmp_path)
    assert "the run's prometheus is gone; monitoring has a gap, restarting it" in log
    history = (services / "prometheus" / "history.jsonl").read_text().splitlines()
    started = [json.loads(line) for line in history if '"started"' in line]
    assert len(started) == 2
    meta = read_json(tmp_path / "results/t/report/metadata.json")
    assert [g["service"] for g in meta["monitoring_gaps"]] == ["prometheus"]
    assert "WITH GAPS" in meta["monitoring"]
    assert "WITH GAPS" in (tmp_path / "results/t/report/index.html").read_text()
    assert_nothing_alive(tmp_path)
