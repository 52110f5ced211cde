"""Load patterns, warm-up and workloads, against a fast local streaming stub (the real
server's checks are in test_workflow)."""

import asyncio
import json
import math
import os
import subprocess
import sys

import psutil
import pytest

from helpers import run_point
from llmsweep import config
from llmsweep.loadgen import point_request, session, workload
from llmsweep.loadgen.stats import summarize
from llmsweep.loadgen.stub_server import STATE, StubServer
from llmsweep.loadgen.workload import WorkloadError, build_prompts, read_prompt_file
from llmsweep.util import wait_until


def test_closed_loop_1000_clients_no_cap_no_errors():
    with StubServer(gap_s=0.02) as stub:
        body = {
            "sweep": {"clients": 1000, "requests_per_client": 1},
            "workload": {"prompt": "x", "max_tokens": 10},
        }
        records, view = run_point(stub, body)
    assert view["state"] == "done" and len(records) == 1000
    assert [r["error_kind"] for r in records if not r["ok"]] == []
    assert view["peak_in_flight"] == 1000


def test_poisson_rate_sends_about_rate_times_duration_with_exponential_gaps():
    rate, duration = 100.0, 4.0
    with StubServer() as stub:
        body = {
            "pattern": "open",
            "sweep": {
                "rate": rate,
                "arrival": "poisson",
                "requests": 100000,
                "duration_s": duration,
                "seed": 7,
            },
            "workload": {"prompt": "x", "max_tokens": 2},
        }
        records, view = run_point(stub, body)
    n = len(records)
    expected = rate * duration
    # A Poisson count has sd sqrt(r*T); 5 sd either side fails by chance ~1 in 1.7 million.
    assert abs(n - expected) < 5 * math.sqrt(expected), n
    arrivals = sorted(r["arrival_s"] for r in records)
    gaps = sorted(b - a for a, b in zip(arrivals, arrivals[1:], strict=False))
    # Kolmogorov-Smirnov against Exp(rate); 1.95/sqrt(n) is the 0.1 % critical value.
    d = max(
        max(
            abs((i + 1) / len(gaps) - (1 - math.exp(-rate * g))),
            abs(i / len(gaps) - (1 - math.exp(-rate * g))),
        )
        for i, g in enumerate(gaps)
    )
    assert d < 1.95 / math.sqrt(len(gaps)), d
    assert all(r["ok"] for r in records)
    assert view["client"]["wall_s"] >= duration * 0.9


def test_constant_rate_is_evenly_spaced_and_concurrency_limit_queues():
    with StubServer(gap_s=0.05) as stub:
        body = {
            "pattern": "open",
            "sweep": {"rate": 50, "arrival": "constant", "requests": 40, "max_concurrency": 2},
            "workload": {"prompt": "x", "max_tokens": 4},
        }
        records, view = run_point(stub, body)
    arrivals = sorted(r["arrival_s"] for r in records)
    assert all(b - a == pytest.approx(0.02) for a, b in zip(arrivals, arrivals[1:], strict=False))
    assert view["peak_in_flight"] == 2
    # 4 chunks x 50 ms per request, two at a time, 50 arriving per second: a queue builds.
    assert max(r["queue_s"] for r in records) > 0.5


def test_warmup_requests_are_flagged_and_left_out_of_every_figure():
    with StubServer() as stub:
        body = {
            "sweep": {"clients": 2, "requests_per_client": 3},
            "warmup": {"requests": 4},
            "workload": {"prompt": "x", "max_tokens": 3},
        }
        records, _ = run_point(stub, body)
    warm = [r for r in records if r["warmup"]]
    assert len(warm) == 4 and len(records) == 10
    assert max(r["start"] for r in warm) <= min(r["start"] for r in records if not r["warmup"])
    for r in warm:  # make warm-up stand out: any leak into a figure would show
        r["ttft_s"], r["e2e_s"], r["output_tokens"] = 99.0, 999.0, 10**6
    s = summarize(records)
    assert s["requests"] == 6 and s["warmup_requests"] == 4
    assert s["ttft_s"]["max"] < 99 and s["e2e_s"]["max"] < 999
    assert s["output_tokens"] == 6 * 3


def test_a_point_is_bounded_by_time():
    with StubServer(gap_s=0.05) as stub:
        body = {
            "sweep": {"clients": 2, "requests_per_client": 1000, "max_point_duration_s": 1},
            "workload": {"prompt": "x", "max_tokens": 5},
        }
        records, view = run_point(stub, body)
    assert view["client"]["timed_out"] and view["client"]["wall_s"] < 5
    assert 0 < len(records) < 2000
    assert {r["error_kind"] for r in records if not r["ok"]} <= {"cancelled"}


