"""Live figures, the run's progress and ETA, the terminal view and `llmsweep status`, from
files and records made here (the real sweep is in test_live_e2e.py)."""

import io
import json
import os
import pty
import re
import select
import threading
import time

import pytest
from werkzeug.serving import make_server

from helpers import TOKEN, client_app
from llmsweep import cli
from llmsweep.benchmark import follow_point, start_point
from llmsweep.live import figures, progress, text
from llmsweep.live.figures import WINDOW_S, PointFigures, of_summary
from llmsweep.live.terminal import Terminal
from llmsweep.live.watch import LIVE_EVERY_S, PointWatch
from llmsweep.loadgen.stats import summarize
from llmsweep.loadgen.stub_server import StubServer
from llmsweep.paths import RunPaths
from llmsweep.util import read_json, write_json_atomic

T0 = 1_800_000_000.0


def rec(start, e2e=1.0, ttft=0.1, itl=(0.01, 0.02), tokens=3, ok=True, warmup=False, kind=None):
    return {
        "start": start,
        "e2e_s": e2e if ok else None,
        "ttft_s": ttft if ok else None,
        "itl_s": list(itl) if ok else [],
        "tpot_s": 0.01 if ok else None,
        "output_tokens": tokens if ok else 0,
        "output_tokens_source": "usage" if ok else None,
        "input_tokens": 5,
        "ok": ok,
        "error_kind": kind,
        "warmup": warmup,
    }


def test_live_figures_are_the_rates_so_far_and_the_latencies_of_the_last_window():
    fig = PointFigures(started_at=T0)
    fig.add([rec(T0, warmup=True, ttft=9.0)])  # warm-up: counted as done, in no figure
    fig.add([rec(T0 + 1 + i, ttft=0.5, itl=(0.5,)) for i in range(10)])  # ends T0+2..T0+11
    fig.add([rec(T0 + 20 + i, ttft=0.1, itl=(0.01, 0.03)) for i in range(4)])  # ends ..T0+24
    fig.add([rec(T0 + 21, ok=False, kind="http_500")])
    f = fig.figures(T0 + 25, total=20, in_flight=3)
    assert f["requests_done"] == 16 and f["measured"] == 15 and f["successful"] == 14
    assert f["errors"] == 1 and f["errors_by_kind"] == {"http_500": 1}
    assert f["requests_per_s"] == pytest.approx(14 / 24)  # since the first measured start
    assert f["output_tokens_per_s"] == pytest.approx(14 * 3 / 24)
    # The window is the last 10 s of completions (ends from T0+14): the four fast requests.
    assert f["window_requests"] == 4 and WINDOW_S == 10
    assert f["ttft_p50_s"] == pytest.approx(0.1) and f["itl_p50_s"] == pytest.approx(0.02)
    assert f["in_flight"] == 3 and f["elapsed_s"] == 25
    # 16 of 20 requests in 25 s: 4 more take 6.25 s.
    assert f["eta_s"] == pytest.approx(6.25) and f["time_left_s"] is None


def test_a_time_bound_point_counts_down_its_duration_capped_by_its_bound():
    fig = PointFigures(duration_s=60, warmup_s=5, max_s=50, started_at=T0)
    assert fig.figures(T0 + 1)["time_left_s"] == pytest.approx(64)  # warm-up first
    assert fig.figures(T0 + 1)["eta_s"] == pytest.approx(49)  # max_point_duration_s
    fig.add([rec(T0 + 4)])
    f = fig.figures(T0 + 10, total=10**6)
    assert f["time_left_s"] == pytest.approx(54) and f["eta_s"] == pytest.approx(40)
    assert PointFigures(started_at=T0).figures(T0 + 3)["eta_s"] is None  # nothing known


def test_finished_figures_come_from_the_summary():
    records = [rec(T0 + i) for i in range(4)] + [rec(T0, ok=False, kind="timeout")]
    summary = summarize(records)
    summary["point"] = {"started_at": T0 - 1, "finished_at": T0 + 9, "peak_in_flight": 2}
    f = of_summary(summary)
    assert f["requests"] == 5 and f["errors"] == 1 and f["errors_by_kind"] == {"timeout": 1}
    assert f["requests_per_s"] == summary["request_throughput_rps"]
    assert f["ttft_p99_s"] == summary["ttft_s"]["p99"] and f["duration_s"] == 10
    line = text.summary_line("m c4", f)
    assert line.startswith("m c4 done: 5 requests, 1 failed (timeout 1), in 10s: ")
    assert "TTFT p50 100 ms p99 100 ms, ITL p50 15 ms" in line


