"""The workflow end to end with the real parts: llama.cpp's server and Gemma 3 270M,
Pushgateway, Prometheus, the client service under gunicorn, and snakemake itself."""

import os
import signal
import time
from pathlib import Path

import pytest

from helpers import (
    assert_nothing_alive,
    deployment_log,
    mtimes,
    point,
    snakemake,
    start_snakemake,
    write_config,
    write_stub_config,
)
from llmsweep.benchmark import read_records
from llmsweep.loadgen.stats import summarize
from llmsweep.util import read_json, wait_until

pytestmark = pytest.mark.e2e


def test_run_resume_extend(tmp_path):
    write_config(tmp_path)
    proc = snakemake(tmp_path)
    assert proc.returncode == 0, proc.stdout + proc.stderr
    assert_nothing_alive(tmp_path)
    report = tmp_path / "results" / "t" / "report"
    for name in ("points.csv", "throughput.png", "latency.png", "index.html"):
        assert (report / name).stat().st_size > 0
    for clients in (1, 2):
        records = read_records(point(tmp_path, clients) / "requests.jsonl")
        assert len(records) == clients * 2 and all(r["ok"] for r in records)
        assert {r["output_tokens_source"] for r in records} == {"usage"}
        summary = read_json(point(tmp_path, clients) / "summary.json")
        again = summarize(records)
        for key in (
            "requests",
            "output_tokens",
            "output_token_throughput_tps",
            "ttft_s",
            "e2e_s",
            "itl_s",
            "tpot_s",
            "request_throughput_rps",
        ):
            assert summary[key] == again[key], key
        assert summary["output_tokens"] == sum(r["output_tokens"] for r in records)
        assert summary["point"]["peak_in_flight"] == clients
    page = (report / "index.html").read_text()
    assert "data:image/png;base64," in page and "TTFT p50 ms" in page

    before = mtimes(tmp_path)
    proc = snakemake(tmp_path)
    assert proc.returncode == 0
    assert "Nothing to be done" in proc.stdout + proc.stderr
    assert mtimes(tmp_path) == before

    write_config(tmp_path, sweep={"clients": [1, 2, 3]})
    proc = snakemake(tmp_path)
    assert proc.returncode == 0, proc.stdout + proc.stderr
    log = deployment_log(tmp_path)
    assert "2 of 3 points finished before" in log
    assert "point c3 " in log and "point c1 " not in log and "point c2 " not in log
    after = mtimes(tmp_path)
    assert {k: after[k] for k in before} == before
    assert (point(tmp_path, 3) / "summary.json").exists()
    assert_nothing_alive(tmp_path)


def finished_points(bench: Path) -> set[str]:
    """Points ('c1', ...) with a summary: finished (it is written last, atomically)."""
    return {p.parent.name for p in bench.glob("*/*/summary.json")}


def test_killed_driver_resumes_only_unfinished_points(tmp_path):
    write_config(tmp_path, sweep={"clients": [1, 2, 3], "requests_per_client": 3})
    driver = start_snakemake(tmp_path)
    bench = tmp_path / "results" / "t" / "bench"
    try:
        wait_until(lambda: finished_points(bench), 300, "a first finished point")
    finally:
        driver.send_signal(signal.SIGKILL)
        driver.wait()
    # Without its driver, every service stops itself (the owner watchdog), and the
    # deployment's job starts no further point.
    assert_nothing_alive(tmp_path, timeout=30)
    time.sleep(5)
    done_before = finished_points(bench)
    before = {k: v for k, v in mtimes(tmp_path).items() if k.split("/")[1] in done_before}
    assert 1 <= len(done_before) < 3

    proc = snakemake(tmp_path)
    assert proc.returncode == 0, proc.stdout + proc.stderr
    log = deployment_log(tmp_path)
    assert f"{len(done_before)} of 3 points finished before" in log
    for name in done_before:
        assert f"point {name} " not in log
    after = mtimes(tmp_path)
    assert {k: after[k] for k in before} == before
    assert finished_points(bench) == {"c1", "c2", "c3"}
    assert_nothing_alive(tmp_path)


@pytest.mark.parametrize("sig", [signal.SIGINT, signal.SIGTERM])
def test_signal_to_snakemake_leaves_no_process(tmp_path, sig):
    write_config(tmp_path, sweep={"clients": [2], "requests_per_client": 50})
    driver = start_snakemake(tmp_path)
    try:
        requests = point(tmp_path, 2) / "requests.jsonl"
        wait_until(lambda: requests.exists() and requests.stat().st_size, 300, "a running point")
    finally:
        driver.send_signal(sig)
        driver.wait(120)
    assert driver.returncode != 0
    assert_nothing_alive(tmp_path)