def test_goodput_counts_requests_within_every_slo():
    base = {
        "itl_s": [],
        "output_tokens": 5,
        "output_tokens_source": "usage",
        "input_tokens": 3,
        "ok": True,
        "error_kind": None,
    }
    records = [
        {**base, "start": 0.0, "ttft_s": 0.1, "tpot_s": 0.01, "e2e_s": 1.0},
        {**base, "start": 0.0, "ttft_s": 0.5, "tpot_s": 0.01, "e2e_s": 1.0},
        {**base, "start": 1.0, "ttft_s": 0.1, "tpot_s": 0.05, "e2e_s": 1.0},
        {**base, "start": 1.0, "ttft_s": 0.1, "tpot_s": 0.01, "e2e_s": 1.0},
    ]
    s = summarize(records, {"ttft_s": 0.2, "tpot_s": 0.02, "e2e_s": None})
    assert s["slo"] == {"ttft_s": 0.2, "tpot_s": 0.02}
    assert s["slo_share"] == {"ttft_s": 0.75, "tpot_s": 0.75, "all": 0.5}
    assert s["goodput_rps"] == pytest.approx(2 / 2.0)


def test_prompt_files_jsonl_and_csv(tmp_path):
    jsonl = tmp_path / "p.jsonl"
    jsonl.write_text(
        json.dumps({"prompt": "a", "max_tokens": 7}) + "\n" + json.dumps({"prompt": "b"}) + "\n"
    )
    csvf = tmp_path / "p.csv"
    csvf.write_text('prompt,max_tokens\n"x, with a comma",3\ny,\n')
    assert read_prompt_file(jsonl) == [{"prompt": "a", "max_tokens": 7}, {"prompt": "b"}]
    assert read_prompt_file(csvf) == [
        {"prompt": "x, with a comma", "max_tokens": 3},
        {"prompt": "y"},
    ]
    cfg = config.load(overrides={"workload": {"prompt_file": str(jsonl), "max_tokens": 9}})
    prompts = build_prompts(cfg["workload"], "http://unused", "m", 0)
    assert prompts == [{"prompt": "a", "max_tokens": 7}, {"prompt": "b", "max_tokens": 9}]
    bad = tmp_path / "bad.jsonl"
    bad.write_text(json.dumps({"text": "no prompt key"}) + "\n")
    with pytest.raises(WorkloadError, match="entry 1"):
        read_prompt_file(bad)


def test_output_lengths_follow_mean_and_stdev():
    cfg = config.load(overrides={"workload": {"output_tokens": {"mean": 100, "stdev": 10}}})
    prompts = build_prompts(cfg["workload"], "http://unused", "m", seed=3)
    assert len(prompts) == 1  # one prompt text
    cfg["workload"]["prompt_file"] = None
    lengths = [build_prompts(cfg["workload"], "", "m", seed=s)[0]["max_tokens"] for s in range(400)]
    mean = sum(lengths) / len(lengths)
    sd = (sum((x - mean) ** 2 for x in lengths) / len(lengths)) ** 0.5
    assert 98 < mean < 102 and 8 < sd < 12


@pytest.mark.parametrize(
    ("override", "key"),
    [
        ({"sweep": {"rates": [-2]}}, "sweep.rates[0]"),
        ({"workload": {"input_tokens": {"stdev": 5}}}, "workload.input_tokens"),
        ({"workload": {"output_tokens": {"mean": 0}}}, "workload.output_tokens.mean"),
        ({"workload": {"prompt_file": "/no/such/prompts.jsonl"}}, "workload.prompt_file"),
        ({"sweep": {"clients": [], "rates": []}}, "sweep.clients"),
        ({"warmup": {"requests": -1}}, "warmup.requests"),
        ({"slo": {"ttft_s": 0}}, "slo.ttft_s"),
        ({"client": {"stall_s": 0}}, "client.stall_s"),
        ({"client": {"stall_s": float("nan")}}, "client.stall_s"),
        ({"client": {"stop_on_stall": "yes"}}, "client.stop_on_stall"),
    ],
)
def test_bad_workload_config_names_the_key(override, key):
    with pytest.raises(config.ConfigError) as err:
        config.load(overrides=override)
    assert key in str(err.value)


def test_worker_processes_share_a_closed_loop_point():
    with StubServer(gap_s=0.02) as stub:
        body = {
            "sweep": {"clients": 1000, "requests_per_client": 2},
            "warmup": {"requests": 3},
            "workload": {"prompt": "x", "max_tokens": 10},
            "client": {"workers": 2},
        }
        records, view = run_point(stub, body)
    measured = [r for r in records if not r["warmup"]]
    assert view["state"] == "done" and len(measured) == 2000, view["error"]
    assert len(records) - len(measured) == 3
    assert all(r["ok"] for r in records)
    assert sorted({r["client"] for r in measured}) == list(range(1000))
    assert view["peak_in_flight"] >= 1000
    assert view["client"]["workers"] == 2 and view["client"]["cpu_s"] > 0


