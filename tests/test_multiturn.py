"""Multi-turn conversations (loadgen.patterns.multiturn): each turn sends the conversation
so far, on the streaming stub (what was sent, think times, conversation numbers across
worker processes), against llama.cpp's server (growing prompts, cached prompt tokens), in
config and the point request, in the per-turn figures and the report's turns table, and
through the workflow."""

import itertools
import json
import threading

import pandas as pd
import pytest

from helpers import assert_nothing_alive, llama_server, run_point, snakemake, write_stub_config
from llmsweep import config
from llmsweep.loadgen import patterns, point_request, protocols, runner, workers
from llmsweep.loadgen.patterns import multiturn
from llmsweep.loadgen.session import InFlight
from llmsweep.loadgen.stub_server import STATE, StubServer
from llmsweep.loadgen.sweep import describe_load, point_settings, sweep_points
from llmsweep.models import DEMO_MODEL
from llmsweep.report import page, turns
from llmsweep.util import read_json, write_json_atomic

# -- config and the point request ------------------------------------------------------------


@pytest.mark.parametrize(
    ("override", "key"),
    [
        ({"turns": 0}, "sweep.turns"),
        ({"turns": 1001}, "sweep.turns"),
        ({"conversations": [0]}, "sweep.conversations[0]"),
        ({"conversations": [2, 2]}, "sweep.conversations"),
        ({"think_time_s": -1}, "sweep.think_time_s"),
        ({"think": "gamma"}, "sweep.think"),
        ({"conversations_per_user": 0}, "sweep.conversations_per_user"),
    ],
)
def test_bad_multiturn_config_names_the_key(override, key):
    with pytest.raises(config.ConfigError) as err:
        config.load(overrides={"sweep": {"conversations": [1], **override}})
    assert key in str(err.value)


def test_conversation_levels_are_points_named_m_and_their_request_is_valid():
    cfg = config.load(
        overrides={"sweep": {"clients": [2], "conversations": [1, 4], "think_time_s": 0.5}}
    )
    points = sweep_points(cfg)
    assert [p["load"] for p in points] == ["c2", "m1", "m4"]
    m4 = points[2]
    assert m4["pattern"] == "multiturn" and m4["conversations"] == 4 and m4["clients"] is None
    assert describe_load(m4) == "with 4 concurrent conversations"
    assert list(point_settings(cfg, m4)) == list(multiturn.SETTINGS)
    assert patterns.load_name(m4) == "m4"
    request = point_request.build(
        m4 | {"repeat": 1}, cfg, [{"prompt": "hi", "max_tokens": 4}], None
    )
    assert request["sweep"] == {
        "conversations": 4,
        "turns": 4,
        "think_time_s": 0.5,
        "think": "constant",
        "conversations_per_user": 1,
        "duration_s": None,
        "max_point_duration_s": 3600,
        "seed": 1,
    }
    assert point_request.refusal(request, point_request.schema()) is None
    assert multiturn.total(request["sweep"]) == 4 * 1 * 4


@pytest.mark.parametrize(
    ("sweep", "key"),
    [
        ({"conversations": 2, "turns": 0}, "sweep.turns"),
        ({"conversations": 2, "turns": 1001}, "sweep.turns"),
        ({"conversations": 2}, "sweep"),  # turns is required
        ({"conversations": 2, "turns": 2, "think": "later"}, "sweep.think"),
        ({"conversations": 2, "turns": 2, "requests_per_client": 2}, "sweep"),
    ],
)
def test_a_bad_multiturn_request_is_refused_naming_the_key(sweep, key):
    body = {"pattern": "multiturn", "sweep": sweep, "workload": {"prompt": "x"}}
    why = point_request.refusal(body, point_request.schema())
    assert why is not None and why.startswith(key + ":"), why


# -- what is sent, on the stub ---------------------------------------------------------------


def body(api: str = "chat", workers_: int = 1, **sweep) -> dict:
    """A multi-turn point request of 6 prompts p0..p5, prompt i asking for 1 + i tokens."""
    return {
        "pattern": "multiturn",
        "sweep": {"conversations": 2, "turns": 3, **sweep},
        "workload": {
            "prompts": [{"prompt": f"p{i}", "max_tokens": 1 + i} for i in range(6)],
            "api": api,
        },
        "client": {"workers": workers_},
    }


def streamed(n: int) -> str:
    """What the stub streams for a request of max_tokens n."""
    return "".join(f"w{i} " for i in range(n))


