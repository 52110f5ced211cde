"""SGLang's server (`python -m sglang.launch_server`), native or in an Apptainer image:
command line, readiness, metadata.

SGLang cannot run on the development machines (no GPU, no SGLang package): this module is
tested against a stand-in server (tests/fakes/sglang) and its command lines as text.
"""

from __future__ import annotations

from llmsweep.engines import flag_args, in_image, model_path, openai
from llmsweep.secret import ENV_PLACEHOLDER
from llmsweep.util import http_json, http_ok

LAUNCHED = True
PROTOCOL = "openai"
KEEPS_CONNECTIONS = True
METRICS_PATH = "/metrics"  # served with --enable-metrics, which the command always gives
TOKENIZES = True  # POST /tokenize and /detokenize (also under /v1)
PLACES = ("python", "image", "apptainer", "model_files")

# Setting -> launch_server flag, for the settings that take a value; null leaves it out.
FLAGS = {
    "max_running_requests": "--max-running-requests",
    "context_length": "--context-length",
    "mem_fraction_static": "--mem-fraction-static",
    "chunked_prefill_size": "--chunked-prefill-size",
    "dtype": "--dtype",
    "quantization": "--quantization",
}

# Current SGLang answers /health by running one token through the model (at least a
# second), and only with 200 once its warm-up is done.
HEALTH_TIMEOUT_S = 30


def healthy(url: str, headers: dict | None = None) -> bool:
    """GET /v1/models: cheap, unlike /health, which generates a token."""
    return openai.healthy(url, headers)


def ready(url: str, model: str, headers: dict | None = None) -> bool:
    """Ready when /health answers (the server warmed up and generates), /v1/models lists
    the model and one tiny completion works."""
    return (
        http_ok(url + "/health", timeout=HEALTH_TIMEOUT_S, headers=headers)
        and openai.model_entry(url, model, headers) is not None
        and openai.completes(url, model, headers)
    )


def tensor_parallel(gpus: int) -> list[str]:
    """The model split over all the deployment's GPUs; left out without a GPU."""
    return ["--tp-size", str(gpus)] if gpus >= 1 else []


# SGLang takes its API key only as --api-key. With a key, the interpreter runs this
# instead of `-m sglang.launch_server`: it adds the flag from KEY_ENV inside the process,
# so the token is in no command line (/proc/<pid>/cmdline keeps the one it started with).
KEY_ENV = "LLMSWEEP_API_KEY"
KEYED_LAUNCH = (
    "import os, runpy, sys; "
    f"key = os.environ.pop({KEY_ENV!r}); "
    "sys.argv = [sys.argv[1], *sys.argv[2:], '--api-key', key]; "
    "runpy.run_module(sys.argv[0], run_name='__main__', alter_sys=True)"
)


def launcher(settings: dict, model: str, keyed: bool = False) -> list[str]:
    """`python -m sglang.launch_server`: the configured interpreter, or python3 inside
    engines.sglang.image; `keyed`, through KEYED_LAUNCH."""
    module = (
        ["-c", KEYED_LAUNCH, "sglang.launch_server"] if keyed else ["-m", "sglang.launch_server"]
    )
    if not settings["image"]:
        return [settings["python"], *module]
    local = model_path(settings, model)
    binds = [local] if local != model else []
    return in_image(settings, binds, ["python3", *module])


def command(
    settings: dict, model: str, cpus: int | None = None, gpus: int = 0, secret_file: str = ""
) -> tuple[list[str], dict[str, str]]:
    """(argv, environment) of SGLang's server; `{host}` and `{port}` are filled by the
    wrapper. The API names the model `model` (--served-model-name) wherever its weights
    are; --enable-metrics turns on its Prometheus endpoint."""
    argv = [
        *launcher(settings, model, keyed=bool(secret_file)),
        "--model-path",
        model_path(settings, model),
        "--served-model-name",
        model,
        "--host",
        "{host}",
        "--port",
        "{port}",
        "--enable-metrics",
        # Each answer's cached prompt tokens (usage.prompt_tokens_details.cached_tokens),
        # which records and multi-turn figures read.
        "--enable-cache-report",
        *tensor_parallel(gpus),
        *flag_args(settings, FLAGS),
        *(["--disable-radix-cache"] if settings["disable_radix_cache"] else []),
        *settings["extra_args"],
    ]
    return argv, ({KEY_ENV: ENV_PLACEHOLDER} if secret_file else {})


def readiness(settings: dict, model: str, gpus: int) -> dict:
    return {}


def server_info(url: str, headers: dict | None = None) -> dict:
    """SGLang's server arguments, scheduler figures and version: /server_info, or
    /get_server_info in releases before the rename."""
    for path in ("/server_info", "/get_server_info"):
        status, body = http_json(url + path, headers=headers)
        if status == 200 and isinstance(body, dict):
            return body
    return {}


def metadata(url: str, model: str, headers: dict | None = None) -> dict:
    """SGLang's version, tensor parallel size and KV cache size in tokens, and the context
    length and weights' root /v1/models gives."""
    entry = openai.model_entry(url, model, headers) or {}
    info = server_info(url, headers)
    return {
        "engine_version": info.get("version"),
        "max_model_len": entry.get("max_model_len"),
        "root": entry.get("root"),
        "tp_size": info.get("tp_size"),
        "max_total_num_tokens": info.get("max_total_num_tokens"),
    }