def test_worker_processes_share_an_open_loop_rate():
    with StubServer() as stub:
        body = {
            "pattern": "open",
            "sweep": {"rate": 100, "requests": 10000, "duration_s": 3},
            "workload": {"prompt": "x", "max_tokens": 2},
            "client": {"workers": 2},
        }
        records, _ = run_point(stub, body)
    assert abs(len(records) - 300) < 5 * math.sqrt(300)


def test_long_synthetic_prompts_are_fewer_so_that_the_api_takes_them(monkeypatch):
    """256 prompts of 131072 tokens are some 150 million characters: a point takes
    MAX_PROMPTS_TEXT, so there are fewer distinct prompts, each within the API's length."""
    chars_per_token = 10

    def tokenizer(url, model, headers=None):
        return (lambda text: list(range(len(text))), lambda t: "x" * (chars_per_token * len(t)))

    monkeypatch.setattr(workload, "_tokenizer", tokenizer)
    cfg = config.load(overrides={"workload": {"input_tokens": {"mean": 131072}}})
    prompts = build_prompts(cfg["workload"], "http://unused", "m", 0)
    longest = point_request.PROMPT["maxLength"]
    assert len(prompts) == point_request.MAX_PROMPTS_TEXT // longest
    assert all(len(p["prompt"]) == longest for p in prompts)
    request = {**closed_request(), "workload": {"prompts": prompts}}
    assert point_request.refusal(request, point_request.schema()) is None
    cfg = config.load(overrides={"workload": {"input_tokens": {"mean": 100}}})
    assert len(build_prompts(cfg["workload"], "http://unused", "m", 0)) == 256


def closed_request() -> dict:
    return {"sweep": {"clients": 1, "requests_per_client": 1}}


@pytest.mark.parametrize(
    ("lines", "needle"),
    [
        (['{"prompt": "x"}'] * (point_request.MAX_PROMPTS + 1), "33,301 prompts"),
        ([json.dumps({"prompt": "y" * 1000001})], "entry 1"),
        ([json.dumps({"prompt": "y" * 1000000})] * 4, "4,000,000 characters"),
    ],
)
def test_prompt_files_a_point_cannot_take_are_refused_naming_the_key(tmp_path, lines, needle):
    path = tmp_path / "prompts.jsonl"
    path.write_text("\n".join(lines) + "\n")
    with pytest.raises(WorkloadError, match="workload.prompt_file") as err:
        read_prompt_file(path)
    assert needle in str(err.value)


SERVICE = """
import sys, threading
from llmsweep.loadgen import point_request, workers
from llmsweep.loadgen.runner import Server
from llmsweep.loadgen.session import InFlight

if __name__ == "__main__":
    body = {"sweep": {"clients": 2, "requests_per_client": 1000000}, "workload": {"prompt": "x"}}
    request = point_request.complete(body)
    workers.prepare()
    workers.run(Server(sys.argv[1], "openai", "m"), request, print, threading.Event(), InFlight())
"""


def test_a_points_workers_stop_when_the_client_service_is_killed(tmp_path):
    """No orphans: a client service killed outright takes its forkserver with it, and the
    workers of its running point stop then (they would load the server on otherwise)."""
    script = tmp_path / "service.py"
    script.write_text(SERVICE)
    with StubServer(gap_s=0.01) as stub:
        env = {**os.environ, "PYTHONPATH": ":".join(sys.path)}
        proc = subprocess.Popen([sys.executable, str(script), stub.url], env=env)
        try:
            service = psutil.Process(proc.pid)
            wait_until(lambda: stub.app[STATE]["requests"] > 10, 60, "the point's requests")
            (server,) = [p for p in service.children() if "forkserver" in " ".join(p.cmdline())]
            point_workers = server.children()
            assert point_workers
            proc.kill()
            _, alive = psutil.wait_procs([server, *point_workers], timeout=10)
            assert not alive
        finally:
            proc.kill()
            proc.wait()


def test_the_load_runs_on_uvloop_and_the_point_says_so():
    body = {
        "sweep": {"clients": 2, "requests_per_client": 3},
        "workload": {"prompt": "x", "max_tokens": 2},
        "client": {"workers": 2},
    }
    with StubServer(gap_s=0.001) as stub:
        records, view = run_point(stub, body)
    assert len(records) == 6 and all(r["ok"] for r in records)
    assert session.EVENT_LOOP == "uvloop" and view["client"]["event_loop"] == "uvloop"


def test_without_uvloop_the_load_runs_on_asyncios_own_loop(monkeypatch):
    monkeypatch.setattr(session, "uvloop", None)

    async def loop_module() -> str:
        return type(asyncio.get_running_loop()).__module__

    assert session.run(loop_module()).startswith("asyncio")