def test_llm_server_killed_mid_point(tmp_path):
    write_config(tmp_path, sweep={"clients": [1], "requests_per_client": 40})
    driver = start_snakemake(tmp_path)
    requests = point(tmp_path, 1) / "requests.jsonl"
    try:
        wait_until(
            lambda: requests.exists() and len(requests.read_text().splitlines()) >= 3,
            300,
            "three finished requests",
        )
        endpoint = tmp_path / "results" / "t" / "services" / "llm_server.gemma3-270m"
        os.kill(read_json(endpoint / "endpoint.json")["pid"], signal.SIGKILL)
        driver.wait(300)
    finally:
        driver.kill()
    assert driver.returncode != 0
    log = (tmp_path / "driver.log").read_text()
    assert "stopped answering" in log
    records = read_records(requests)
    completed = [r for r in records if r["ok"]]
    assert len(completed) >= 3
    assert any(not r["ok"] for r in records)
    kept = list(point(tmp_path, 1).glob("requests.failed-*.jsonl"))
    assert len(kept) == 1 and read_records(kept[0]) == records
    assert not (point(tmp_path, 1) / "summary.json").exists()
    assert_nothing_alive(tmp_path)

    proc = snakemake(tmp_path)
    assert proc.returncode == 0, proc.stdout + proc.stderr
    records = read_records(requests)
    assert len(records) == 40 and all(r["ok"] for r in records)
    assert read_json(point(tmp_path, 1) / "summary.json")["successful"] == 40
    assert_nothing_alive(tmp_path)


@pytest.mark.parametrize(
    ("change", "key"),
    [
        ({"sweep": {"clients": [-2]}}, "sweep.clients[0]"),
        ({"sweep": {"clients": "two"}}, "sweep.clients"),
        ({"engine": "tgi"}, "engine"),
        ({"workload": {"temperature": 0.5}}, "workload.temperature"),
        ({"sweep": {"rates": [-1]}}, "sweep.rates[0]"),
        ({"workload": {"input_tokens": {"stdev": 4}}}, "workload.input_tokens"),
        ({"workload": {"prompt_file": "/no/prompts.csv"}}, "workload.prompt_file"),
    ],
)
def test_bad_config_is_rejected_before_any_service_starts(tmp_path, change, key):
    write_config(tmp_path, **change)
    t0 = time.monotonic()
    proc = snakemake(tmp_path)
    assert proc.returncode != 0
    assert key in proc.stdout + proc.stderr
    assert not (tmp_path / "results" / "t" / "services").exists()
    assert time.monotonic() - t0 < 120


def test_openai_engine_runs_against_an_external_server(tmp_path):
    """engine: openai benchmarks a server llmsweep does not start (here the stub)."""
    from llmsweep.loadgen.stub_server import StubServer

    with StubServer(gap_s=0.001) as stub:
        write_stub_config(tmp_path, stub, sweep={"clients": [3], "requests_per_client": 2})
        proc = snakemake(tmp_path)
    assert proc.returncode == 0, proc.stdout + proc.stderr
    summary = read_json(tmp_path / "results/t/bench/stub-model/c3/summary.json")
    assert summary["successful"] == 6 and summary["output_tokens"] == 6 * 16
    assert summary["point"]["llm_server"]["status"] == "external"
    assert_nothing_alive(tmp_path)


def test_fidelity_against_llama_cpp(tmp_path):
    """Warm-up, synthetic prompts from the server's tokenizer, an open-loop point, and
    figures that agree with what llama.cpp itself reports."""
    write_config(
        tmp_path,
        sweep={"clients": [2], "requests_per_client": 3, "rates": [4], "requests": 6},
        warmup={"requests": 2},
        workload={"api": "completions", "max_tokens": 16, "input_tokens": {"mean": 40}},
        slo={"ttft_s": 30, "e2e_s": 60},
        client={"workers": 2},  # two load-generator processes under the real gunicorn
    )
    proc = snakemake(tmp_path)
    assert proc.returncode == 0, proc.stdout + proc.stderr
    for load, measured in (("c2", 6), ("r4", 6)):
        folder = tmp_path / "results" / "t" / "bench" / "gemma3-270m" / load
        records = read_records(folder / "requests.jsonl")
        warm = [r for r in records if r["warmup"]]
        assert len(warm) == 2 and len(records) == measured + 2
        for r in records:
            assert r["ok"], r
            timings = r["server_timings"]
            server_s = (timings["prompt_ms"] + timings["predicted_ms"]) / 1000
            assert r["e2e_s"] >= server_s
            assert r["output_tokens"] == timings["predicted_n"] == 16
            assert r["output_tokens_source"] == "usage"
            assert 38 <= r["input_tokens"] <= 43  # 40 tokens cut by the tokenizer, + BOS
        summary = read_json(folder / "summary.json")
        assert summary["requests"] == measured and summary["warmup_requests"] == 2
        assert summary["output_tokens"] == 16 * measured
        assert summary["goodput_rps"] == summary["request_throughput_rps"]
        assert summary["client"]["cpu_s"] > 0 and summary["client"]["saturated"] in (True, False)
    arrivals = [r["arrival_s"] for r in read_records(folder / "requests.jsonl") if not r["warmup"]]
    assert sorted(arrivals)[0] == 0.0 and all(a < 60 for a in arrivals)
