"""Ollama support against recorded API responses (its binary cannot run here), and its
generated command lines as text."""

import asyncio
import threading
from pathlib import Path

import pytest
from aiohttp import web

from helpers import client_app
from llmsweep import config, deployments
from llmsweep.engines import ollama
from llmsweep.loadgen import session
from llmsweep.loadgen.protocols import Ollama
from llmsweep.loadgen.request import stream_request
from llmsweep.paths import RunPaths
from llmsweep.services import definitions

DATA = Path(__file__).parent / "data" / "ollama"


class Replay:
    """Serve the recorded responses on 127.0.0.1, as an Ollama server would."""

    def __init__(self, has_model: bool = True, stream: str = "generate_stream.ndjson"):
        self.calls: list[str] = []
        self.has_model = has_model
        self.stream = stream
        self.bodies: list[dict] = []

    def app(self) -> web.Application:
        async def stream_lines(request, body, name):
            self.bodies.append(body)
            resp = web.StreamResponse(headers={"Content-Type": "application/x-ndjson"})
            await resp.prepare(request)
            for line in (DATA / name).read_bytes().splitlines(keepends=True):
                await resp.write(line)
                await asyncio.sleep(0.005)
            await resp.write_eof()
            return resp

        async def generate(request):
            self.calls.append("generate")
            body = await request.json()
            if not body.get("stream", True):
                text = (DATA / "generate.json").read_text()
                return web.Response(text=text, content_type="application/json")
            return await stream_lines(request, body, self.stream)

        async def chat(request):
            self.calls.append("chat")
            return await stream_lines(request, await request.json(), "chat_stream.ndjson")

        def static(name, call):
            async def handler(request):
                self.calls.append(call)
                if call == "pull":
                    self.has_model = True
                if call == "tags" and not self.has_model:
                    name_ = "tags_empty.json"
                else:
                    name_ = name
                return web.Response(
                    text=(DATA / name_).read_text(), content_type="application/json"
                )

            return handler

        app = web.Application()
        app.router.add_post("/api/generate", generate)
        app.router.add_post("/api/chat", chat)
        app.router.add_get("/api/version", static("version.json", "version"))
        app.router.add_get("/api/tags", static("tags.json", "tags"))
        app.router.add_get("/api/ps", static("ps.json", "ps"))
        app.router.add_post("/api/pull", static("pull.json", "pull"))
        return app

    def __enter__(self):
        self.loop = asyncio.new_event_loop()
        ready = threading.Event()

        def serve():
            asyncio.set_event_loop(self.loop)
            runner = web.AppRunner(self.app())
            self.loop.run_until_complete(runner.setup())
            site = web.TCPSite(runner, "127.0.0.1", 0)
            self.loop.run_until_complete(site.start())
            self.url = f"http://127.0.0.1:{site._server.sockets[0].getsockname()[1]}"
            ready.set()
            self.loop.run_forever()

        self.thread = threading.Thread(target=serve, daemon=True)
        self.thread.start()
        assert ready.wait(10)
        return self

    def __exit__(self, *exc):
        self.loop.call_soon_threadsafe(self.loop.stop)
        self.thread.join(10)


def one(url: str, api: str) -> dict:
    async def go():
        async with session.new_session(30) as http:
            body = Ollama.body(api, "llama3.2:1b", "Tell me a story", 5, True)
            return await stream_request(http, url, Ollama, api, body, keep_text=True)

    return asyncio.run(go())


@pytest.mark.parametrize(
    ("api", "text", "out", "inp"),
    [("completions", "The keeper found a bottle", 5, 31), ("chat", "Once upon a time", 4, 36)],
)
def test_streaming_record_uses_ollamas_counts_and_timings(api, text, out, inp):
    with Replay() as server:
        rec = one(server.url, api)
    assert rec["ok"], rec
    assert rec["text"] == text
    assert rec["output_tokens"] == out and rec["output_tokens_source"] == "eval_count"
    assert rec["input_tokens"] == inp and rec["input_tokens_source"] == "prompt_eval_count"
    assert rec["chunks"] == out and len(rec["itl_s"]) == out - 1
    assert 0 < rec["ttft_s"] <= rec["e2e_s"]
    timings = rec["server_timings"]
    assert timings["eval_s"] > 0 and timings["load_s"] > 0 and timings["prompt_eval_s"] > 0
    assert timings["total_s"] == pytest.approx(
        {"completions": 0.412735917, "chat": 0.301944125}[api]
    )


