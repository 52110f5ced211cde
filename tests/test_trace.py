"""Trace replay (loadgen.patterns.trace, llmsweep.traces): trace files read and checked
before any job starts, and replayed on the streaming stub at their recorded times."""

import json
import re

import pytest

from helpers import client_app, follow, run_point
from llmsweep import config, traces
from llmsweep.loadgen import patterns, point_request, workers, workload
from llmsweep.loadgen.patterns import trace
from llmsweep.loadgen.stub_server import StubServer
from llmsweep.loadgen.sweep import describe_load, point_settings, sweep_points

OWN = "arrival_s,input_tokens,output_tokens,session_id,prompt\n"
AZURE = "TIMESTAMP,ContextTokens,GeneratedTokens\n"


def write(tmp_path, name: str, text: str):
    path = tmp_path / name
    path.write_text(text)
    return path


def trace_config(path, **sweep) -> dict:
    """config.load's overrides for a run that replays `path` alone."""
    return {
        "sweep": {"clients": [], "trace_scales": [1, 2], **sweep},
        "workload": {"trace": str(path)},
    }


# -- reading --------------------------------------------------------------------------------


def test_the_azure_layout_counts_arrivals_from_the_first_row(tmp_path):
    path = write(
        tmp_path,
        "azure.csv",
        AZURE + "2023-11-16 18:15:46.6805900,374,44\n"
        "2023-11-16 18:15:50.9951690,396,109\n"
        "2023-11-16 18:15:50.9951690,879,0\n"
        "2023-11-16 18:16:01.0000000,200000,12\n",
    )
    rows = traces.read(path)
    assert [r.arrival_s for r in rows] == pytest.approx([0.0, 4.314579, 4.314579, 14.31941])
    assert [(r.input_tokens, r.output_tokens) for r in rows] == [
        (374, 44),
        (396, 109),
        (879, 1),  # a request asks for one token at least
        (traces.MAX_TOKENS, 12),  # clamped as drawn synthetic lengths are
    ]
    assert {r.session_id for r in rows} == {None} and {r.prompt for r in rows} == {None}


def test_own_layouts_in_jsonl_and_csv_with_sessions_prompts_and_timestamps(tmp_path):
    jsonl = write(
        tmp_path,
        "own.jsonl",
        "\n".join(
            json.dumps(r)
            for r in [
                {"arrival_s": 10.5, "input_tokens": 8, "output_tokens": 3, "session_id": "a"},
                {"arrival_s": 11, "input_tokens": 9.0, "output_tokens": 4, "prompt": "Hi, you"},
                {"arrival_s": 12, "input_tokens": 1, "output_tokens": 1, "session_id": 7},
            ]
        )
        + "\n\n",
    )
    assert traces.read(jsonl) == [
        traces.Row(0.0, 8, 3, "a", None),
        traces.Row(0.5, 9, 4, None, "Hi, you"),
        traces.Row(1.5, 1, 1, "7", None),
    ]
    csv_file = write(
        tmp_path,
        "own.csv",
        "timestamp,Input_Tokens,output_tokens,prompt\n"
        '2024-05-10T00:00:00+00:00,5,6,"one, two"\n'
        "2024-05-10T00:00:02.5+00:00,7,8,\n",
    )
    assert traces.read(csv_file) == [
        traces.Row(0.0, 5, 6, None, "one, two"),
        traces.Row(2.5, 7, 8, None, None),
    ]


def test_the_shipped_sample_is_what_its_generator_makes_and_a_valid_trace():
    import io

    made = io.StringIO()
    traces.write_csv(traces.sample(), made)
    assert traces.SAMPLE_PATH.read_text() == made.getvalue(), (
        "regenerate: python -m llmsweep.traces > config/trace-sample.csv"
    )
    rows = traces.read(traces.SAMPLE_PATH)
    assert len(rows) == 300 and rows[0].arrival_s == 0.0
    assert 60 < rows[-1].arrival_s < 200
    assert len({r.session_id for r in rows}) < len(rows)  # sessions come back
    assert traces.sample(seed=1) != traces.sample(seed=0)


# -- config: a bad trace fails before any job starts, naming the file and the row or column


