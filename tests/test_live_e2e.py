"""Watching real sweeps (llama-server, the demo model): the deployment job's live line in a
real terminal (tmux), its plain lines without one, `llmsweep status` on a running and a
finished run, and the web front end's run page in headless Chromium, its charts checked
against the run's Prometheus asked directly at the same time. Screenshots and the terminal
captures go to tests/artifacts/."""

import json
import os
import re
import shlex
import subprocess
import sys
import threading
import time
import urllib.parse
import urllib.request
from pathlib import Path

import pytest

from conftest import ROOT
from helpers import (
    WebServer,
    chromium,
    collect_errors,
    env,
    stop_launched_runs,
    write_config,
)
from llmsweep import secret
from llmsweep.live import figures, text
from llmsweep.live.terminal import PLAIN_EVERY_S
from llmsweep.metrics import queries
from llmsweep.paths import RunPaths
from llmsweep.util import http_json, read_json, wait_until
from workflow_cmd import snakemake_cmd

# A sweep takes a minute or two here; more while other test runs share the 2 cores.
pytestmark = [pytest.mark.e2e, pytest.mark.timeout(1800)]

# Points of about ten seconds each (more while other test runs share the cores): live.json
# and the live line are rewritten every 2 s, so a point is seen running several times.
SWEEP = {"clients": [1, 2], "requests_per_client": 8}
WORKLOAD = {"max_tokens": 32}
POINTS = ("c1", "c2")
SLUG = "gemma3-270m"
# The start of a live line (a narrow terminal cuts the rest).
LIVE = re.compile(
    rf"llmsweep: (?:\d\d:\d\d:\d\d )?{SLUG} (c\d+): (\d+)/(\d+) requests, (\S+) req/s, "
    r"(\S+) tok/s"
)
DONE = re.compile(
    rf"llmsweep: (?:\d\d:\d\d:\d\d )?({SLUG} (c\d+) done: (\d+) requests, (\d+) failed.*"
    r", in \S+: (\S+) req/s, (\S+) tok/s, .*)$"
)


def summary_of(workdir: Path, load: str, run: str = "t") -> dict:
    return read_json(RunPaths(run, workdir / "results").summary(SLUG, load))


def expected_summary_line(workdir: Path, load: str, run: str = "t") -> str:
    summary = summary_of(workdir, load, run)
    return text.summary_line(f"{SLUG} {load}", figures.of_summary(summary))


def check_summary_lines(workdir: Path, output: str) -> None:
    """One summary line per point: the figures of its summary.json."""
    found = {m.group(2): m for m in map(DONE.search, output.splitlines()) if m}
    assert sorted(found) == list(POINTS), output[-3000:]
    for load, m in found.items():
        summary = summary_of(workdir, load)
        assert m.group(1) == expected_summary_line(workdir, load)
        assert (
            int(m.group(3)) == summary["requests"] == SWEEP["requests_per_client"] * int(load[1:])
        )
        assert int(m.group(4)) == summary["failed"] == 0
        assert float(m.group(5)) == pytest.approx(summary["request_throughput_rps"], abs=0.006)
        assert float(m.group(6)) == pytest.approx(summary["output_token_throughput_tps"], abs=0.06)


# -- a real terminal --------------------------------------------------------------------------
class Tmux:
    """A tmux session of our own (ended by its name) running one command."""

    def __init__(self, name: str, script: Path):
        self.name = name
        cmd = ["tmux", "new-session", "-d", "-s", name, "-x", "250", "-y", "50"]
        subprocess.run([*cmd, f"bash {shlex.quote(str(script))}"], check=True, timeout=30)

    def capture(self, history: bool = False) -> str:
        cmd = ["tmux", "capture-pane", "-p", "-J", "-t", self.name]
        if history:
            cmd += ["-S", "-"]
        return subprocess.run(cmd, capture_output=True, text=True, timeout=30).stdout

    def kill(self) -> None:
        subprocess.run(["tmux", "kill-session", "-t", self.name], timeout=30)


