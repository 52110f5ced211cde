"""Running the workflow from tests: a scratch config, snakemake in a subprocess, and the
checks every end-to-end test shares."""

import asyncio
import contextlib
import json
import os
import signal
import subprocess
import sys
from pathlib import Path

import yaml
from flask.testing import FlaskClient

from conftest import ROOT, service_pids
from llmsweep.procs import group_alive, pid_alive
from llmsweep.util import wait_until
from workflow_cmd import local_env, snakemake_cmd

BASE = {
    "run": "t",
    "sweep": {"clients": [1, 2], "requests_per_client": 2},
    "workload": {"max_tokens": 16},
    "engines": {"llama_cpp": {"parallel": 2, "ctx_size": 1024}},
    "services": {"ready_timeout_s": 120},
    "monitoring": {"scrape_interval_s": 1},
}


def write_config(workdir: Path, **changes) -> Path:
    cfg = json.loads(json.dumps(BASE))
    for key, value in changes.items():
        cfg.setdefault(key, {})
        if isinstance(value, dict):
            cfg[key].update(value)
        else:
            cfg[key] = value
    path = workdir / "config.yaml"
    path.write_text(yaml.safe_dump(cfg))
    return path


def write_stub_config(workdir: Path, stub, **changes) -> Path:
    """write_config for a run against the streaming stub `stub` as an external server
    (engine openai, model stub-model), with `changes`."""
    return write_config(
        workdir,
        engine="openai",
        models=["stub-model"],
        engines={"openai": {"base_url": stub.url}},
        **changes,
    )


class LoopbackServer:
    """A raw asyncio server on 127.0.0.1 for tests that script what a server sends byte by
    byte: `async with` starts it (its URL in .url); subclasses answer in _connection."""

    async def __aenter__(self):
        self.server = await asyncio.start_server(self._connection, "127.0.0.1", 0)
        self.url = f"http://127.0.0.1:{self.server.sockets[0].getsockname()[1]}"
        return self

    async def __aexit__(self, *exc):
        self.server.close()

    async def _connection(self, reader, writer) -> None:
        raise NotImplementedError


def env() -> dict:
    """The environment of a local workflow run (see workflow_cmd.local_env)."""
    path = f"{Path(sys.executable).parent}:{os.environ['PATH']}"
    return local_env({**os.environ, "PATH": path, "PYTHONPATH": str(ROOT / "src")})


def snakemake(
    workdir: Path, *args: str, timeout: int = 600, extra_env: dict | None = None
) -> subprocess.CompletedProcess:
    return subprocess.run(
        snakemake_cmd(workdir) + list(args),
        capture_output=True,
        text=True,
        timeout=timeout,
        env={**env(), **(extra_env or {})},
        cwd=workdir,
    )


def start_snakemake(workdir: Path) -> subprocess.Popen:
    log = open(workdir / "driver.log", "w")
    return subprocess.Popen(
        snakemake_cmd(workdir), stdout=log, stderr=subprocess.STDOUT, env=env(), cwd=workdir
    )


def point(workdir: Path, clients: int) -> Path:
    return workdir / "results" / "t" / "bench" / "gemma3-270m" / f"c{clients}"


def assert_nothing_alive(workdir: Path, timeout: float = 0) -> None:
    pids = service_pids(workdir / "results")
    assert pids, "the run recorded no services"

    def none_alive():
        return not [p for p in pids if group_alive(p)]

    if timeout:
        wait_until(none_alive, timeout, "the services to stop")
    alive = [p for p in pids if group_alive(p)]
    assert not alive, f"service process groups still alive: {alive}"


def mtimes(workdir: Path) -> dict[str, int]:
    """Modification times of every point's files (bench/<deployment>/<load>/*.json*)."""
    bench = workdir / "results" / "t" / "bench"
    files = sorted(p for p in bench.glob("*/*/*.json*") if p.parent.name != "sessions")
    return {str(p.relative_to(bench)): p.stat().st_mtime_ns for p in files}


def deployment_log(workdir: Path, slug: str = "gemma3-270m") -> str:
    """What a deployment's job wrote to its log."""
    return (workdir / "results" / "t" / "logs" / "deployment" / f"{slug}.log").read_text()


def follow(client, point_id: str) -> tuple[list[dict], dict]:
    """Follow a client-service point (Flask test client) to its end through long polls;
    return (records, last view)."""
    records, offset = [], 0
    for _ in range(10000):
        view = client.get(f"/benchmark/{point_id}?offset={offset}&wait=10").get_json()
        records += view["records"]
        offset = view["next_offset"]
        if view["state"] != "running" and offset >= view["completed"]:
            return records, view
    raise AssertionError("point did not finish")


CHROMIUM_ARGS = [
    "--no-sandbox",
    "--disable-gpu",
    "--no-first-run",
    "--disable-background-networking",
    "--disable-component-update",
    "--disable-sync",
]