def test_text_formats():
    assert [text.duration(s) for s in (None, 4.4, 65, 7380)] == ["?", "4s", "1m05s", "2h03m"]
    assert [text.latency(s) for s in (None, 0.0042, 0.12, 1.5)] == [
        "-",
        "4.2 ms",
        "120 ms",
        "1.50 s",
    ]


def point_files(paths: RunPaths, slug: str, load: str, summary=None, live=None) -> None:
    if summary is not None:
        write_json_atomic(paths.summary(slug, load), summary)
    if live is not None:
        write_json_atomic(paths.live(slug, load), {**live, "deployment": slug, "load": load})


def a_summary(started: float, seconds: float) -> dict:
    s = summarize([rec(started + i * 0.1) for i in range(4)])
    s["point"] = {"started_at": started, "finished_at": started + seconds}
    return s


def a_live(state: str, updated: float, elapsed: float, eta: float | None, **more) -> dict:
    base = {"requests_done": 3, "requests_total": 8, "errors": 0}
    return base | {"state": state, "updated_at": updated, "elapsed_s": elapsed, "eta_s": eta} | more


@pytest.fixture()
def run(tmp_path):
    paths = RunPaths("t", tmp_path / "results")
    plan = {
        "run": "t",
        "started_at": T0,
        "driver": {"pid": os.getpid(), "pid_start": None, "host": os.uname().nodename},
        "deployments": {"m": "m", "n": "n"},
        "points": [
            {"deployment": d, "load": f"c{c}", "describe": f"with {c} clients"}
            for d in ("m", "n")
            for c in (1, 2, 4)
        ],
        "config": {"monitoring": {"scrape_interval_s": 1}},
    }
    write_json_atomic(paths.run_plan, plan)
    return paths


def test_the_run_picture_and_its_eta(run):
    now = T0 + 100
    point_files(run, "m", "c1", summary=a_summary(T0, 10))
    point_files(run, "m", "c2", summary=a_summary(T0 + 10, 30))
    point_files(run, "m", "c4", live=a_live("running", now - 1, 5, 15))
    point_files(run, "n", "c1", live=a_live("running", now - 2, 12, 8))
    point_files(run, "n", "c2", live=a_live("failed", now - 30, 3, None, error="boom"))
    pic = progress.picture(run, now)
    states = {(p["deployment"], p["load"]): p["state"] for p in pic["points"]}
    assert states == {
        ("m", "c1"): "done",
        ("m", "c2"): "done",
        ("m", "c4"): "running",
        ("n", "c1"): "running",
        ("n", "c2"): "failed",
        ("n", "c4"): "pending",
    }
    assert pic["state"] == "running" and pic["done"] == 2 and pic["total"] == 6
    # Running: 15 + 8 s left; failed and pending: 2 x the mean of 10 and 30 s; two at once.
    assert pic["mean_point_s"] == 20
    assert pic["eta_s"] == pytest.approx((15 + 8 + 2 * 20) / 2)
    lines = text.status_lines(pic, [{"key": "llm_server.m", "state": "RUNNING", "pid": 7}])
    assert lines[1] == "sweep t: 2/6 points done, 2 running, 1 failed, ETA 32s"
    assert "running:" in lines and "to run:" in lines and "  n c2 failed: boom" in lines
    assert "  llm_server.m: RUNNING, pid 7" in lines


def test_a_point_whose_job_went_silent_is_cut_off_and_a_dead_driver_stopped_the_run(run):
    now = T0 + 500
    plan = read_json(run.run_plan)
    plan["driver"]["pid"] = 2**22 + 12345  # no such process
    write_json_atomic(run.run_plan, plan)
    point_files(run, "m", "c1", live=a_live("running", now - progress.STALE_S - 1, 5, 5))
    pic = progress.picture(run, now)
    assert pic["state"] == "stopped" and pic["eta_s"] is None
    assert [p["state"] for p in pic["failed"]] == ["stalled"]
    assert "m c1: cut off at 3/8 requests" in text.point_line(pic["failed"][0])


def test_a_driver_on_another_host_is_judged_by_its_heartbeat(run):
    plan = read_json(run.run_plan)
    plan["driver"]["host"] = "batch-node-7"
    write_json_atomic(run.run_plan, plan)
    assert progress.picture(run)["state"] == "unknown"  # no heartbeat at all
    run.driver_heartbeat.parent.mkdir(parents=True, exist_ok=True)
    run.driver_heartbeat.touch()
    assert progress.picture(run)["state"] == "running"
    old = time.time() - 120
    os.utime(run.driver_heartbeat, (old, old))
    assert progress.picture(run)["state"] == "stopped"