@pytest.mark.parametrize(
    ("name", "text", "where", "what"),
    [
        ("cols.csv", "arrival_s,input_tokens\n0,1\n", "line 1", "no column output_tokens"),
        ("azure.csv", "TIMESTAMP,ContextTokens\n", "line 1", "no column output_tokens"),
        ("none.csv", "when,input_tokens,output_tokens\n", "line 1", "no column arrival_s"),
        (
            "key.jsonl",
            '{"arrival_s": 0, "input_tokens": 1, "output_tokens": 1}\n'
            '{"arrival_s": 1, "input_tokens": 1}\n',
            "line 2",
            "no column output_tokens",
        ),
        ("order.csv", OWN + "0,1,1,,\n2.5,1,1,,\n2,1,1,,\n", "row 3 (line 4)", "sorted"),
        (
            "order.csv",
            AZURE + "2023-11-16 18:15:47,1,1\n2023-11-16 18:15:46,1,1\n",
            "row 2 (line 3)",
            "sorted",
        ),
        ("neg.csv", OWN + "0,1,1,,\n1,-5,1,,\n", "row 2 (line 3)", "'-5' is negative"),
        ("frac.csv", OWN + "0,1,2.5,,\n", "row 1 (line 2)", "output_tokens: '2.5'"),
        ("nan.csv", OWN + "0,1,many,,\n", "row 1 (line 2)", "output_tokens: 'many' is not a"),
        ("empty.csv", OWN + "0,,1,,\n", "row 1 (line 2)", "input_tokens: nothing"),
        ("when.csv", OWN + "soon,1,1,,\n", "row 1 (line 2)", "arrival_s: 'soon' is not a number"),
        ("date.csv", AZURE + "yesterday,1,1\n", "row 1 (line 2)", "TIMESTAMP: 'yesterday'"),
        ("inf.jsonl", '{"arrival_s": 1e999, "input_tokens": 1, "output_tokens": 1}\n', "row 1", ""),
        ("bool.jsonl", '{"arrival_s": 0, "input_tokens": true, "output_tokens": 1}\n', "row 1", ""),
        ("empty.csv", "", "", "holds no rows"),
        ("header.csv", OWN, "", "holds no rows"),
        ("blank.jsonl", "\n\n", "", "holds no rows"),
        ("notjson.jsonl", "{oops\n", "line 1", "not JSON"),
        ("trace.txt", OWN + "0,1,1,,\n", "", "neither .jsonl nor .csv"),
        ("wide.csv", OWN + "0,1,1,,,extra\n", "line 2", "6 fields"),
        ("late.csv", OWN + "0,1,1,,\n700000,1,1,,\n", "row 2 (line 3)", "604,800 s"),
    ],
)
def test_a_bad_trace_is_refused_by_config_naming_the_file_and_row_or_column(
    tmp_path, name, text, where, what
):
    path = write(tmp_path, name, text)
    with pytest.raises(config.ConfigError) as err:
        config.load(overrides=trace_config(path))
    message = str(err.value)
    assert f"workload.trace: {path}: {where}" in message and what in message, message


def test_a_trace_past_a_point_requests_bounds_is_refused_at_the_row_it_passes_them(tmp_path):
    rows = "".join(f"{i},1,1,,\n" for i in range(traces.MAX_ROWS + 1))
    many = write(tmp_path, "many.csv", OWN + rows)
    with pytest.raises(config.ConfigError) as err:
        config.load(overrides=trace_config(many))
    assert f"{many}: row {traces.MAX_ROWS + 1}" in str(err.value)
    assert f"{traces.MAX_ROWS:,} rows" in str(err.value)
    # Synthetic prompts of 131072 tokens count 1,000,000 characters each: the fourth passes.
    long = write(tmp_path, "long.csv", OWN + "".join(f"{i},131072,1,,\n" for i in range(5)))
    with pytest.raises(config.ConfigError, match="3,990,000 characters") as err:
        config.load(overrides=trace_config(long))
    assert f"{long}: row 4 (line 5)" in str(err.value)
    row = {"arrival_s": 0, "input_tokens": 1, "output_tokens": 1, "prompt": "x" * 1_000_001}
    big = write(tmp_path, "big.jsonl", json.dumps(row) + "\n")
    with pytest.raises(config.ConfigError, match="row 1 .line 1.: prompt: more than 1,000,000"):
        config.load(overrides=trace_config(big))


