"""A minimal OpenAI-compatible streaming server, for load-generator tests and benchmarks.

It streams `max_tokens` one-word chunks with a fixed gap, then usage and [DONE]. It is
not an LLM: it measures the load generator, never a model. Given model cards, it lists
them in /v1/models and answers 404 for any other model, as vLLM and SGLang do; its counts
are in app[STATE] for the routes an engine's stand-in adds (tests/fakes). It can be made
to hang for a while (pause: nothing sent, not even new requests' headers), as a stopped
server does, and to keep the body of every streamed request (app[STATE]["bodies"]).

Usage: python -m llmsweep.loadgen.stub_server --port P [--gap-ms G] [--pause-at S --pause-for D]
"""

from __future__ import annotations

import argparse
import asyncio
import contextlib
import json
import threading
import time

from aiohttp import web

STATE = web.AppKey("state", dict)
PROMPT_TOKENS = 7  # what every request is said to hold


def unknown_model(cards: list[dict] | None, body: dict) -> web.Response | None:
    """The 404 an OpenAI-compatible server gives for a model it does not serve; None when
    the model is served, or when no cards were given (any model is)."""
    if cards is None or body.get("model") in {c["id"] for c in cards}:
        return None
    error = {
        "message": f"The model `{body.get('model')}` does not exist.",
        "type": "NotFoundError",
        "code": 404,
    }
    return web.json_response({"error": error}, status=404)


def usage_of(n: int) -> dict:
    """The usage of a request that generated `n` tokens."""
    return {
        "prompt_tokens": PROMPT_TOKENS,
        "completion_tokens": n,
        "total_tokens": n + PROMPT_TOKENS,
    }


def count_tokens(state: dict, n: int) -> None:
    state["prompt_tokens"] += PROMPT_TOKENS
    state["completion_tokens"] += n


def pause(state: dict, for_s: float, after_s: float = 0.0) -> None:
    """Send nothing from `after_s` seconds from now, for `for_s` seconds."""
    start = time.monotonic() + after_s
    state["paused"] = (start, start + for_s)


async def _unless_paused(state: dict) -> None:
    """Wait out a pause (the server hangs: nothing is sent)."""
    while True:
        start, end = state["paused"]  # pause() may end or move it meanwhile
        if not start <= time.monotonic() < end:
            return
        await asyncio.sleep(min(0.01, end - time.monotonic()))