def test_a_run_without_a_plan_is_read_from_its_point_folders(tmp_path):
    paths = RunPaths("old", tmp_path)
    point_files(paths, "m", "c1", summary=a_summary(T0, 5))
    paths.report_page.parent.mkdir(parents=True)
    paths.report_page.write_text("<html>")
    pic = progress.picture(paths, T0 + 10)
    assert (pic["state"], pic["done"], pic["total"], pic["eta_s"]) == ("finished", 1, 1, None)


def test_status_command_prints_the_picture_and_its_json(run, capsys):
    point_files(run, "m", "c1", summary=a_summary(T0, 10))
    results = str(run.root.parent)
    assert cli.main(["status", "t", "--results", results]) == 0
    out = capsys.readouterr().out
    assert out.startswith(f"run t: running (driver pid {os.getpid()} on ")
    assert "sweep t: 1/6 points done, ETA" in out and "  m c1 done: 4 requests" in out
    assert cli.main(["--results", results, "status", "t", "--json"]) == 0
    pic = json.loads(capsys.readouterr().out)
    assert pic["done"] == 1 and pic["services"] == []
    assert cli.main(["status", "nope", "--results", results]) == 2


# -- the terminal view ------------------------------------------------------------------------
LIVE = {
    "deployment": "m",
    "load": "c4",
    "requests_done": 3,
    "requests_total": 8,
    "requests_per_s": 1.5,
    "output_tokens_per_s": 40.0,
    "ttft_p50_s": 0.12,
    "itl_p50_s": 0.02,
    "errors": 0,
    "in_flight": 4,
    "eta_s": 7,
}


def test_without_a_tty_lines_are_plain_at_most_one_per_interval_per_point():
    out = io.StringIO()
    term = Terminal(out, plain_every_s=5)
    for i in range(20):  # every half second, two points side by side
        term.show({**LIVE, "requests_done": i}, now=i * 0.5)
        term.show({**LIVE, "deployment": "n", "requests_done": i}, now=i * 0.5)
    term.ended("m c4 done: 8 requests")
    lines = out.getvalue().splitlines()
    assert len(lines) == 5 and "\x1b" not in out.getvalue()
    pattern = r"llmsweep: \d\d:\d\d:\d\d (m|n) c4: (\d+)/8 requests, 1.50 req/s, 40.0 tok/s, "
    pattern += r"TTFT p50 120 ms, ITL p50 20 ms, 0 errors, 4 in flight, ETA 7s$"
    shown = [re.match(pattern, line).groups() for line in lines[:4]]
    assert shown == [("m", "0"), ("n", "0"), ("m", "10"), ("n", "10")]
    assert lines[4].endswith(" m c4 done: 8 requests")


def test_on_a_tty_the_line_is_redrawn_in_place_and_the_summary_stays():
    master, slave = pty.openpty()
    out = os.fdopen(slave, "w")
    term = Terminal(out)
    assert term.tty
    term.show(LIVE)
    term.show({**LIVE, "requests_done": 5})
    term.ended("m c4 done: 8 requests")
    out.flush()
    data = b""
    while select.select([master], [], [], 0.2)[0]:
        data += os.read(master, 65536)
    out.close()
    os.close(master)
    screen = data.decode()
    assert "m c4: 3/8 requests" in screen and "m c4: 5/8 requests" in screen
    assert "\x1b[2K" in screen  # the line erased before it is redrawn (rich's Live)
    assert screen.rstrip().endswith("llmsweep: m c4 done: 8 requests")


def test_on_a_tty_shared_with_another_deployment_s_job_lines_are_plain():
    master, slave = pty.openpty()
    out = os.fdopen(slave, "w")
    term = Terminal(out, plain_every_s=5)
    run = {"run": "t", "done": 0, "total": 4, "failed": [], "eta_s": 9}
    run["running"] = [{"deployment": "m"}, {"deployment": "n"}]
    term.show(LIVE, run, now=0)
    term.show({**LIVE, "requests_done": 4}, run, now=1)  # within 5 s: not shown
    term.show({**LIVE, "requests_done": 5}, run, now=6)
    out.flush()
    data = b""
    while select.select([master], [], [], 0.2)[0]:
        data += os.read(master, 65536)
    out.close()
    os.close(master)
    lines = data.decode().replace("\r\n", "\n").splitlines()
    assert [re.sub(r"\d\d:\d\d:\d\d", "T", line)[:42] for line in lines] == [
        "llmsweep: T m c4: 3/8 requests, 1.50 req/s",
        "llmsweep: T m c4: 5/8 requests, 1.50 req/s",
    ]
    assert lines[0].endswith("| sweep t: 0/4 points done, 2 running, ETA 9s")