@pytest.mark.parametrize("api", ["chat", "completions"])
def test_turn_k_sends_the_earlier_turns_and_the_stubs_answers(api):
    """Conversation c's turn k sends prompt c * turns + k - 1 after every earlier turn's
    prompt and the text the stub streamed for it; with completions, as one text (each
    answer right after its prompt, a blank line before each new prompt)."""
    with StubServer(keep_bodies=True) as stub:
        records, view = run_point(stub, body(api))
        sent = stub.app[STATE]["bodies"]
    assert view["state"] == "done", view["error"]
    assert view["total"] == 2 * 3
    assert len(records) == len(sent) == 6 and all(r["ok"] for r in records)
    expected = []
    for c in range(2):
        messages = []
        for k in range(1, 4):
            i = c * 3 + k - 1
            messages.append({"role": "user", "content": f"p{i}"})
            expected.append(list(messages))
            messages.append({"role": "assistant", "content": streamed(1 + i)})
    if api == "chat":
        got = [b["messages"] for b in sent]
        assert sorted(got, key=json.dumps) == sorted(expected, key=json.dumps)
    else:
        got = [b["prompt"] for b in sent]
        assert "p0w0 \n\np1w0 w1 \n\np2" in got and "p3w0 w1 w2 w3 \n\np4" in got
        assert sorted(got) == sorted(protocols.joined(m[:-1], m[-1]["content"]) for m in expected)
    by_turn = {(r["conversation"], r["turn"]): r for r in records}
    assert sorted(by_turn) == [(c, k) for c in range(2) for k in range(1, 4)]
    for (c, k), r in by_turn.items():
        assert r["user"] == c and r["max_tokens"] == r["output_tokens"] == 1 + c * 3 + k - 1
        assert "text" not in r  # the answer goes back to the conversation, not to the record
        assert r["cached_tokens"] is None and r["cached_tokens_source"] is None


def test_the_user_thinks_between_an_answer_and_the_next_turn():
    """Each turn starts at least think_time_s after the answer to the one before (a lower
    bound only: the machine is shared); the first turn waits for nothing."""
    with StubServer() as stub:
        records, view = run_point(stub, body(think_time_s=0.3))
    assert view["state"] == "done", view["error"]
    by_turn = {(r["conversation"], r["turn"]): r for r in records}
    for (c, k), r in by_turn.items():
        if k > 1:
            before = by_turn[(c, k - 1)]
            assert r["start"] - (before["start"] + before["e2e_s"]) > 0.3 - 0.01
    assert view["client"]["wall_s"] > 2 * 0.3


def test_think_times_are_constant_or_exponential_and_seeded_per_user():
    def draws(seed, user, kind, n=2000):
        return list(itertools.islice(multiturn.think_times(seed, user, 2.0, kind), n))

    assert set(draws(0, 0, "constant")) == {2.0}
    one = draws(0, 0, "exponential")
    assert one == draws(0, 0, "exponential")  # the same seed and user draw the same
    assert one != draws(0, 1, "exponential") and one != draws(1, 0, "exponential")
    assert min(one) >= 0 and 1.8 < sum(one) / len(one) < 2.2
    assert list(itertools.islice(multiturn.think_times(0, 0, 0.0, "exponential"), 3)) == [0.0] * 3