def test_a_trace_file_too_large_is_refused_before_it_is_read(tmp_path, monkeypatch):
    path = write(tmp_path, "t.csv", OWN + "0,1,1,,\n" * 1000)
    monkeypatch.setattr(traces, "MAX_FILE_BYTES", 1024)
    with pytest.raises(config.ConfigError, match=f"{re.escape(str(path))}: larger than"):
        config.load(overrides=trace_config(path))


def test_a_trace_and_its_time_scales_go_together(tmp_path):
    path = write(tmp_path, "t.csv", OWN + "0,1,1,,\n")
    with pytest.raises(config.ConfigError, match="sweep.trace_scales: needs workload.trace"):
        config.load(overrides={"sweep": {"trace_scales": [1]}})
    with pytest.raises(config.ConfigError, match="workload.trace: given, but"):
        config.load(overrides={"workload": {"trace": str(path)}})
    with pytest.raises(config.ConfigError, match=r"sweep.trace_scales\[0\]"):
        config.load(overrides=trace_config(path, trace_scales=[0]))
    missing = tmp_path / "no.csv"
    with pytest.raises(config.ConfigError, match=f"workload.trace: {missing}: No such file"):
        config.load(overrides=trace_config(missing))


def test_check_config_refuses_a_bad_trace_in_one_line(tmp_path, capsys):
    from llmsweep import cli

    path = write(tmp_path, "t.csv", OWN + "0,1,1,,\n1,x,1,,\n")
    cfg = write(tmp_path, "c.yaml", json.dumps(trace_config(path)))
    assert cli.main(["check-config", "--configfile", str(cfg)]) == 2
    err = capsys.readouterr().err
    assert err.count("\n") == 1
    assert f"workload.trace: {path}: row 2 (line 3): input_tokens: 'x'" in err


# -- the pattern and its point request -----------------------------------------------------


def test_time_scales_are_points_named_t_and_their_request_carries_the_trace(tmp_path):
    path = write(tmp_path, "t.csv", OWN + "0,3,4,a,Hello\n0.5,3,5,,\n1.5,2,6,b,\n")
    cfg = config.load(overrides=trace_config(path, trace_scales=[1, 2.5, 0.5]))
    points = sweep_points(cfg)
    assert [p["load"] for p in points] == ["t1", "t2.5", "t0.5"]
    assert all(re.fullmatch(patterns.LOAD_REGEX, p["load"]) for p in points)
    assert points[1]["pattern"] == "trace" and points[1]["time_scale"] == 2.5
    assert points[1]["clients"] is None and points[1]["rate"] is None
    assert describe_load(points[1]) == "at 2.5x the trace's speed"

    def tokenizer(url, model, headers=None):  # a character a token
        return (lambda text: [ord(c) for c in text], lambda t: "".join(map(chr, t)))

    monkey = pytest.MonkeyPatch()
    monkey.setattr(workload, "_tokenizer", tokenizer)
    try:
        prompts, schedule = workload.build_trace(cfg["workload"], "http://unused", "m", 0)
    finally:
        monkey.undo()
    assert prompts[0] == {"prompt": "Hello", "max_tokens": 4}
    assert [len(p["prompt"]) for p in prompts[1:]] == [3, 2]  # synthetic, of the row's tokens
    assert [p["max_tokens"] for p in prompts] == [4, 5, 6]
    assert schedule == {"arrivals_s": [0.0, 0.5, 1.5], "session_ids": ["a", None, "b"]}
    settings = {"sweep": point_settings(cfg, points[1])} | {
        k: cfg[k] for k in ("warmup", "workload", "client")
    }
    request = point_request.build(points[1], settings, prompts, schedule)
    assert point_request.refusal(request, point_request.schema()) is None
    assert request["sweep"]["arrivals_s"] == [0.0, 0.5, 1.5]
    assert point_request.complete(request)["sweep"] == request["sweep"]
    assert trace.total(request["sweep"]) == 3


def test_a_trace_request_has_one_prompt_per_row_and_the_apis_bounds():
    schema = point_request.schema()
    body = {
        "pattern": "trace",
        "sweep": {"time_scale": 1, "arrivals_s": [0, 1]},
        "workload": {"prompts": [{"prompt": "x"}]},
    }
    assert "2 values for 1 prompts" in point_request.refusal(body, schema)
    body["sweep"]["session_ids"] = ["a"]
    body["workload"]["prompts"] *= 2
    assert "sweep.session_ids: 1 values for 2 prompts" in point_request.refusal(body, schema)
    body["sweep"]["arrivals_s"] = [0, -1]
    body["sweep"]["session_ids"] = ["a", None]
    assert point_request.refusal(body, schema).startswith("sweep.arrivals_s.1")
    del body["sweep"]["arrivals_s"]
    assert "arrivals_s" in point_request.refusal(body, schema)


