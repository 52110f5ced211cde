"""vLLM's OpenAI-compatible server (`vllm serve`), native or in an Apptainer image:
command line, readiness, metadata.

vLLM cannot run on the development machines (no GPU, no vLLM package): this module is
tested against a stand-in server (tests/fakes/bin/vllm) and its command lines as text.
"""

from __future__ import annotations

from llmsweep.engines import flag_args, in_image, model_path, openai
from llmsweep.secret import ENV_PLACEHOLDER
from llmsweep.util import http_json, http_ok

LAUNCHED = True
PROTOCOL = "openai"
KEEPS_CONNECTIONS = True
METRICS_PATH = "/metrics"
TOKENIZES = True  # POST /tokenize and /detokenize
PLACES = ("binary", "image", "apptainer", "model_files")

# Setting -> `vllm serve` flag, for the settings that take a value; null leaves it out.
FLAGS = {
    "max_num_seqs": "--max-num-seqs",
    "max_model_len": "--max-model-len",
    "gpu_memory_utilization": "--gpu-memory-utilization",
    "max_num_batched_tokens": "--max-num-batched-tokens",
    "dtype": "--dtype",
    "quantization": "--quantization",
}


def healthy(url: str, headers: dict | None = None) -> bool:
    """GET /health: 200 while the engine runs."""
    return http_ok(url + "/health", headers=headers)


def ready(url: str, model: str, headers: dict | None = None) -> bool:
    """Ready when /health answers, /v1/models lists the model and one tiny completion
    works."""
    return (
        healthy(url, headers)
        and openai.model_entry(url, model, headers) is not None
        and openai.completes(url, model, headers)
    )


def prefix_caching(settings: dict) -> list[str]:
    """vLLM's on/off pair of flags; null leaves vLLM's default (on in current releases)."""
    enabled = settings["enable_prefix_caching"]
    if enabled is None:
        return []
    return ["--enable-prefix-caching"] if enabled else ["--no-enable-prefix-caching"]


def tensor_parallel(gpus: int) -> list[str]:
    """The model split over all the deployment's GPUs; left out without a GPU."""
    return ["--tensor-parallel-size", str(gpus)] if gpus >= 1 else []


def launcher(settings: dict, model: str) -> list[str]:
    """`vllm serve`: the native binary, or the one inside engines.vllm.image."""
    if not settings["image"]:
        return [settings["binary"], "serve"]
    local = model_path(settings, model)
    binds = [local] if local != model else []
    return in_image(settings, binds, ["vllm", "serve"])


def command(
    settings: dict, model: str, cpus: int | None = None, gpus: int = 0, secret_file: str = ""
) -> tuple[list[str], dict[str, str]]:
    """(argv, environment) of `vllm serve`; `{host}` and `{port}` are filled by the wrapper.
    The API names the model `model` (--served-model-name) wherever its weights are. With
    `secret_file`, VLLM_API_KEY (filled with the run's token by the wrapper, off the command
    line) makes it require the token on /v1."""
    argv = [
        *launcher(settings, model),
        model_path(settings, model),
        "--served-model-name",
        model,
        "--host",
        "{host}",
        "--port",
        "{port}",
        # Each answer's cached prompt tokens (usage.prompt_tokens_details.cached_tokens),
        # which records and multi-turn figures read.
        "--enable-prompt-tokens-details",
        *tensor_parallel(gpus),
        *flag_args(settings, FLAGS),
        *prefix_caching(settings),
        *settings["extra_args"],
    ]
    env = {"VLLM_NO_USAGE_STATS": "1"}  # no usage report from cluster nodes
    if secret_file:
        env["VLLM_API_KEY"] = ENV_PLACEHOLDER
    return argv, env


def readiness(settings: dict, model: str, gpus: int) -> dict:
    return {}


def version(url: str, headers: dict | None = None) -> str | None:
    status, body = http_json(url + "/version", headers=headers)
    return body.get("version") if status == 200 and isinstance(body, dict) else None


def metadata(url: str, model: str, headers: dict | None = None) -> dict:
    """vLLM's version, and the context length and weights' root /v1/models gives."""
    entry = openai.model_entry(url, model, headers) or {}
    return {
        "engine_version": version(url, headers),
        "max_model_len": entry.get("max_model_len"),
        "root": entry.get("root"),
    }
