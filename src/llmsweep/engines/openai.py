"""Any OpenAI-compatible server (vLLM, SGLang, TGI, llama.cpp, Ollama's /v1)."""

from __future__ import annotations

from llmsweep.util import http_json, http_ok

LAUNCHED = False  # a server already running at engines.openai.base_url
PROTOCOL = "openai"
KEEPS_CONNECTIONS = True
METRICS_PATH = None  # engines.openai.metrics_path names it where the server has one
TOKENIZES = True  # vLLM's /tokenize; others answer 404 and synthetic prompts say so
PLACES = ("base_url", "metrics_path")


def command(
    settings: dict, model: str, cpus: int | None = None, gpus: int = 0, secret_file: str = ""
):
    raise ValueError("engine openai is a server llmsweep does not start")


def readiness(settings: dict, model: str, gpus: int) -> dict:
    return {}


def healthy(url: str, headers: dict | None = None) -> bool:
    return http_ok(url + "/v1/models", headers=headers)


def completes(url: str, model: str, headers: dict | None = None) -> bool:
    """The model answers one small (one-token) completion."""
    status, body = http_json(
        url + "/v1/completions",
        {"model": model, "prompt": "Hello", "max_tokens": 1, "stream": False},
        timeout=60,
        headers=headers,
    )
    return status == 200 and isinstance(body, dict) and bool(body.get("choices"))


def ready(url: str, model: str, headers: dict | None = None) -> bool:
    """Ready when the model answers one small completion."""
    return healthy(url, headers) and completes(url, model, headers)


def model_entry(url: str, model: str, headers: dict | None = None) -> dict | None:
    """The entry of `model` in /v1/models (vLLM and SGLang add max_model_len and the
    weights' root); None when the server does not list it."""
    status, body = http_json(url + "/v1/models", headers=headers)
    entries = body.get("data", []) if status == 200 and isinstance(body, dict) else []
    return next((m for m in entries if isinstance(m, dict) and m.get("id") == model), None)


def metadata(url: str, model: str, headers: dict | None = None) -> dict:
    """The model entry of /v1/models."""
    entry = model_entry(url, model, headers) or {}
    return {"engine_version": None, "owned_by": entry.get("owned_by"), "root": entry.get("root")}
