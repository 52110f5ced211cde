"""Any OpenAI-compatible server (vLLM, SGLang, TGI, llama.cpp, Ollama's /v1)."""

from __future__ import annotations

from llmsweep.util import http_json, http_ok

LAUNCHED = False  # a server already running at engines.openai.base_url
PROTOCOL = "openai"
KEEPS_CONNECTIONS = True
METRICS_PATH = None  # engines.openai.metrics_path names it where the server has one
TOKENIZES = True  # vLLM's /tokenize; others answer 404 and synthetic prompts say so
PLACES = ("base_url", "metrics_path")


def command(settings: dict, model: str, cpus: int | None = None, gpus: int = 0):
    raise ValueError("engine openai is a server llmsweep does not start")


def readiness(settings: dict, model: str, gpus: int) -> dict:
    return {}


def healthy(url: str) -> bool:
    return http_ok(url + "/v1/models")


def ready(url: str, model: str) -> bool:
    """Ready when the model answers one small completion."""
    if not healthy(url):
        return False
    status, body = http_json(
        url + "/v1/completions",
        {"model": model, "prompt": "Hello", "max_tokens": 1, "stream": False},
        timeout=60,
    )
    return status == 200 and isinstance(body, dict) and bool(body.get("choices"))


def metadata(url: str, model: str) -> dict:
    """The model entry of /v1/models (vLLM adds max_model_len and the weights' root)."""
    status, body = http_json(url + "/v1/models")
    entries = body.get("data", []) if status == 200 and isinstance(body, dict) else []
    entry = next((m for m in entries if m.get("id") == model), {})
    return {"engine_version": None, "owned_by": entry.get("owned_by"), "root": entry.get("root")}