def chromium(playwright):
    """Debian's headless Chromium, driven by Playwright (no browser download)."""
    import shutil

    path = shutil.which("chromium")
    assert path, "Debian's chromium is not installed (bin/install --test)"
    return playwright.chromium.launch(executable_path=path, args=CHROMIUM_ARGS)


def collect_errors(page, errors: list) -> None:
    """Record the page's script errors and console errors into `errors`."""
    page.on("pageerror", lambda exc: errors.append(str(exc)))
    page.on("console", lambda m: errors.append(m.text) if m.type == "error" else None)


class WebServer:
    """`llmsweep web` in a subprocess: its URL (token included) from what it prints."""

    def __init__(self, workdir: Path, *extra: str, extra_env: dict | None = None):
        self.log = open(workdir / "web.log", "w+")  # noqa: SIM115
        self.proc = subprocess.Popen(
            [
                sys.executable,
                "-m",
                "llmsweep.cli",
                "web",
                "--port",
                "0",
                "--workdir",
                str(workdir),
                *extra,
            ],
            stdout=self.log,
            stderr=subprocess.STDOUT,
            env={**env(), **(extra_env or {})},
            cwd=workdir,
        )

        def url():
            self.log.seek(0)
            for line in self.log.read().splitlines():
                if line.startswith("llmsweep web: open "):
                    return line.removeprefix("llmsweep web: open ")
            assert self.proc.poll() is None, self.output()
            return None

        self.url = wait_until(url, 60, "llmsweep web to start")
        self.base, self.token = self.url.split("/?token=")

    def output(self) -> str:
        self.log.seek(0)
        return self.log.read()

    def stop(self) -> int:
        self.proc.terminate()
        return self.proc.wait(30)


def stop_launched_runs(workdir):
    """Runs outlive the web server by design; a test stops any it left running."""
    for info in (workdir / "results").glob("*/launch/driver.json"):
        driver = json.loads(info.read_text())
        if pid_alive(driver["pid"], driver.get("pid_start")):
            os.kill(driver["pid"], signal.SIGTERM)
            wait_until(lambda d=driver: not pid_alive(d["pid"]), 120, "the run to stop")


# -- the client service in-process ------------------------------------------------------------
TOKEN = "test-run-token"  # the run's token of client services made by client_app
AUTH = {"Authorization": f"Bearer {TOKEN}"}


class _AuthClient(FlaskClient):
    """A test client that sends the run's token, as the workflow does."""

    def __init__(self, *args, **kwargs):
        super().__init__(*args, **kwargs)
        self.environ_base["HTTP_AUTHORIZATION"] = AUTH["Authorization"]


def client_app(config: dict):
    """The client service's app with `config` and the token TOKEN; its test_client()
    sends the token (app.test_client_class = FlaskClient sends none)."""
    from llmsweep.client_service.app import create_app

    app = create_app({**config, "TOKEN": TOKEN})
    app.test_client_class = _AuthClient
    return app


def run_point(server, body: dict) -> tuple[list[dict], dict]:
    """One point request run by an in-process client service against `server` (a stub),
    followed to its end: its records and last view."""
    app = client_app({"UPSTREAM": server.url, "MODEL": "stub", "ENGINE": "openai", "RUN": "t"})
    c = app.test_client()
    r = c.post("/benchmark", json=body)
    assert r.status_code == 202, r.get_json()
    return follow(c, r.get_json()["id"])


@contextlib.contextmanager
def llama_server(parallel: int, slot_context: int = 128):
    """llama-server with the demo model on the CPU, on a free port of 127.0.0.1, with
    `parallel` slots of `slot_context` tokens each; yields its URL once it generates, and
    stops it (the one process started here, by its handle) whatever happens."""
    from llmsweep import config
    from llmsweep.engines import llama_cpp
    from llmsweep.models import DEMO_MODEL
    from llmsweep.util import free_port

    cfg = config.validate_schema(config.merged({"engine": "llama_cpp"}))  # fills defaults
    settings = cfg["engines"]["llama_cpp"]
    settings |= {"parallel": parallel, "ctx_size": parallel * slot_context, "gpu_layers": 0}
    port = free_port("127.0.0.1")
    argv, _ = llama_cpp.command(settings, DEMO_MODEL, cpus=1)
    argv = [a.format(host="127.0.0.1", port=port) for a in argv]
    url = f"http://127.0.0.1:{port}"
    server = subprocess.Popen(argv, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
    try:

        def ready() -> bool:
            assert server.poll() is None, f"llama-server exited with {server.returncode}"
            return llama_cpp.ready(url, DEMO_MODEL)

        wait_until(ready, 120, "llama-server")
        yield url
    finally:
        server.terminate()
        try:
            server.wait(30)
        except subprocess.TimeoutExpired:
            server.kill()
            server.wait(30)
