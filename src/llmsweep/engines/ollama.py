"""Ollama: native binary or Apptainer image, readiness = the model loaded and answering.

Ollama cannot run on the development machines; this module is tested against recorded
Ollama API responses and its command lines are checked as text.

Ollama has no API key: its server is the one service of a run that does not require the
run's secret (the `headers` its functions take are sent and ignored by it).
"""

from __future__ import annotations

import os
from pathlib import Path

from llmsweep.util import http_json, http_ok

LAUNCHED = True
PROTOCOL = "ollama"  # its native streaming API, with eval_count and the durations
KEEPS_CONNECTIONS = True
METRICS_PATH = None  # Ollama has no Prometheus endpoint
TOKENIZES = False
PLACES = ("binary", "image", "apptainer", "models_dir")

PULL_TIMEOUT_S = 3600


def healthy(url: str, headers: dict | None = None) -> bool:
    return http_ok(url + "/api/version", headers=headers)


def _names(body) -> set[str]:
    models = body.get("models", []) if isinstance(body, dict) else []
    return {m.get("name") for m in models} | {m.get("model") for m in models}


def _has(names: set[str], model: str) -> bool:
    """Ollama names `llama3.2` as `llama3.2:latest`."""
    return model in names or (":" not in model and f"{model}:latest" in names)


def ready(url: str, model: str, headers: dict | None = None) -> bool:
    """Pull the model only when it is missing, warm it up with one generation, then ready
    when /api/ps lists it as loaded (never /api/tags alone: that is models on disk)."""
    if not healthy(url, headers):
        return False
    status, tags = http_json(url + "/api/tags", headers=headers)
    if status != 200:
        return False
    if not _has(_names(tags), model):
        status, body = http_json(
            url + "/api/pull",
            {"model": model, "stream": False},
            timeout=PULL_TIMEOUT_S,
            headers=headers,
        )
        if status != 200 or (isinstance(body, dict) and body.get("status") != "success"):
            raise RuntimeError(f"ollama pull {model} failed: {body}")
    status, body = http_json(
        url + "/api/generate",
        {"model": model, "prompt": "Hello", "stream": False, "options": {"num_predict": 1}},
        timeout=PULL_TIMEOUT_S,
        headers=headers,
    )
    if status != 200 or not isinstance(body, dict) or not body.get("done"):
        return False
    status, ps = http_json(url + "/api/ps", headers=headers)
    return status == 200 and _has(_names(ps), model)


def models_dir(settings: dict) -> Path:
    configured = settings["models_dir"]
    if configured:
        return Path(os.path.expanduser(configured)).resolve()
    cache = os.environ.get("XDG_CACHE_HOME") or str(Path.home() / ".cache")
    return Path(cache) / "llmsweep" / "ollama-models"


def command(
    settings: dict,
    model: str = "",
    cpus: int | None = None,
    gpus: int = 0,
    secret_file: str = "",
) -> tuple[list[str], dict]:
    """(argv, environment) of `ollama serve`; `{host}` and `{port}` are filled by the wrapper.

    OLLAMA_NUM_PARALLEL comes from config, never from the client count, and
    OLLAMA_MAX_LOADED_MODELS (distinct models, not requests) is left alone.
    """
    store = models_dir(settings)
    env = {
        "OLLAMA_HOST": "{host}:{port}",
        "OLLAMA_MODELS": str(store),
        "OLLAMA_NUM_PARALLEL": str(settings["num_parallel"]),
        "OLLAMA_KEEP_ALIVE": settings["keep_alive"],
    }
    if settings["image"]:
        argv = [
            settings["apptainer"],
            "exec",
            "--nv",  # the node's GPU driver inside the container
            "--bind",
            f"{store}:{store}",
            "--env",
            f"OLLAMA_MODELS={store}",
            settings["image"],
            "ollama",
            "serve",
        ]
    else:
        argv = [settings["binary"], "serve"]
    return argv, env


def readiness(settings: dict, model: str, gpus: int) -> dict:
    return {}


def version(url: str, headers: dict | None = None) -> str | None:
    status, body = http_json(url + "/api/version", headers=headers)
    return body.get("version") if status == 200 and isinstance(body, dict) else None


def metadata(url: str, model: str, headers: dict | None = None) -> dict:
    """Ollama's version and the loaded model's details (format, size, quantisation)."""
    status, ps = http_json(url + "/api/ps", headers=headers)
    loaded = [m for m in (ps or {}).get("models", []) if _has({m.get("name")}, model)]
    details = loaded[0].get("details", {}) if loaded else {}
    return {
        "engine_version": version(url, headers),
        "quantization": details.get("quantization_level"),
        "parameter_size": details.get("parameter_size"),
    }
