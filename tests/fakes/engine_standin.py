"""What the vLLM and SGLang stand-ins share (tests only; neither server can run here: no
GPU, no package). Each stand-in parses its real server's flags, records how it was
started, and serves the OpenAI-compatible API through llmsweep.loadgen.stub_server with
its engine's own extra routes and metric names added.

Environment: LLMSWEEP_STANDIN_RECORD, a file to write {argv, env, pid, args} to once
listening; LLMSWEEP_STANDIN_PARSE_ONLY=1 prints the parsed arguments as JSON and exits 0
without serving.
"""

from __future__ import annotations

import argparse
import asyncio
import json
import os
import signal
import sys

from aiohttp import web

from llmsweep.loadgen.stub_server import unknown_model

RECORDED_ENV = ("VLLM_", "SGLANG_", "CUDA_", "HF_", "LLMSWEEP_")
DTYPES = ("auto", "half", "float16", "bfloat16", "float", "float32")


def positive(text: str) -> int:
    value = int(text)
    if value < 1:
        raise argparse.ArgumentTypeError(f"{value} is not a positive integer")
    return value


def fraction(text: str) -> float:
    value = float(text)
    if not 0 < value <= 1:
        raise argparse.ArgumentTypeError(f"{value} is not in (0, 1]")
    return value


def parsed_or_exit(parser: argparse.ArgumentParser, argv: list[str]) -> argparse.Namespace:
    """The parsed arguments (argparse exits 2 with a message on an unknown flag or a bad
    value, as the real servers do); with LLMSWEEP_STANDIN_PARSE_ONLY, print them and exit."""
    args = parser.parse_args(argv)
    if os.environ.get("LLMSWEEP_STANDIN_PARSE_ONLY"):
        print(json.dumps(vars(args)))
        sys.exit(0)
    return args


def record(args: argparse.Namespace) -> None:
    """Write how this process was started to $LLMSWEEP_STANDIN_RECORD, whole or not at all."""
    path = os.environ.get("LLMSWEEP_STANDIN_RECORD")
    if not path:
        return
    env = {k: v for k, v in os.environ.items() if k.startswith(RECORDED_ENV)}
    seen = {"argv": sys.orig_argv, "env": env, "pid": os.getpid(), "args": vars(args)}
    with open(path + ".tmp", "w") as f:
        json.dump(seen, f)
    os.replace(path + ".tmp", path)


def require_key(app: web.Application, key: str | None, guarded) -> None:
    """With `key`, answer 401 to a request to a path `guarded(path)` accepts that does not
    carry `Authorization: Bearer <key>`, as the real servers do with an API key."""
    if not key:
        return

    @web.middleware
    async def check(request: web.Request, handler):
        if guarded(request.path) and request.headers.get("Authorization") != f"Bearer {key}":
            return web.json_response({"error": "Unauthorized"}, status=401)
        return await handler(request)

    app.middlewares.append(check)


def metrics_text(metrics: list[tuple[str, str, float]], labels: dict[str, str]) -> str:
    """Prometheus text format: (name, type, value) each with `labels`."""
    label_text = ",".join(f'{k}="{v}"' for k, v in labels.items())
    lines = []
    for name, kind, value in metrics:
        lines += [f"# HELP {name} {name} (stand-in)", f"# TYPE {name} {kind}"]
        lines.append(f"{name}{{{label_text}}} {float(value)}")
    return "\n".join(lines) + "\n"


def tokens_of(text: str) -> list[int]:
    """One token per character, its code point: reversible, like a real tokenizer."""
    return [ord(c) for c in text]


def text_of(tokens: list[int]) -> str:
    return "".join(chr(t) for t in tokens)


def tokenizer_routes(
    app: web.Application, cards: list[dict], answer_key: str, prefixes: tuple[str, ...] = ("",)
) -> None:
    """POST /tokenize and /detokenize under each of `prefixes`; the detokenized text comes
    back under `answer_key` (vLLM: prompt; SGLang: text)."""
    max_len = cards[0]["max_model_len"]

    async def tokenize(request: web.Request) -> web.Response:
        body = await request.json()
        refused = unknown_model(cards, body) if body.get("model") else None
        if refused is not None:
            return refused
        tokens = tokens_of(str(body.get("prompt", "")))
        return web.json_response({"tokens": tokens, "count": len(tokens), "max_model_len": max_len})

    async def detokenize(request: web.Request) -> web.Response:
        body = await request.json()
        refused = unknown_model(cards, body) if body.get("model") else None
        if refused is not None:
            return refused
        return web.json_response({answer_key: text_of(body.get("tokens", []))})

    for prefix in prefixes:
        app.router.add_post(f"{prefix}/tokenize", tokenize)
        app.router.add_post(f"{prefix}/detokenize", detokenize)


async def _serve(app: web.Application, args: argparse.Namespace) -> None:
    runner = web.AppRunner(app, access_log=None, shutdown_timeout=5)
    await runner.setup()
    await web.TCPSite(runner, args.host, args.port).start()
    record(args)
    stop = asyncio.Event()
    for signum in (signal.SIGTERM, signal.SIGINT):
        asyncio.get_running_loop().add_signal_handler(signum, stop.set)
    await stop.wait()
    await runner.cleanup()


def serve(app: web.Application, args: argparse.Namespace) -> None:
    """Serve until SIGTERM or SIGINT, recording how it was started once listening."""
    asyncio.run(_serve(app, args))