def test_the_largest_trace_a_config_takes_fits_the_point_requests_bounds():
    """The trace's bounds are the point request's: MAX_ROWS rows of five values, and
    MAX_TEXT characters of prompts and session ids, every character escaped to 12 bytes,
    pass the API and stay within MAX_BODY_BYTES."""
    from llmsweep.loadgen.workload import BASE_TEXT

    assert traces.MAX_ROWS * 5 + point_request.OTHER_VALUES <= config.MAX_VALUES
    assert traces.MAX_TEXT <= point_request.MAX_PROMPTS_TEXT
    assert traces.MAX_ROWS <= point_request.MAX_PROMPTS
    trace_rows = point_request.TRACE_ROW_BYTES * traces.MAX_ROWS
    assert trace_rows <= point_request.PROMPT_FRAME_BYTES * point_request.MAX_PROMPTS
    assert traces.MAX_PROMPT_CHARS == point_request.PROMPT["maxLength"]
    assert traces.MAX_TOKENS == point_request.MAX_TOKENS["maximum"]
    assert (
        traces.MAX_ARRIVAL_S
        == config.load_schema()["properties"]["sweep"]["properties"]["max_point_duration_s"][
            "maximum"
        ]
    )
    # A synthetic prompt's token is at most a word of the text it is cut from, and a space.
    assert traces.SYNTHETIC_CHARS_PER_TOKEN >= max(len(w) + 1 for w in BASE_TEXT.split())
    described = config.load_schema()["properties"]["workload"]["properties"]["trace"]
    assert f"{traces.MAX_ROWS:,} rows" in described["description"]
    assert f"{traces.MAX_TEXT:,} characters" in described["description"]

    wide = "\U0001f600"  # a surrogate pair in JSON: 12 bytes
    n = traces.MAX_ROWS
    session = wide * 100
    per_row = (traces.MAX_TEXT - n * len(session)) // n
    top = point_request.MAX_TOKENS["maximum"]
    body = {
        "pattern": "trace",
        "sweep": {
            "time_scale": 0.001,
            "arrivals_s": [traces.MAX_ARRIVAL_S - 1e-9 * (i + 1) for i in range(n)],
            "session_ids": [session] * n,
            "duration_s": 604799.99999999999,
            "max_point_duration_s": 604799.9999999999,
            "seed": -(2**63) + 1,
        },
        "warmup": {"requests": 1000000, "duration_s": 86399.99999999999},
        "workload": {
            "prompts": [{"prompt": wide * per_row, "max_tokens": top}] * n,
            "ignore_eos": False,
            "api": "completions",
            "request_timeout_s": 86399.99999999999,
        },
        "client": {"workers": 64, "stall_s": 86399.99999999999, "stop_on_stall": False},
    }
    assert point_request.refusal(body, point_request.schema()) is None
    size = len(json.dumps(body).encode())
    assert point_request.MAX_BODY_BYTES - 1_000_000 < size <= point_request.MAX_BODY_BYTES


def test_workers_split_a_trace_by_rows_each_at_its_own_time():
    request = point_request.complete(
        {
            "pattern": "trace",
            "sweep": {"time_scale": 2, "arrivals_s": [0, 1, 2, 3, 4], "session_ids": list("abcde")},
            "workload": {"prompt": "x"},
            "client": {"workers": 2},
        }
    )
    parts = [workers.split(request, k, 2)["sweep"] for k in range(2)]
    assert [p["arrivals_s"] for p in parts] == [[0, 2, 4], [1, 3]]
    assert [p["session_ids"] for p in parts] == [list("ace"), list("bd")]
    assert [(p["first_row"], p["row_step"]) for p in parts] == [(0, 2), (1, 2)]
    assert [p["time_scale"] for p in parts] == [2, 2]


# -- replay on the streaming stub ----------------------------------------------------------