# -- a point followed through a real client service ------------------------------------------
class Clock:
    def __init__(self):
        self.t = T0

    def __call__(self):
        return self.t


def test_the_watch_writes_live_json_every_few_seconds_and_its_end(tmp_path):
    paths = RunPaths("t", tmp_path)
    point = {"deployment": "m", "load": "c2", "pattern": "closed", "clients": 2, "repeat": 0}
    clock = Clock()
    out = io.StringIO()
    watch = PointWatch(paths, point, {"sweep": {}, "warmup": {}}, Terminal(out), clock)
    assert read_json(paths.live("m", "c2"))["state"] == "starting"
    watch.begin()
    writes = []
    for i in range(10):
        clock.t = T0 + i * 0.5
        watch.update({"records": [rec(clock.t)], "total": 10, "in_flight": 2})
        writes.append(read_json(paths.live("m", "c2"))["updated_at"])
    assert sorted(set(writes)) == [T0, T0 + LIVE_EVERY_S, T0 + 2 * LIVE_EVERY_S]
    live = read_json(paths.live("m", "c2"))
    assert live["state"] == "running" and live["describe"] == "with 2 clients"
    summary = a_summary(T0, 5)
    watch.finished(summary)
    live = read_json(paths.live("m", "c2"))
    assert live["state"] == "done" and live["requests_done"] == 10 and live["in_flight"] == 0
    assert (
        out.getvalue()
        .splitlines()[-1]
        .endswith(text.summary_line("m c2", figures.of_summary(summary)))
    )


def test_follow_point_feeds_the_watch_from_a_real_client_service(tmp_path):
    with StubServer(gap_s=0.02) as stub:
        app = client_app({"UPSTREAM": stub.url, "MODEL": "stub", "ENGINE": "openai", "RUN": "t"})
        server = make_server("127.0.0.1", 0, app, threaded=True)
        threading.Thread(target=server.serve_forever, daemon=True).start()
        base = f"http://127.0.0.1:{server.server_port}"
        try:
            request = {
                "sweep": {"clients": 2, "requests_per_client": 20},
                "workload": {"prompt": "x", "max_tokens": 5},
            }
            secret_file = tmp_path / "secret"
            secret_file.write_text(TOKEN)
            client = {"url": base, "auth": "bearer", "secret_file": str(secret_file)}
            point_id = start_point(client, request)
            paths = RunPaths("t", tmp_path)
            point = {"deployment": "m", "load": "c2", "pattern": "closed", "clients": 2}
            point["repeat"] = 0
            out = io.StringIO()
            watch = PointWatch(paths, point, {"sweep": {}, "warmup": {}}, Terminal(out, 0.5))
            watch.begin()
            view = follow_point(client, point_id, paths.requests("m", "c2"), point, [], watch)
        finally:
            server.shutdown()
    assert view["state"] == "done" and view["in_flight"] == 0 and view["completed"] == 40
    assert watch.figures.done == 40 and watch.figures.successful == 40
    assert "m c2: " in out.getvalue()  # at least one plain line while it ran (2 s polls)


# -- the run page's drawing, with canned answers ---------------------------------------------
def canned_progress() -> dict:
    running = {
        "deployment": "m",
        "load": "c4",
        "describe": "with 4 clients",
        "state": "running",
        "live": {**LIVE, "elapsed_s": 3, "time_left_s": None},
    }
    done = {
        "deployment": "m",
        "load": "c1",
        "describe": "with 1 clients",
        "state": "done",
        "summary": of_summary(a_summary(T0, 65)),
    }
    pic = {
        "run": "x",
        "state": "running",
        "total": 3,
        "done": 1,
        "running": [running],
        "failed": [],
        "points": [done, running],
        "eta_s": 125,
    }
    return {
        "run": "x",
        "state": "running",
        "total": 3,
        "done": 1,
        "percent": 33,
        "current": "m c4",
        "report": False,
        "returncode": None,
        "log_tail": "",
        "live": pic,
        "launched": False,
    }


CHARTS = {
    "available": True,
    "start": T0,
    "end": T0 + 100,
    "step": 10,
    "interval": "14s",
    "prometheus": "http://127.0.0.1:9",
    "charts": [
        {
            "id": "ttft",
            "title": "time to first token",
            "unit": "s",
            "series": [
                {  # a gap, then a point alone
                    "name": "p50",
                    "points": [[T0, 0.5], [T0 + 10, 1.0], [T0 + 20, None], [T0 + 30, 2.0]],
                },
                {"name": "p99", "points": [[T0, 1.0], [T0 + 100, 4.0]]},
            ],
        },
        {"id": "errors", "title": "errors/s", "unit": "errors/s", "series": []},
    ],
}


