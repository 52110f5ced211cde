"""A stand-in for SGLang's `python -m sglang.launch_server` (SGLang cannot run here: no
GPU, no package), for the tests only.

It takes the flags llmsweep emits (and a few users pass in extra_args), refusing an
unknown flag or a bad value with exit status 2 as SGLang does, and serves SGLang's API:
/health and /health_generate (503 until a short warm-up is over, as SGLang answers while
it warms up), /get_model_info, /server_info and /get_server_info, /v1/models (with
max_model_len and root), streaming and non-streaming completions
(llmsweep.loadgen.stub_server), /tokenize, /detokenize (and under /v1), and, with
--enable-metrics only, /metrics with SGLang's metric names. See
tests/fakes/engine_standin.py for the record it writes.
"""

import argparse
import sys
import time
from pathlib import Path

FAKES = Path(__file__).resolve().parents[2]
sys.path[:0] = [str(FAKES), str(FAKES.parents[1] / "src")]

import engine_standin as standin  # noqa: E402
from aiohttp import web  # noqa: E402

from llmsweep.loadgen.stub_server import STATE, make_app  # noqa: E402

VERSION = "0.0.0+stand-in"
WARM_UP_S = 0.5
KV_TOKENS = 100_000  # the KV cache pool it says it has
# Some of the names SGLang's --quantization accepts (its list changes between releases).
QUANTIZATION = ("awq", "awq_marlin", "gptq", "gptq_marlin", "fp8", "bitsandbytes", "gguf")


def prefill_chunk(text: str) -> int:
    value = int(text)
    if value == 0 or value < -1:
        raise argparse.ArgumentTypeError(f"{value} is neither -1 (off) nor positive")
    return value


def parser() -> argparse.ArgumentParser:
    p = argparse.ArgumentParser(prog="python -m sglang.launch_server")
    p.add_argument("--model-path", "--model", required=True)
    p.add_argument("--host", default="127.0.0.1")
    p.add_argument("--port", type=int, default=30000)
    p.add_argument("--served-model-name")
    p.add_argument("--tensor-parallel-size", "--tp-size", dest="tp_size", type=standin.positive)
    p.add_argument("--max-running-requests", type=standin.positive)
    p.add_argument("--context-length", type=standin.positive)
    p.add_argument("--mem-fraction-static", type=standin.fraction)
    p.add_argument("--chunked-prefill-size", type=prefill_chunk)
    p.add_argument("--disable-radix-cache", action="store_true")
    p.add_argument("--dtype", choices=standin.DTYPES, default="auto")
    p.add_argument("--quantization", choices=QUANTIZATION)
    p.add_argument("--enable-metrics", action="store_true")
    p.add_argument("--enable-cache-report", action="store_true")
    p.add_argument("--trust-remote-code", action="store_true")
    p.add_argument("--log-level", default="info")
    p.add_argument("--api-key")
    p.set_defaults(tp_size=1)
    return p


def cards(args: argparse.Namespace) -> list[dict]:
    """/v1/models: the served name, its root the same name, as SGLang lists it."""
    name = args.served_model_name or args.model_path
    card = {"id": name, "object": "model", "created": int(time.time()), "owned_by": "sglang"}
    return [{**card, "root": name, "max_model_len": args.context_length or 4096}]


def metrics(app: web.Application, model: str):
    async def handler(_: web.Request) -> web.Response:
        state = app[STATE]
        values = [
            ("sglang:num_running_reqs", "gauge", state["in_flight"]),
            ("sglang:num_queue_reqs", "gauge", 0),
            ("sglang:token_usage", "gauge", 0.0),
            ("sglang:prompt_tokens_total", "counter", state["prompt_tokens"]),
            ("sglang:generation_tokens_total", "counter", state["completion_tokens"]),
        ]
        text = standin.metrics_text(values, {"model_name": model})
        return web.Response(text=text, content_type="text/plain")

    return handler


def native_routes(app: web.Application, args: argparse.Namespace, name: str) -> None:
    """SGLang's own endpoints: health after warm-up, model and server info."""
    started = time.monotonic()
    info = {**vars(args), "version": VERSION, "max_total_num_tokens": KV_TOKENS}

    async def health(_: web.Request) -> web.Response:
        warm = time.monotonic() - started >= WARM_UP_S
        return web.Response(status=200 if warm else 503)

    async def model_info(_: web.Request) -> web.Response:
        return web.json_response({"model_path": args.model_path, "is_generation": True})

    async def server_info(_: web.Request) -> web.Response:
        return web.json_response({**info, "internal_states": [{"last_gen_throughput": 0.0}]})

    for path, handler in (
        ("/health", health),
        ("/health_generate", health),
        ("/get_model_info", model_info),
        ("/server_info", server_info),
        ("/get_server_info", server_info),
    ):
        app.router.add_get(path, handler)
    if args.enable_metrics:
        app.router.add_get("/metrics", metrics(app, name))


def app_for(args: argparse.Namespace) -> web.Application:
    served = cards(args)
    app = make_app(cards=served)
    native_routes(app, args, served[0]["id"])
    standin.tokenizer_routes(app, served, "text", prefixes=("", "/v1"))
    # --api-key guards every path but health and metrics, as in SGLang.
    public = ("/health", "/metrics")
    standin.require_key(app, args.api_key, lambda p: not p.startswith(public))
    return app


def main() -> None:
    args = standin.parsed_or_exit(parser(), sys.argv[1:])
    standin.serve(app_for(args), args)


if __name__ == "__main__":
    main()