def test_the_terminal_shows_a_live_line_that_moves_and_a_summary_per_point(tmp_path, artifacts):
    write_config(tmp_path, sweep=SWEEP, workload=WORKLOAD)
    script = tmp_path / "sweep.sh"
    exports = " ".join(f"{k}={shlex.quote(v)}" for k, v in env().items() if k in ("PATH",))
    exports += f" PYTHONPATH={shlex.quote(str(ROOT / 'src'))}"
    script.write_text(
        f"cd {shlex.quote(str(tmp_path))}\n"
        # The pane's own size, not the one of the terminal pytest may have run in.
        "unset COLUMNS LINES\n"
        f"export {exports}\n"
        f"{shlex.join(snakemake_cmd(tmp_path))}\n"
        'echo "LLMSWEEP-EXIT $?"\n'
        "sleep 3600\n"
    )
    tmux = Tmux(f"llmsweep-live-test-{os.getpid()}", script)
    try:
        seen: dict[str, list[tuple[int, str]]] = {}
        moving = None
        deadline = time.monotonic() + 600
        while time.monotonic() < deadline:
            screen = tmux.capture()
            if "LLMSWEEP-EXIT" in screen:
                break
            lines = [m for m in map(LIVE.search, screen.splitlines()) if m]
            if lines:
                m = lines[-1]
                load, done = m.group(1), int(m.group(2))
                live = read_json(RunPaths("t", tmp_path / "results").live(SLUG, load))
                assert live["state"] == "running" or live["requests_done"] >= done
                seen.setdefault(load, []).append((done, m.group(0)))
                if moving is None and len({d for d, _ in seen[load]}) >= 2:
                    moving = (load, screen)
            time.sleep(0.5)
        wait_until(lambda: "LLMSWEEP-EXIT" in tmux.capture(), 600, "the sweep in tmux")
        history = tmux.capture(history=True)
    finally:
        tmux.kill()
    (artifacts / "live-terminal-history.txt").write_text(history)
    assert "LLMSWEEP-EXIT 0" in history, history[-3000:]
    assert moving, f"no point seen running with moving figures: {seen}"
    (artifacts / "live-terminal-running.txt").write_text(moving[1])
    load, _ = moving
    counts = [d for d, _ in seen[load]]
    assert counts == sorted(counts) and counts[-1] > counts[0]
    check_summary_lines(tmp_path, history)
    # The live line was redrawn in place and removed when its point ended: it is not left
    # in the terminal's history once per refresh.
    left = [line for line in history.splitlines() if LIVE.search(line)]
    assert len(left) <= 2 * len(POINTS), left


# -- no terminal: plain lines, and `llmsweep status` -----------------------------------------
def status(workdir: Path, run: str = "t") -> str:
    proc = subprocess.run(
        [sys.executable, "-m", "llmsweep.cli", "status", run, "--results", "results"],
        capture_output=True,
        text=True,
        timeout=120,
        env=env(),
        cwd=workdir,
    )
    assert proc.returncode == 0, proc.stdout + proc.stderr
    return proc.stdout


def test_without_a_terminal_plain_lines_and_status_on_a_running_then_finished_run(tmp_path):
    write_config(tmp_path, sweep=SWEEP, workload=WORKLOAD)
    paths = RunPaths("t", tmp_path / "results")
    proc = subprocess.Popen(
        snakemake_cmd(tmp_path),
        stdout=subprocess.PIPE,
        stderr=open(tmp_path / "driver.err", "w"),  # noqa: SIM115
        text=True,
        env=env(),
        cwd=tmp_path,
    )
    out: list[str] = []
    reader = threading.Thread(target=lambda: out.extend(proc.stdout), daemon=True)
    reader.start()
    try:

        def first_point_going():
            if proc.poll() is not None:
                raise AssertionError(f"the sweep ended (exit {proc.returncode}) first")
            live = paths.live(SLUG, "c1")
            if not live.exists():
                return None
            data = read_json(live)
            total = data["requests_total"] or 0
            return data["state"] == "running" and 1 <= data["requests_done"] < total - 1

        wait_until(first_point_going, 600, "the first point to be under way", max_delay=0.3)
        running = status(tmp_path)
    finally:
        rc = proc.wait(900)
        reader.join(30)
    output = "".join(out)
    assert rc == 0, output[-3000:] + (tmp_path / "driver.err").read_text()[-3000:]

    lines = running.splitlines()
    assert lines[0].startswith("run t: running (driver pid "), running
    assert re.match(r"sweep t: 0/2 points done, 1 running, ETA \S+$", lines[1]), running
    at = lines.index("running:")
    per_client = SWEEP["requests_per_client"]
    assert re.match(
        rf"  {SLUG} c1: \d+/{per_client} requests, .* \(since \d\d:\d\d:\d\d\)$", lines[at + 1]
    )
    assert lines[lines.index("to run:") + 1] == f"  {SLUG} c2 with 2 clients"
    assert re.search(rf"  llm_server\.{SLUG}: RUNNING, pid \d+, http://127\.0\.0\.1:\d+", running)

    assert "\x1b" not in output  # no escape codes without a terminal
    check_summary_lines(tmp_path, output)
    plain = [m for m in map(LIVE.search, output.splitlines()) if m]
    assert plain, output
    for load in POINTS:
        stamps = [
            time.strptime(m.group(0).split()[1], "%H:%M:%S") for m in plain if m.group(1) == load
        ]
        seconds = [s.tm_hour * 3600 + s.tm_min * 60 + s.tm_sec for s in stamps]
        gaps = [b - a for a, b in zip(seconds, seconds[1:], strict=False)]
        # At most one line per PLAIN_EVERY_S per point (the stamps have whole seconds).
        assert all(g >= PLAIN_EVERY_S - 1 for g in gaps), (load, seconds)

    finished = status(tmp_path)
    lines = finished.splitlines()
    assert lines[0].startswith("run t: finished (driver pid "), finished
    assert lines[1] == "sweep t: 2/2 points done"
    done = lines[lines.index("done:") + 1 : lines.index("done:") + 3]
    assert done == [f"  {expected_summary_line(tmp_path, load)}" for load in POINTS]
    assert "running:" not in lines and "to run:" not in lines
    assert f"report: {RunPaths('t', 'results').report_page}" in lines  # as --results gave it