def make_app(
    gap_s: float = 0.0,
    fail_status: int | None = None,
    cards: list[dict] | None = None,
    slots: int | None = None,
    keep_bodies: bool = False,
) -> web.Application:
    """The stub's app; with `slots`, it streams that many responses at once and the other
    requests wait, before their headers, as in a server's queue; with `keep_bodies`, the
    body of each streamed request is kept in app[STATE]["bodies"], in arrival order."""
    queue = asyncio.Semaphore(slots) if slots else contextlib.nullcontext()
    state = {
        "in_flight": 0,
        "peak": 0,
        "requests": 0,
        "ttfb_s_sum": 0.0,
        "prompt_tokens": 0,
        "completion_tokens": 0,
        "paused": (0.0, 0.0),
        "bodies": [],
    }

    async def completions(request: web.Request) -> web.StreamResponse:
        body = await request.json()
        if fail_status:
            return web.json_response({"error": "configured to fail"}, status=fail_status)
        refused = unknown_model(cards, body)
        if refused is not None:
            return refused
        if not body.get("stream"):
            n = int(body.get("max_tokens", 16))
            count_tokens(state, n)
            text = " ".join(f"w{i}" for i in range(n))
            usage = usage_of(n)
            return web.json_response({"choices": [{"text": text, "index": 0}], "usage": usage})
        arrived = time.perf_counter()
        if keep_bodies:
            state["bodies"].append(body)
        state["requests"] += 1
        state["in_flight"] += 1
        state["peak"] = max(state["peak"], state["in_flight"])
        try:
            async with queue:
                return await stream(request, body, arrived)
        except ConnectionResetError:  # the client went away (a cancelled point)
            return web.Response(status=499)
        finally:
            state["in_flight"] -= 1

    async def stream(request: web.Request, body: dict, arrived: float) -> web.StreamResponse:
        await _unless_paused(state)
        resp = web.StreamResponse(headers={"Content-Type": "text/event-stream"})
        await resp.prepare(request)
        n = int(body.get("max_tokens", 16))
        count_tokens(state, n)
        chat = "messages" in body
        for i in range(n):
            if gap_s:
                await asyncio.sleep(gap_s)
            await _unless_paused(state)
            choice = {"delta": {"content": f"w{i} "}} if chat else {"text": f"w{i} "}
            await resp.write(b"data: " + json.dumps({"choices": [choice]}).encode() + b"\n\n")
            if i == 0:  # the server's own time to first byte, to tell client overhead
                state["ttfb_s_sum"] += time.perf_counter() - arrived
        usage = usage_of(n)
        await _unless_paused(state)
        await resp.write(b"data: " + json.dumps({"choices": [], "usage": usage}).encode())
        await resp.write(b"\n\ndata: [DONE]\n\n")
        await resp.write_eof()
        return resp

    async def models(_: web.Request) -> web.Response:
        return web.json_response({"object": "list", "data": cards or [{"id": "stub"}]})

    async def stats(_: web.Request) -> web.Response:
        return web.json_response(state)

    app = web.Application()
    app.router.add_post("/v1/chat/completions", completions)
    app.router.add_post("/v1/completions", completions)
    app.router.add_get("/v1/models", models)
    app.router.add_get("/stats", stats)
    app[STATE] = state
    return app


class StubServer:
    """Run the stub in a background thread on 127.0.0.1 (for tests)."""

    def __init__(
        self,
        gap_s: float = 0.0,
        fail_status: int | None = None,
        slots: int | None = None,
        keep_bodies: bool = False,
    ):
        self.app = make_app(gap_s, fail_status, slots=slots, keep_bodies=keep_bodies)
        self.url = ""
        self._loop = asyncio.new_event_loop()
        self._ready = threading.Event()
        self._thread = threading.Thread(target=self._serve, daemon=True)

    def _serve(self) -> None:
        asyncio.set_event_loop(self._loop)
        runner = web.AppRunner(self.app, access_log=None)
        self._loop.run_until_complete(runner.setup())
        site = web.TCPSite(runner, "127.0.0.1", 0, backlog=4096)
        self._loop.run_until_complete(site.start())
        port = site._server.sockets[0].getsockname()[1]
        self.url = f"http://127.0.0.1:{port}"
        self._runner = runner
        self._ready.set()
        self._loop.run_forever()
        self._loop.run_until_complete(runner.cleanup())

    def __enter__(self) -> StubServer:
        self._thread.start()
        if not self._ready.wait(30):
            raise RuntimeError("stub server did not start")
        return self

    def __exit__(self, *exc) -> None:
        self._loop.call_soon_threadsafe(self._loop.stop)
        self._thread.join(30)

    def pause(self, for_s: float, after_s: float = 0.0) -> None:
        """Hang: send nothing from `after_s` seconds from now, for `for_s` seconds."""
        self._loop.call_soon_threadsafe(pause, self.app[STATE], for_s, after_s)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("--host", default="127.0.0.1")
    parser.add_argument("--port", type=int, required=True)
    parser.add_argument("--gap-ms", type=float, default=0.0)
    parser.add_argument("--pause-at", type=float, default=0.0, help="hang S s after start")
    parser.add_argument("--pause-for", type=float, default=0.0, help="for D s")
    args = parser.parse_args()
    app = make_app(args.gap_ms / 1000)
    pause(app[STATE], args.pause_for, args.pause_at)
    web.run_app(app, host=args.host, port=args.port, backlog=4096)


if __name__ == "__main__":
    main()