def test_the_run_page_draws_live_figures_and_charts(tmp_path, artifacts):
    from playwright.sync_api import expect, sync_playwright

    from helpers import WebServer, chromium, collect_errors

    server = WebServer(tmp_path)
    answers = {
        "progress": canned_progress(),
        "queue": {"slurm": False, "jobs": [], "note": "no SLURM here"},
        "monitoring": {"grafana": None, "prometheus": None, "tunnel": False},
        "files": {"path": "", "entries": []},
        "charts": CHARTS,
    }
    errors: list[str] = []
    try:
        with sync_playwright() as p:
            browser = chromium(p)
            page = browser.new_page(viewport={"width": 1280, "height": 900})
            collect_errors(page, errors)

            def answer(route):
                what = route.request.url.split("/api/runs/x/")[1].split("?")[0]
                route.fulfill(json=answers[what])

            page.route("**/api/runs/x/*", answer)
            page.goto(f"{server.base}/runs/x?token={server.token}")
            row = page.locator("#running-points tr[data-point='m c4'] td")
            expect(row).to_have_text(
                ["m c4 (with 4 clients)", "3/8", "1.50", "40.0", "120 ms", "20 ms"]
                + ["0", "4", "7s"]
            )
            done = page.locator("#finished-points tr[data-point='m c1'] td")
            expect(done.nth(0)).to_have_text("m c1")
            expect(done.nth(8)).to_have_text("1m05s")
            expect(page.locator("#sweep-line")).to_have_text(
                "1 of 3 points done, 1 running, sweep ETA 2m05s"
            )
            expect(page.locator("#stop-run")).to_be_hidden()  # not launched from here
            paths = page.locator("figure[data-chart=ttft] path.series")
            expect(paths).to_have_count(2)
            p50 = paths.nth(0).get_attribute("d")
            # x: 40 + t/100 * 292; y: 8 + (1 - v/4) * 104; the gap starts a new line and the
            # point alone is drawn as a dot (a line to itself).
            assert p50 == "M40.0 99.0 L69.2 86.0 M127.6 60.0 L127.6 60.0", p50
            assert paths.nth(1).get_attribute("d") == "M40.0 86.0 L332.0 8.0"
            assert json.loads(paths.nth(0).get_attribute("data-values"))[2] == [T0 + 20, None]
            labels = page.locator("figure[data-chart=ttft] svg text").all_text_contents()
            assert labels[:2] == ["4.0", "0"]
            expect(page.locator("figure[data-chart=errors] .legend")).to_have_text("no data yet")
            page.screenshot(path=str(artifacts / "live-web-canned.png"), full_page=True)
            # Without Prometheus the charts drawn stay and the page says why.
            answers["charts"] = {"available": False, "note": "the run's Prometheus is not running"}
            page.evaluate("charts()")
            expect(page.locator("#charts-note")).to_contain_text("Prometheus is not running")
            expect(page.locator("#charts figure.chart")).to_have_count(2)
            browser.close()
    finally:
        server.stop()
    assert not errors, errors


def test_the_log_says_while_a_point_s_server_is_silent(tmp_path, monkeypatch, capsys):
    """The client service's view carries a warning while the server sends nothing; the
    point's log line shows it, then the point goes on."""
    import llmsweep.benchmark as benchmark

    warning = "the LLM server has sent nothing for 61 s while 2 requests wait"
    views = iter(
        [
            {
                "records": [],
                "next_offset": 0,
                "completed": 0,
                "total": 2,
                "state": "running",
                "warning": warning,
            },
            {
                "records": [{"ok": True}, {"ok": True}],
                "next_offset": 2,
                "completed": 2,
                "total": 2,
                "state": "done",
                "warning": None,
            },
        ]
    )
    monkeypatch.setattr(benchmark, "http_json", lambda url, timeout, headers: (200, next(views)))
    point = {"deployment": "d", "load": "c2"}
    view = follow_point({"url": "http://unused"}, "p1", tmp_path / "requests.jsonl", point, [])
    assert view["state"] == "done"
    lines = capsys.readouterr().err.splitlines()
    assert lines[0] == f"d c2: 0/2 requests; WARNING: {warning}"
    assert lines[-1] == "d c2: 2/2 requests"