# -- the run page -----------------------------------------------------------------------------
FAKE_NVML = ROOT / "tests" / "fakes" / "nvml"


def expected_queries(run: str, interval: str) -> dict:
    """What each chart's series must be, built here from llmsweep.metrics.queries."""
    sel = f'run="{run}"'
    gpu = f'{sel}, role="llm_server", exporter="gpu"'
    return {
        "output_tokens": {"output tokens/s": queries.output_tokens_per_s(sel, (), interval)},
        "ttft": {
            "p50": queries.latency_quantile(0.5, "ttft", sel, (), interval),
            "p99": queries.latency_quantile(0.99, "ttft", sel, (), interval),
        },
        "in_flight": {"in flight": queries.in_flight(sel, ())},
        "errors": {"errors/s": queries.errors_per_s(sel, (), interval)},
        "gpu_util": {"GPU": queries.gpu_field("GPU_UTIL", gpu)},
        "gpu_memory": {"GPU": queries.gpu_field("FB_USED", gpu)},
    }


def drawn_charts(page) -> tuple[dict, dict]:
    """The range the page's charts were asked for, and every drawn series' data."""
    return page.evaluate(
        """() => {
        const box = document.getElementById("charts");
        const out = {};
        for (const fig of box.querySelectorAll("figure.chart")) {
          out[fig.dataset.chart] = Array.from(fig.querySelectorAll("path.series")).map(
            (p) => ({name: p.dataset.series, points: JSON.parse(p.dataset.values),
                     d: p.getAttribute("d")}));
        }
        return [JSON.parse(box.dataset.range), out];
      }"""
    )


def prometheus_series(url: str, query: str, rng: dict, headers: dict) -> list[dict]:
    params = urllib.parse.urlencode({"query": query, **rng})
    status, body = http_json(f"{url}/api/v1/query_range?{params}", timeout=30, headers=headers)
    assert status == 200 and body["status"] == "success", body
    return body["data"]["result"]


def series_name(prefix: str, chart: str, labels: dict) -> str:
    """A series' name on the page: one per GPU names its node and GPU."""
    if chart.startswith("gpu"):
        return " ".join([prefix, labels.get("node", ""), labels.get("gpu", "")])
    return prefix


def check_charts_against_prometheus(
    prometheus: str, run: str, rng: dict, drawn: dict, headers: dict
) -> int:
    """Every drawn series is what Prometheus answers to the same query over the same range,
    but for its last steps (their samples may still have been arriving); returns the number
    of values compared."""
    wanted = expected_queries(run, rng["interval"])
    settled = rng["end"] - 3 * max(rng["step"], 1)
    compared = 0
    for chart, series in drawn.items():
        for s in series:
            prefix = next(n for n in wanted[chart] if s["name"].startswith(n))
            rows = prometheus_series(
                prometheus,
                wanted[chart][prefix],
                {k: rng[k] for k in ("start", "end", "step")},
                headers,
            )
            named = {series_name(prefix, chart, r["metric"]): r for r in rows}
            assert s["name"] in named, (chart, s["name"], list(named))
            direct = {t: float(v) for t, v in named[s["name"]]["values"]}
            for t, v in s["points"]:
                if t > settled:
                    continue
                assert t in direct, (chart, s["name"], t)
                if v is None:
                    assert direct[t] != direct[t] or abs(direct[t]) == float("inf")  # NaN
                else:
                    assert v == pytest.approx(direct[t], rel=1e-9), (chart, s["name"], t)
                    compared += 1
            assert s["d"].startswith("M") or not any(v is not None for _, v in s["points"])
    return compared