def test_conversations_are_numbered_across_two_workers():
    with StubServer() as stub:
        records, view = run_point(stub, body(workers_=2, conversations=5, conversations_per_user=2))
    assert view["state"] == "done", view["error"]
    assert len(records) == 5 * 2 * 3 and all(r["ok"] for r in records)
    pairs = sorted((r["conversation"], r["turn"]) for r in records)
    assert pairs == [(c, k) for c in range(10) for k in range(1, 4)]
    assert all(r["conversation"] // 2 == r["user"] for r in records)
    parts = [multiturn.split({"conversations": 5}, k, 2) for k in range(2)]
    assert [(p["conversations"], p["first_user"]) for p in parts] == [(3, 0), (2, 3)]


def test_a_failed_turn_ends_its_conversation():
    with StubServer(fail_status=503) as stub:
        records, view = run_point(stub, body(conversations_per_user=2))
    assert view["state"] == "done", view["error"]
    assert sorted((r["conversation"], r["turn"]) for r in records) == [(c, 1) for c in range(4)]
    assert {r["error_kind"] for r in records} == {"http_503"}


def test_no_turn_is_sent_once_duration_s_has_passed():
    with StubServer() as stub:
        records, view = run_point(stub, body(turns=50, think_time_s=0.2, duration_s=0.5))
    assert view["state"] == "done", view["error"]
    assert 2 <= len(records) < 2 * 50
    assert all(r["ok"] for r in records)


# -- cached tokens, as the servers report them -----------------------------------------------


def test_cached_tokens_come_from_usage_or_llama_cpps_timings():
    count = protocols.OpenAI.counts
    usage = {"prompt_tokens": 38, "completion_tokens": 5}
    vllm = count({"usage": usage | {"prompt_tokens_details": {"cached_tokens": 16}}}, 5)
    assert (vllm["cached_tokens"], vllm["cached_tokens_source"]) == (16, "usage")
    timings = {"prompt_n": 23, "cache_n": 15, "predicted_n": 5}
    old_llama = count({"timings": timings}, 5)
    assert (old_llama["cached_tokens"], old_llama["cached_tokens_source"]) == (15, "timings")
    # llama.cpp's prompt_n counts only the tokens it evaluated.
    assert (old_llama["input_tokens"], old_llama["input_tokens_source"]) == (38, "timings")
    none = count({"usage": usage | {"prompt_tokens_details": None}}, 5)
    assert (none["cached_tokens"], none["cached_tokens_source"]) == (None, None)
    ollama = protocols.Ollama.counts({"prompt_eval_count": 9, "eval_count": 3}, 3)
    assert ollama["cached_tokens"] is None


def test_the_body_carries_the_history_for_chat_and_completions():
    history = [{"role": "user", "content": "a"}, {"role": "assistant", "content": " b"}]
    for protocol in (protocols.OpenAI, protocols.Ollama):
        chat = protocol.body("chat", "m", "c", 4, True, history=history)
        assert chat["messages"] == [*history, {"role": "user", "content": "c"}]
        assert protocol.body("completions", "m", "c", 4, True, history=history)["prompt"] == (
            "a b\n\nc"
        )
        assert protocol.body("chat", "m", "c", 4, True) == protocol.body(
            "chat", "m", "c", 4, True, history=[]
        )


# -- the per-turn figures --------------------------------------------------------------------


def record(turn: int, ttft: float | None, inp: int | None, cached: int | None, ok=True) -> dict:
    return {"turn": turn, "ok": ok, "ttft_s": ttft, "input_tokens": inp, "cached_tokens": cached}


def test_per_turn_figures_of_known_records():
    measured = [
        record(1, 0.2, 10, 0),
        record(1, 0.4, 12, None),
        record(1, None, None, None, ok=False),
        record(2, 0.1, 30, 20),
        record(2, 0.3, 34, 24),
        record(3, 0.5, 60, None),
        {"ok": True, "ttft_s": 9.0, "input_tokens": 1},  # not a turn (warm-up)
    ]
    rows = multiturn.figures(measured)["per_turn"]
    assert [r["turn"] for r in rows] == [1, 2, 3]
    one, two, three = rows
    assert (one["requests"], one["successful"]) == (3, 2)
    assert one["ttft_p50_s"] == pytest.approx(0.3) and one["ttft_mean_s"] == pytest.approx(0.3)
    assert one["input_tokens_mean"] == 11 and one["cached_tokens_mean"] == 0
    assert one["cached_tokens_requests"] == 1 and one["cached_share"] == 0
    assert one["ttft_p50_vs_turn1"] == 1
    assert two["ttft_p50_s"] == pytest.approx(0.2) and two["input_tokens_mean"] == 32
    assert two["cached_tokens_mean"] == 22 and two["cached_share"] == pytest.approx(44 / 64)
    assert two["ttft_p50_vs_turn1"] == pytest.approx(0.2 / 0.3)
    assert three["cached_tokens_mean"] is None and three["cached_tokens_requests"] == 0
    assert three["cached_share"] is None
    assert three["ttft_p50_vs_turn1"] == pytest.approx(0.5 / 0.3)
    assert multiturn.figures([]) == {"per_turn": []}


# -- the report's turns table ----------------------------------------------------------------


def summary_of(load: str, level: int | None, per_turn: list[dict] | None) -> dict:
    point = {"deployment": "d", "model": "m", "load": load, "repeat": 0}
    point["conversations"] = level
    out = {"point": point}
    if per_turn is not None:
        out["per_turn"] = per_turn
    return out


def test_the_turns_table_has_the_multiturn_points_turns_in_order(tmp_path):
    records = [record(k, 0.1 * k, 10 * k, 5 * (k - 1)) for k in (1, 2) for _ in range(2)]
    figures = multiturn.figures(records)["per_turn"]
    paths = []
    for load, level, per_turn in (("m10", 10, figures), ("c2", None, None), ("m2", 2, figures)):
        path = tmp_path / load / "summary.json"
        write_json_atomic(path, summary_of(load, level, per_turn))
        paths.append(str(path))
    out = tmp_path / "turns.csv"
    turns.write(paths, str(out))
    df = pd.read_csv(out)
    assert list(df.columns) == turns.POINT + turns.FIGURES
    assert list(zip(df["load"], df["turn"], strict=True)) == [
        ("m2", 1),
        ("m2", 2),
        ("m10", 1),
        ("m10", 2),
    ]
    shown = page._turns(str(out))
    assert shown["TTFT p50 ms"].tolist() == pytest.approx([100, 200, 100, 200])
    assert shown["failed"].tolist() == [0, 0, 0, 0]
    assert shown["TTFT p50 / turn 1"].tolist() == pytest.approx([1, 2, 1, 2])
    assert shown["cached share"].tolist() == pytest.approx([0, 0.25, 0, 0.25])
    empty = tmp_path / "empty.csv"
    turns.write([paths[1]], str(empty))
    assert page._turns(str(empty)) is None and page._turns(None) is None


# -- against llama.cpp's server --------------------------------------------------------------


@pytest.mark.e2e
def test_llama_server_caches_the_conversation_for_later_turns():
    """Two conversations of three turns on two slots: each turn's prompt holds the ones
    before (more prompt tokens each turn), and the server reports prompt tokens taken from
    its cache for every turn after the first, more each turn. (Measured: the previous turn's
    prompt but its last 5 tokens, none of its answer; Gemma 3's sliding-window layers are
    most likely restored from a checkpoint near the prompt's end.)"""
    request = point_request.complete(
        {
            "pattern": "multiturn",
            "sweep": {"conversations": 2, "turns": 3},
            "workload": {
                "prompts": [
                    {"prompt": f"Tell me one fact about the number {i}."} for i in range(6)
                ],
                "max_tokens": 8,
                "request_timeout_s": 120,
            },
        }
    )
    records: list[dict] = []
    with llama_server(parallel=2, slot_context=512) as url:
        server = runner.Server(url, "llama_cpp", DEMO_MODEL)
        workers.run(server, request, records.append, threading.Event(), InFlight())
    assert len(records) == 6 and all(r["ok"] for r in records), records
    for c in range(2):
        turns_ = sorted((r for r in records if r["conversation"] == c), key=lambda r: r["turn"])
        assert [r["turn"] for r in turns_] == [1, 2, 3]
        inputs = [r["input_tokens"] for r in turns_]
        # Each turn adds the last answer (8 tokens) and a new message to the prompt.
        assert inputs[0] < inputs[1] < inputs[2] and inputs[1] - inputs[0] > 8
        cached = [r["cached_tokens"] for r in turns_]
        assert {r["cached_tokens_source"] for r in turns_} == {"usage"}
        assert 0 < cached[1] < cached[2]
        for before, r in zip(turns_, turns_[1:], strict=False):
            assert r["cached_tokens"] < r["input_tokens"]
            assert r["cached_tokens"] > before["input_tokens"] // 2
    rows = multiturn.figures(records)["per_turn"]
    assert [r["requests"] for r in rows] == [2, 2, 2]
    assert rows[1]["cached_tokens_mean"] > 0 and rows[2]["cached_share"] > 0.5


# -- through the workflow --------------------------------------------------------------------


@pytest.mark.e2e
def test_a_multiturn_point_through_the_workflow(tmp_path):
    """A multi-turn point of an external server (the stub): its records, its summary's
    per-turn figures, turns.csv and the report page's table."""
    with StubServer(gap_s=0.001) as stub:
        write_stub_config(
            tmp_path,
            stub,
            sweep={"clients": [], "conversations": [2], "turns": 2, "think_time_s": 0.05},
            monitoring={"enabled": False},
        )
        proc = snakemake(tmp_path)
    assert proc.returncode == 0, proc.stdout + proc.stderr
    assert_nothing_alive(tmp_path)
    run = tmp_path / "results" / "t"
    summary = read_json(run / "bench" / "stub-model" / "m2" / "summary.json")
    assert summary["successful"] == 4
    assert [(t["turn"], t["requests"]) for t in summary["per_turn"]] == [(1, 2), (2, 2)]
    df = pd.read_csv(run / "report" / "turns.csv")
    assert list(zip(df["load"], df["turn"], df["requests"], strict=True)) == [
        ("m2", 1, 2),
        ("m2", 2, 2),
    ]
    points = pd.read_csv(run / "report" / "points.csv")
    assert list(points["load"]) == ["m2"] and list(points["conversations"]) == [2]
    html = (run / "report" / "index.html").read_text()
    assert "Multi-turn conversations: per turn" in html and "TTFT p50 / turn 1" in html