def replay_body(arrivals: list[float], scale: float, workers_: int = 1) -> dict:
    return {
        "pattern": "trace",
        "sweep": {
            "time_scale": scale,
            "arrivals_s": arrivals,
            "session_ids": [f"s{i % 3}" for i in range(len(arrivals))],
        },
        "workload": {
            "prompts": [
                {"prompt": f"row {i}", "max_tokens": 1 + i % 4} for i in range(len(arrivals))
            ],
            "api": "completions",
        },
        "client": {"workers": workers_},
    }


def test_replay_sends_every_row_once_in_schedule_order_at_its_time_scale():
    """A trace of 2 s at scale 2: every row sent once, in the order of its schedule, each
    scheduled at half its arrival; the point lasts about 1 s (a lower bound only: the
    machine is shared), and each request's lateness is recorded and summarised."""
    arrivals = [round(i * 2.0 / 39, 6) for i in range(40)]
    arrivals[10] = arrivals[11]  # two rows at one time keep their order
    with StubServer(gap_s=0.001) as stub:
        records, view = run_point(stub, replay_body(arrivals, 2))
    assert view["state"] == "done", view["error"]
    assert sorted(r["row"] for r in records) == list(range(40))
    assert all(r["ok"] for r in records)
    by_row = sorted(records, key=lambda r: r["row"])
    assert [r["scheduled_s"] for r in by_row] == pytest.approx([a / 2 for a in arrivals])
    sent = [r["sent_s"] for r in by_row]
    assert sent == sorted(sent)  # sent in the order of the schedule
    assert all(r["sent_s"] > r["scheduled_s"] - 1e-3 for r in by_row)  # never early
    assert all(r["lateness_s"] == pytest.approx(r["sent_s"] - r["scheduled_s"]) for r in by_row)
    assert [r["max_tokens"] for r in by_row] == [1 + i % 4 for i in range(40)]
    assert [r["output_tokens"] for r in by_row] == [1 + i % 4 for i in range(40)]
    assert [r["session_id"] for r in by_row] == [f"s{i % 3}" for i in range(40)]
    assert by_row[-1]["sent_s"] > 0.999 and view["client"]["wall_s"] > 0.999
    figures = trace.figures(records)["lateness_s"]
    assert figures["count"] == 40 and 0 <= figures["p50"] <= figures["p99"]


def test_replay_in_two_worker_processes_sends_every_row_once():
    arrivals = [i * 0.02 for i in range(50)]
    with StubServer(gap_s=0.001) as stub:
        records, view = run_point(stub, replay_body(arrivals, 1, workers_=2))
    assert view["state"] == "done", view["error"]
    assert sorted(r["row"] for r in records) == list(range(50))
    for r in records:  # each row with its own prompt's max_tokens and its own time
        assert r["max_tokens"] == 1 + r["row"] % 4
        assert r["scheduled_s"] == pytest.approx(arrivals[r["row"]])
    assert view["total"] == 50


def test_duration_s_cuts_a_replay_at_its_scheduled_time():
    with StubServer(gap_s=0.001) as stub:
        body = replay_body([0, 0.1, 0.2, 5, 6], 1)
        body["sweep"]["duration_s"] = 1
        records, view = run_point(stub, body)
    assert view["state"] == "done"
    assert sorted(r["row"] for r in records) == [0, 1, 2]


def test_a_replay_behind_schedule_sends_the_rows_due_back_to_back():
    """A row per pass of the event loop held a late replay to the loop's pace; the rows due
    go out together, the loop let run every LATE_BURST rows (a stop is heard then)."""
    import asyncio

    sent: list[dict] = []
    passes = 0

    async def send(prompt_index, **extra):
        sent.append({"prompt_index": prompt_index, **extra})

    async def main():
        nonlocal passes
        ticker_stop = asyncio.Event()

        async def ticker():
            nonlocal passes
            while not ticker_stop.is_set():
                passes += 1
                await asyncio.sleep(0)

        task = asyncio.create_task(ticker())
        await trace.replay(send, [0.0] * 1000, 1.0, first_row=1, row_step=2)
        ticker_stop.set()
        await task

    asyncio.run(main())
    assert [s["row"] for s in sent] == [1 + 2 * i for i in range(1000)]
    assert [s["prompt_index"] for s in sent] == [s["row"] for s in sent]
    assert 1000 // (trace.LATE_BURST + 1) <= passes < 200