@pytest.fixture()
def web(tmp_path):
    # The GPU exporter reads a simulated NVML (one GPU): the GPU charts appear; llama-server
    # runs on the CPU all the same (gpu_layers 0).
    pythonpath = f"{FAKE_NVML}:{ROOT / 'src'}"
    server = WebServer(tmp_path, extra_env={"PYTHONPATH": pythonpath})
    yield server, tmp_path
    server.stop()
    stop_launched_runs(tmp_path)


def test_the_run_page_shows_live_figures_and_charts_that_agree_with_prometheus(web, artifacts):
    from playwright.sync_api import expect, sync_playwright

    server, workdir = web
    config = {
        "run": "liveweb",
        "sweep": SWEEP,
        "workload": WORKLOAD,
        "engines": {"llama_cpp": {"parallel": 2, "ctx_size": 1024, "gpu_layers": 0}},
        "services": {"ready_timeout_s": 120},
        "monitoring": {"scrape_interval_s": 1},
    }
    req = urllib.request.Request(
        f"{server.base}/api/runs",
        data=json.dumps({"config": config}).encode(),
        headers={"Authorization": f"Bearer {server.token}", "Content-Type": "application/json"},
        method="POST",
    )
    with urllib.request.urlopen(req, timeout=120) as resp:
        assert resp.status == 201
    paths = RunPaths("liveweb", workdir / "results")
    errors: list[str] = []
    with sync_playwright() as p:
        browser = chromium(p)
        page = browser.new_page(viewport={"width": 1280, "height": 1100})
        collect_errors(page, errors)
        page.goto(f"{server.base}/runs/liveweb?token={server.token}")
        # A running point's live figures, as its live.json has them.
        row = page.locator("#running-points tbody tr")
        expect(row.first).to_be_visible(timeout=600_000)
        name = row.first.get_attribute("data-point")
        assert name in {f"{SLUG} {load}" for load in POINTS}
        live = read_json(paths.live(SLUG, name.split()[1]))
        assert live["state"] in ("starting", "running", "done")
        expect(page.locator("#sweep-line")).to_contain_text("of 2 points done")
        # Charts with data while the run goes; then compared with Prometheus asked directly.
        ready = (
            "() => { const p = document.querySelector("
            "'#charts figure[data-chart=output_tokens] path.series');"
            " return p && JSON.parse(p.dataset.values).filter(([, v]) => v > 0).length >= 3; }"
        )
        page.wait_for_function(ready, timeout=600_000, polling=1000)
        rng, drawn = drawn_charts(page)
        prometheus = read_json(paths.service_dir("prometheus") / "endpoint.json")["url"]
        compared = check_charts_against_prometheus(
            prometheus, "liveweb", rng, drawn, secret.basic(secret.read(paths.secret))
        )
        assert compared >= 3
        assert {"output_tokens", "ttft", "in_flight", "errors"} <= set(drawn)
        # The simulated GPU is reported by the exporter: its charts are drawn.
        assert {"gpu_util", "gpu_memory"} <= set(drawn), list(drawn)
        assert drawn["gpu_util"] and drawn["gpu_util"][0]["name"].startswith("GPU ")
        page.screenshot(path=str(artifacts / "live-web-running.png"), full_page=True)
        # The end: every point's summary figures, and the report linked.
        ended = re.compile(r"^(finished|failed|stopped|error)")
        expect(page.locator("#state")).to_have_text(ended, timeout=600_000)
        expect(page.locator("#state")).to_have_text("finished")
        expect(page.locator("#finished-points tbody tr")).to_have_count(len(POINTS))
        for load in POINTS:
            summary = summary_of(workdir, load, "liveweb")
            cells = page.locator(f"#finished-points tr[data-point='{SLUG} {load}'] td")
            expect(cells.nth(1)).to_have_text(str(summary["requests"]))
            expect(cells.nth(2)).to_have_text(str(summary["failed"]))
            expect(cells.nth(3)).to_have_text(f"{summary['request_throughput_rps']:.2f}")
            expect(cells.nth(5)).to_have_text(text.latency(summary["ttft_s"]["p50"]))
        expect(page.locator("#running-points tbody tr")).to_have_count(0)
        expect(page.locator("#report-link")).to_be_visible()
        # The charts of the run stay, the GPU's too (its exporter stopped with the server).
        assert page.locator("#charts figure.chart").count() == 6
        page.screenshot(path=str(artifacts / "live-web-finished.png"), full_page=True)
        browser.close()
    assert not errors, errors
