"""The client service API against a fast streaming stub (the real server is in test_workflow)."""

import json

import jsonschema
import pytest

from helpers import client_app, follow
from llmsweep import config
from llmsweep.loadgen import point_request, workers
from llmsweep.loadgen.stub_server import StubServer
from llmsweep.loadgen.sweep import point_settings, sweep_points
from llmsweep.loadgen.workload import build_prompts


def closed(max_tokens=None, **sweep) -> dict:
    """A closed-loop point request of one client and one request, prompt "x", with the
    given sweep keys changed (None leaves a key out)."""
    keys = {"clients": 1, "requests_per_client": 1} | sweep
    workload = {"prompt": "x"} | ({"max_tokens": max_tokens} if max_tokens else {})
    keys = {k: v for k, v in keys.items() if v is not None}
    return {"sweep": keys, "workload": workload}


@pytest.fixture(scope="module")
def stub():
    with StubServer(gap_s=0.001) as server:
        yield server


@pytest.fixture()
def client(stub):
    app = client_app({"UPSTREAM": stub.url, "MODEL": "stub", "ENGINE": "openai", "RUN": "t"})
    return app.test_client()


def test_health_reports_the_upstream(client):
    r = client.get("/health")
    assert r.status_code == 200
    assert r.get_json()["status"] == "ok"


def test_health_is_503_when_upstream_is_down():
    app = client_app({"UPSTREAM": "http://127.0.0.1:9", "MODEL": "m", "ENGINE": "openai"})
    r = app.test_client().get("/health")
    assert r.status_code == 503
    assert r.get_json()["status"] == "upstream_down"


def test_query_returns_text_timings_and_server_token_counts(client):
    r = client.post("/query", json={"prompt": "hi", "max_tokens": 5})
    assert r.status_code == 200
    body = r.get_json()
    assert body["ok"] and body["text"] == "w0 w1 w2 w3 w4 "
    assert body["output_tokens"] == 5 and body["output_tokens_source"] == "usage"
    assert body["input_tokens"] == 7 and body["input_tokens_source"] == "usage"
    assert 0 < body["ttft_s"] <= body["e2e_s"]
    assert len(body["itl_s"]) == 4


@pytest.mark.parametrize(
    ("path", "body", "needle"),
    [
        ("/query", None, "JSON object"),
        ("/query", {}, "prompt"),
        ("/query", {"prompt": ""}, "prompt"),
        ("/query", {"prompt": "x", "max_tokens": 0}, "max_tokens"),
        ("/query", {"prompt": "x", "evil": 1}, "evil"),
        ("/benchmark", closed(clients=0), "sweep.clients"),
        ("/benchmark", closed(clients="2"), "sweep.clients"),
        ("/benchmark", closed(requests_per_client=-1), "sweep.requests_per_client"),
        ("/benchmark", closed(requests_per_client=None), "requests_per_client"),
        ("/benchmark", closed(n_clients=1), "n_clients"),
        ("/benchmark", {**closed(), "workload": {"prompt": "x", "api": "soap"}}, "workload.api"),
        ("/benchmark", {**closed(), "warmup": {"requests": -1}}, "warmup.requests"),
        ("/benchmark", {**closed(), "pattern": "open"}, "rate"),
        ("/benchmark", {**closed(), "pattern": "zigzag"}, "pattern"),
        ("/benchmark", {"pattern": "open", "sweep": {"rate": 1, "requests": 2}}, "workload"),
    ],
)
def test_bad_bodies_get_400_with_a_json_reason(client, path, body, needle):
    if body is None:
        r = client.post(path, data="not json", content_type="application/json")
    else:
        r = client.post(path, json=body)
    assert r.status_code == 400
    assert needle in r.get_json()["error"]


def test_the_point_requests_of_a_config_at_its_bounds_are_accepted():
    """Built from a config point, a request has the config's key names and passes the API's
    schema, even with every bound of config at its limit."""
    cfg = config.load(
        overrides={
            "sweep": {
                "clients": [1, 100000],
                "rates": [0.5, 100000],
                "repeats": 2,
                "requests_per_client": 1000000,
                "duration_s": 604800,
                "requests": 100000000,
                "max_concurrency": 100000,
                "max_point_duration_s": 604800,
                "seed": 3,
            },
            "warmup": {"requests": 1000000, "duration_s": 86400},
            "workload": {"max_tokens": 131072, "request_timeout_s": 86400},
            "client": {"workers": 64},
        }
    )
    schema = jsonschema.Draft202012Validator(point_request.schema())
    sections = {k: cfg[k] for k in ("warmup", "workload", "client")}
    for point in sweep_points(cfg):
        settings = {"sweep": point_settings(cfg, point), **sections}
        prompts = build_prompts(cfg["workload"], "http://unused", point["model"], 0)
        request = point_request.build(point, settings, prompts)
        assert [e.message for e in schema.iter_errors(request)] == [], point["load"]
        assert request["sweep"]["seed"] == 3 + point["repeat"]
        assert request["warmup"] == {"requests": 1000000, "duration_s": 86400}
        assert point_request.complete(request)["sweep"] == request["sweep"]
    assert sweep_points(cfg)[-1]["load"] == "r100000_rep1"