def test_a_trace_points_summary_has_its_lateness(tmp_path, monkeypatch):
    """benchmark.run_point builds a trace point's request from the trace (its rows'
    prompts and schedule) and adds the pattern's figures, lateness p50 and p99, to the
    summary; the client service runs in-process on the stub."""
    from llmsweep import benchmark

    path = write(tmp_path, "t.csv", OWN + "0,3,2,a,one\n0.2,3,3,,two\n0.4,3,4,b,three\n")
    cfg = config.load(overrides=trace_config(path, trace_scales=[2]))
    (point,) = sweep_points(cfg)
    point |= {"run": "t", "settings": {}, "gpus": 0, "fingerprint": "f"}
    settings = {k: cfg[k] for k in ("sweep", "warmup", "workload", "slo", "client")}
    sent = {}
    with StubServer(gap_s=0.001) as stub:
        app = client_app({"UPSTREAM": stub.url, "MODEL": "stub", "ENGINE": "openai", "RUN": "t"})
        c = app.test_client()

        def start_point(client, request):
            sent["request"] = request
            r = c.post("/benchmark", json=request)
            assert r.status_code == 202, r.get_json()
            return r.get_json()["id"]

        def follow_point(client, point_id, requests_path, point, leases, watch=None):
            records, view = follow(c, point_id)
            requests_path.write_text("".join(json.dumps(r) + "\n" for r in records))
            return view

        monkeypatch.setattr(benchmark, "start_point", start_point)
        monkeypatch.setattr(benchmark, "follow_point", follow_point)
        monkeypatch.setattr(benchmark, "describe_point", lambda *args: {"load": "t2"})
        folder = tmp_path / "results" / "t" / "bench" / point["deployment"] / "t2"
        leases = {"client_service": {"url": "http://unused"}, "llm_server": {"url": stub.url}}
        summary = benchmark.run_point(
            point, settings, leases, folder / "requests.jsonl", folder / "summary.json"
        )
    request = sent["request"]
    assert request["pattern"] == "trace" and request["sweep"]["time_scale"] == 2
    assert request["sweep"]["arrivals_s"] == [0.0, 0.2, 0.4]
    assert request["sweep"]["session_ids"] == ["a", None, "b"]
    assert [p["prompt"] for p in request["workload"]["prompts"]] == ["one", "two", "three"]
    assert summary["requests"] == 3 and summary["output_tokens"] == 2 + 3 + 4
    assert summary["lateness_s"]["count"] == 3
    assert 0 <= summary["lateness_s"]["p50"] <= summary["lateness_s"]["p99"]
    assert json.loads((folder / "summary.json").read_text())["lateness_s"]["p99"] is not None


def test_no_two_synthetic_rows_share_a_prefix(tmp_path, monkeypatch):
    """The text synthetic prompts are cut from repeats itself, so cuts at random offsets
    share prefixes a server would cache; a trace's rows each start with their own tokens."""
    words: dict[str, int] = {}

    def tokenizer(url, model, headers=None):  # a word a token
        def tokenize(text):
            return [words.setdefault(w, len(words)) for w in text.split()]

        names = {}

        def detokenize(tokens):
            names.update({i: w for w, i in words.items()})
            return " ".join(names[t] for t in tokens)

        return tokenize, detokenize

    monkeypatch.setattr(workload, "_tokenizer", tokenizer)
    rows = "".join(f"{i * 0.01:.2f},{8 + i % 5},2,,\n" for i in range(2000))
    path = write(tmp_path, "t.csv", OWN + rows)
    cfg = config.load(overrides=trace_config(path))
    prompts, _ = workload.build_trace(cfg["workload"], "http://unused", "m", 0)
    assert [len(p["prompt"].split()) for p in prompts] == [8 + i % 5 for i in range(2000)]
    assert len({tuple(p["prompt"].split()[:4]) for p in prompts}) == 2000


def test_a_send_on_time_to_within_a_microsecond_is_not_early():
    """The loop may run a due timer a clock tick early, and the sums round: such a send is
    on time (0), while a send truly early keeps its negative lateness."""
    assert trace.lateness(0.1 - 1.4e-12, 0.1) == 0.0
    assert trace.lateness(0.1, 0.1) == 0.0
    assert trace.lateness(0.1025, 0.1) == pytest.approx(0.0025)
    assert trace.lateness(0.09, 0.1) == pytest.approx(-0.01)