def test_request_body_caps_output_with_num_predict():
    with Replay() as server:
        one(server.url, "completions")
        body = server.bodies[0]
    assert body["options"] == {"num_predict": 5}
    assert body["stream"] is True and body["prompt"] == "Tell me a story"


def test_error_inside_the_stream_is_a_server_error():
    with Replay(stream="error_stream.ndjson") as server:
        rec = one(server.url, "completions")
    assert not rec["ok"] and rec["error_kind"] == "server_error"
    assert "more system memory" in rec["error"]


def test_ready_pulls_only_a_missing_model_and_waits_for_it_to_be_loaded():
    with Replay(has_model=False) as server:
        assert ollama.ready(server.url, "llama3.2:1b")
        assert server.calls == ["version", "tags", "pull", "generate", "ps"]
    with Replay(has_model=True) as server:
        assert ollama.ready(server.url, "llama3.2:1b")
        assert "pull" not in server.calls and server.calls[-1] == "ps"
        assert ollama.version(server.url) == "0.12.6"


def test_ready_is_false_when_the_model_is_not_loaded():
    with Replay() as server:
        assert not ollama.ready(server.url, "qwen3:8b")  # pulled (recorded) but never in /api/ps


def test_client_service_runs_a_point_against_ollama():
    with Replay() as server:
        app = client_app(
            {"UPSTREAM": server.url, "MODEL": "llama3.2:1b", "ENGINE": "ollama", "RUN": "o"}
        )
        c = app.test_client()
        assert c.get("/health").status_code == 200
        body = {
            "sweep": {"clients": 3, "requests_per_client": 2},
            "workload": {"prompt": "x", "api": "chat"},
        }
        point_id = c.post("/benchmark", json=body).get_json()["id"]
        view = c.get(f"/benchmark/{point_id}?wait=30").get_json()
        while view["state"] == "running":
            view = c.get(f"/benchmark/{point_id}?wait=30&offset={view['completed']}").get_json()
    assert view["state"] == "done" and view["completed"] == 6


def settings(**changes):
    cfg = config.load(
        overrides={"engine": "ollama", "models": ["llama3.2:1b"], "engines": {"ollama": changes}}
    )
    return cfg


def test_native_command_line_and_environment(tmp_path):
    cfg = settings(num_parallel=8, models_dir=str(tmp_path / "store"))
    argv, env = ollama.command(cfg["engines"]["ollama"], "llama3.2:1b")
    assert argv == ["ollama", "serve"]
    assert env["OLLAMA_HOST"] == "{host}:{port}"
    assert env["OLLAMA_MODELS"] == str(tmp_path / "store")
    assert env["OLLAMA_NUM_PARALLEL"] == "8"
    assert "OLLAMA_MAX_LOADED_MODELS" not in env


def test_apptainer_command_line(tmp_path):
    cfg = settings(image="/images/ollama-0.12.6.sif", models_dir=str(tmp_path / "store"))
    argv, env = ollama.command(cfg["engines"]["ollama"], "llama3.2:1b")
    store = str(tmp_path / "store")
    assert argv == [
        "apptainer",
        "exec",
        "--nv",
        "--bind",
        f"{store}:{store}",
        "--env",
        f"OLLAMA_MODELS={store}",
        "/images/ollama-0.12.6.sif",
        "ollama",
        "serve",
    ]
    assert env["OLLAMA_HOST"] == "{host}:{port}"


def test_service_spec_for_ollama(tmp_path):
    cfg = settings(binary="/bin/true")
    cfg["sweep"]["clients"] = [64]
    cfg["models"] = ["llama3.2:1b"]
    (dep,) = deployments.expand(cfg)
    spec = definitions.llm_server(cfg, RunPaths("o", tmp_path), dep)
    assert spec["argv"] == ["/bin/true", "serve"]
    assert spec["ready"] == {"kind": "llm", "engine": "ollama", "model": "llama3.2:1b"}
    assert spec["env"]["OLLAMA_NUM_PARALLEL"] == "4"  # from config, not the 64 clients
    assert spec["key"] == "llm_server.llama3.2_1b-" + spec["key"].rsplit("-", 1)[1]