def test_a_request_is_split_across_workers_by_its_pattern():
    closed_loop = point_request.complete(
        {**closed(clients=5), "warmup": {"requests": 3}, "client": {"workers": 2}}
    )
    parts = [workers.split(closed_loop, k, 2) for k in range(2)]
    assert [(p["sweep"]["clients"], p["sweep"]["first_client"]) for p in parts] == [(3, 0), (2, 3)]
    assert [p["warmup"]["requests"] for p in parts] == [2, 1]
    assert [p["client"]["workers"] for p in parts] == [1, 1]
    open_loop = point_request.complete(
        {
            "pattern": "open",
            "sweep": {"rate": 3, "requests": 5, "max_concurrency": 3},
            "workload": {"prompt": "x"},
            "client": {"workers": 2},
        }
    )
    parts = [workers.split(open_loop, k, 2)["sweep"] for k in range(2)]
    assert [(p["rate"], p["requests"], p["max_concurrency"]) for p in parts] == [
        (1.5, 3, 1),
        (1.5, 2, 1),
    ]
    assert [p["seed"] for p in parts] == [0, 1]


def test_bad_follow_arguments_and_unknown_points(client):
    assert client.get("/benchmark/nope").status_code == 404
    assert "no point" in client.get("/benchmark/nope").get_json()["error"]
    start = client.post("/benchmark", json=closed(max_tokens=2))
    point_id = start.get_json()["id"]
    r = client.get(f"/benchmark/{point_id}?offset=-1")
    assert r.status_code == 400 and "offset" in r.get_json()["error"]
    follow(client, point_id)


def test_benchmark_runs_every_request_and_allows_one_point_at_a_time(client, stub):
    body = closed(clients=16, requests_per_client=3, max_tokens=20)
    r = client.post("/benchmark", json=body)
    assert r.status_code == 202
    point_id = r.get_json()["id"]
    busy = client.post("/benchmark", json=body)
    assert busy.status_code == 409 and busy.get_json()["running"] == point_id
    records, view = follow(client, point_id)
    assert view["state"] == "done" and view["completed"] == 48 == len(records)
    assert all(r["ok"] for r in records)
    assert sorted((r["client"], r["seq"]) for r in records) == [
        (c, s) for c in range(16) for s in range(3)
    ]
    assert view["peak_in_flight"] == 16  # all clients at once, no hidden cap
    metrics = client.get("/metrics").get_data(as_text=True)
    labels = (
        'clients="16",conversations="",engine="openai",model="stub",outcome="ok",rate="",'
        'run="t",time_scale=""'
    )
    assert f"llmsweep_requests_total{{{labels}}} 48.0" in metrics
    assert "llmsweep_request_ttft_seconds_bucket" in metrics


def test_a_point_against_a_failing_server_records_the_error_kind():
    with StubServer(fail_status=503) as failing:
        app = client_app({"UPSTREAM": failing.url, "MODEL": "m", "ENGINE": "openai", "RUN": "t"})
        c = app.test_client()
        start = c.post("/benchmark", json=closed(clients=2, requests_per_client=2))
        records, view = follow(c, start.get_json()["id"])
    assert view["state"] == "done"
    assert [r["error_kind"] for r in records] == ["http_503"] * 4


def test_cancel_stops_a_running_point(stub):
    with StubServer(gap_s=0.05) as slow:
        app = client_app({"UPSTREAM": slow.url, "MODEL": "m", "ENGINE": "openai", "RUN": "t"})
        c = app.test_client()
        body = closed(clients=2, requests_per_client=1000, max_tokens=4)
        start = c.post("/benchmark", json=body)
        point_id = start.get_json()["id"]
        assert c.delete(f"/benchmark/{point_id}").status_code == 200
        records, view = follow(c, point_id)
    assert view["state"] == "cancelled"
    assert len(records) < 2000


def test_follow_returns_json_not_html_for_unknown_routes(client):
    r = client.get("/nope")
    assert r.status_code == 404
    assert json.loads(r.get_data())["error"]
