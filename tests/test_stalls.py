"""Stalls: a server that sends nothing at all while requests wait is flagged (and can cut
the point short); a busy one, which streams to some requests while others queue, is not."""

import time

from helpers import client_app, follow
from llmsweep.loadgen.stalls import NOT_STALLED, Silence
from llmsweep.loadgen.stats import summarize
from llmsweep.loadgen.stub_server import StubServer
from llmsweep.report.table import row
from llmsweep.util import wait_until


class Clock:
    """A clock the test moves."""

    def __init__(self):
        self.t = 0.0

    def __call__(self) -> float:
        return self.t


def test_a_request_that_waited_through_a_silence_is_stalled_with_its_wait():
    clock = Clock()
    silence = Silence(10, clock)
    hung = silence.wait()  # sent at 0
    clock.t = 1
    hung.heard()  # its headers
    clock.t = 15
    assert silence.silent_now() == 14
    late = silence.wait()  # sent while the server was silent
    clock.t = 16
    hung.heard()  # the server speaks again
    clock.t = 17
    late.heard()
    assert hung.end() == {"stalled": True, "stall_gap_s": 15}
    assert late.end() == NOT_STALLED  # it waited 2 s, 1 of them in the silence
    assert silence.silent_now() == 0  # nothing waits


def test_requests_waiting_in_a_busy_servers_queue_are_not_stalled():
    clock = Clock()
    silence = Silence(10, clock)
    queued = silence.wait()
    served = silence.wait()
    for t in range(1, 31):  # 30 s in the queue, while the server streams to another
        clock.t = t
        served.heard()
    assert silence.silent_now() == 0
    queued.heard()
    assert queued.end() == NOT_STALLED and served.end() == NOT_STALLED


def test_a_silence_while_nothing_waits_is_no_stall():
    clock = Clock()
    silence = Silence(10, clock)
    clock.t = 100  # an open loop between two arrivals
    assert silence.silent_now() == 0
    request = silence.wait()
    clock.t = 101
    request.heard()
    assert request.end() == NOT_STALLED


def test_a_request_cut_off_during_a_silence_is_stalled():
    clock = Clock()
    silence = Silence(10, clock)
    request = silence.wait()
    clock.t = 12
    assert request.end() == {"stalled": True, "stall_gap_s": 12}


def point(stub, body: dict) -> tuple:
    app = client_app({"UPSTREAM": stub.url, "MODEL": "stub", "ENGINE": "openai", "RUN": "t"})
    c = app.test_client()
    r = c.post("/benchmark", json=body)
    assert r.status_code == 202, r.get_json()
    return c, r.get_json()["id"]


def running(c, point_id: str) -> None:
    """Wait until the point has requests done (its workers are up)."""
    done = lambda: c.get(f"/benchmark/{point_id}?limit=1").get_json()["completed"]  # noqa: E731
    wait_until(lambda: done() >= 2, 60, "the first requests")


def closed(clients: int, requests: int, **client) -> dict:
    return {
        "sweep": {"clients": clients, "requests_per_client": requests},
        "workload": {"prompt": "x", "max_tokens": 4},
        "client": client,
    }


def test_a_hung_server_is_shown_while_it_hangs_and_its_requests_are_marked():
    """The finding: a server stopped for a while gave no sign, and its 60 s TTFTs were
    kept as ordinary data."""
    with StubServer(gap_s=0.05) as stub:
        c, point_id = point(stub, closed(2, 8, stall_s=0.5))
        running(c, point_id)
        stub.pause(2.5)
        views = []
        deadline = time.monotonic() + 60
        while time.monotonic() < deadline:
            views.append(c.get(f"/benchmark/{point_id}?limit=1").get_json())
            if views[-1]["state"] != "running":
                break
            time.sleep(0.1)
        records, view = follow(c, point_id)
    shown = [v for v in views if v["server_silent_s"] > 0.5]
    assert shown and "sent nothing" in shown[0]["warning"]
    assert view["state"] == "done" and all(r["ok"] for r in records)
    stalled = [r for r in records if r["stalled"]]
    assert 1 <= len(stalled) <= 2  # the requests of the two clients waiting then
    assert all(r["stall_gap_s"] >= 2.0 and r["e2e_s"] >= 2.0 for r in stalled)  # first or next
    assert all(r["stall_gap_s"] is None for r in records if not r["stalled"])
    assert view["stalls"] == len(stalled) and "stalled" in view["warning"]
    summary = summarize(records)
    assert summary["stalls"] == len(stalled) and summary["stall_gap_max_s"] >= 2.0
    assert "may have hung" in summary["stall_warning"]


def test_stop_on_stall_cuts_the_point_short_and_says_why():
    with StubServer(gap_s=0.02) as stub:
        c, point_id = point(stub, closed(2, 100000, stall_s=0.5, stop_on_stall=True))
        running(c, point_id)
        stub.pause(600)
        records, view = follow(c, point_id)
        stub.pause(0)  # its requests end, and so can it
    assert view["state"] == "done"
    assert view["client"]["stopped_on_stall"] and not view["client"]["timed_out"]
    assert "client.stop_on_stall" in view["client"]["warning"]
    cut = [r for r in records if not r["ok"]]
    assert len(cut) == 2 and {r["error_kind"] for r in cut} == {"cancelled"}
    assert all("sent nothing" in r["error"] and r["stalled"] for r in cut)
    assert view["client"]["wall_s"] < 10
    summary = summarize(records)
    assert summary["stalls"] == 2 and summary["errors"] == {"cancelled": 2}


def test_a_busy_server_is_not_a_hung_one():
    """One slot: each request waits in the server's queue longer than stall_s, while the
    server streams to the one it serves."""
    with StubServer(gap_s=0.1, slots=1) as stub:
        c, point_id = point(stub, closed(3, 2, stall_s=0.6))
        records, view = follow(c, point_id)
    assert view["state"] == "done" and all(r["ok"] for r in records)
    assert max(r["ttft_s"] for r in records) > 0.6
    assert view["stalls"] == 0 and view["warning"] is None
    assert summarize(records)["stalls"] == 0


def test_the_points_table_has_the_stalls():
    summary = {
        **summarize([]),
        "stalls": 3,
        "point": {
            "run": "r",
            "model": "m",
            "deployment": "m",
            "clients": 1,
            "requests_per_client": 1,
            "llm_server": {"url": "u", "status": "started"},
            "client_service": {"status": "started"},
        },
    }
    assert row(summary)["stalls"] == 3
    del summary["stalls"]  # a summary from before stalls were counted
    assert row(summary)["stalls"] is None
