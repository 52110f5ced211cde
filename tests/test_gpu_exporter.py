"""The GPU exporter on a machine without a GPU: it runs, says so, answers only with the
run's token, and stops on SIGTERM."""

import os
import signal
import subprocess
import sys
import urllib.request

import pytest

from conftest import ROOT
from helpers import AUTH, TOKEN
from llmsweep import secret
from llmsweep.util import free_port, http_ok, wait_until


@pytest.fixture(autouse=True)
def secret_file(tmp_path):
    global SECRET_FILE
    SECRET_FILE = secret.create_file(tmp_path / "secret", TOKEN)


def start_exporter(port: int, env: dict | None = None) -> subprocess.Popen:
    argv = [sys.executable, "-m", "llmsweep.metrics.gpu_exporter"]
    argv += ["--host", "127.0.0.1", "--port", str(port), "--secret-file", str(SECRET_FILE)]
    return subprocess.Popen(argv, stdout=subprocess.PIPE, stderr=subprocess.PIPE, env=env)


def scrape(url: str, headers: dict | None = AUTH) -> bytes:
    with urllib.request.urlopen(urllib.request.Request(url, headers=headers or {})) as resp:
        return resp.read()


def test_without_gpu_reports_zero_gpus_and_an_error_and_exits_cleanly():
    port = free_port("127.0.0.1")
    proc = start_exporter(port)
    try:
        url = f"http://127.0.0.1:{port}/metrics"
        wait_until(lambda: http_ok(url, headers=AUTH), 30, "the GPU exporter")
        for _ in range(2):  # a second scrape must work as well as the first
            text = scrape(url)
        basic = secret.basic(TOKEN)  # as Prometheus scrapes it
        assert scrape(url, basic).startswith(b"# HELP")
        for wrong in ({}, secret.bearer("not-the-token"), {"Authorization": "Basic !!"}):
            with pytest.raises(urllib.error.HTTPError) as refused:
                scrape(url, wrong)
            assert refused.value.code == 401
        assert b"llmsweep_gpus 0.0" in text
        assert b"llmsweep_gpu_exporter_error{reason=" in text
        assert b"} 1.0" in text.split(b"llmsweep_gpu_exporter_error{")[1][:300]
        assert b"# TYPE DCGM_FI_DEV_GPU_UTIL gauge" in text
        check = subprocess.run(["promtool", "check", "metrics"], input=text, capture_output=True)
        assert check.returncode == 0, check.stdout + check.stderr
    finally:
        proc.send_signal(signal.SIGTERM)
        out, err = proc.communicate(timeout=30)
    assert proc.returncode == 0, err


def test_with_a_gpu_reports_each_dcgm_field_and_promtool_accepts_it():
    """No GPU exists here: NVML is the simulated one of tests/fakes/nvml (one GPU); the
    exporter code that reads it is the real one."""
    port = free_port("127.0.0.1")
    env = {**os.environ, "PYTHONPATH": f"{ROOT / 'tests' / 'fakes' / 'nvml'}:{ROOT / 'src'}"}
    proc = start_exporter(port, env)
    try:
        url = f"http://127.0.0.1:{port}/metrics"
        wait_until(lambda: http_ok(url, headers=AUTH), 30, "the GPU exporter")
        text = scrape(url).decode()
        assert "llmsweep_gpus 1.0" in text and 'llmsweep_gpu_exporter_error{reason=""} 0.0' in text
        for field in ("GPU_UTIL", "FB_USED", "FB_FREE", "POWER_USAGE", "GPU_TEMP", "SM_CLOCK"):
            line = next(x for x in text.splitlines() if x.startswith(f"DCGM_FI_DEV_{field}{{"))
            assert 'gpu="0"' in line and 'model_name="Simulated GPU"' in line, line
        assert "DCGM_FI_DEV_FB_USED{" in text and "} 4096.0" in text  # 4 GiB of 16, in MiB
        check = subprocess.run(
            ["promtool", "check", "metrics"], input=text.encode(), capture_output=True
        )
        assert check.returncode == 0, check.stdout + check.stderr
    finally:
        proc.send_signal(signal.SIGTERM)
        _, err = proc.communicate(timeout=30)
    assert proc.returncode == 0, err
