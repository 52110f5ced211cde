"""The client service API against a fast streaming stub (the real server is in test_workflow)."""

import json
import subprocess
import sys
import urllib.request

import pytest

from helpers import follow
from llmsweep.client_service.app import create_app
from llmsweep.loadgen.stub_server import StubServer
from llmsweep.util import wait_until


@pytest.fixture(scope="module")
def stub():
    with StubServer(gap_s=0.001) as server:
        yield server


@pytest.fixture()
def client(stub):
    app = create_app({"UPSTREAM": stub.url, "MODEL": "stub", "ENGINE": "openai", "RUN": "t"})
    return app.test_client()


def test_health_reports_the_upstream(client):
    r = client.get("/health")
    assert r.status_code == 200
    assert r.get_json()["status"] == "ok"


def test_health_is_503_when_upstream_is_down():
    app = create_app({"UPSTREAM": "http://127.0.0.1:9", "MODEL": "m", "ENGINE": "openai"})
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
        ("/benchmark", {"n_clients": 0, "n_requests_per_client": 1, "prompt": "x"}, "n_clients"),
        ("/benchmark", {"n_clients": "2", "n_requests_per_client": 1, "prompt": "x"}, "n_clients"),
        ("/benchmark", {"n_clients": 1, "n_requests_per_client": -1, "prompt": "x"}, "n_requests"),
        ("/benchmark", {"n_clients": 1, "prompt": "x"}, "n_requests_per_client"),
        (
            "/benchmark",
            {"n_clients": 1, "n_requests_per_client": 1, "prompt": "x", "api": "soap"},
            "api",
        ),  # fmt: skip
    ],
)
def test_bad_bodies_get_400_with_a_json_reason(client, path, body, needle):
    if body is None:
        r = client.post(path, data="not json", content_type="application/json")
    else:
        r = client.post(path, json=body)
    assert r.status_code == 400
    assert needle in r.get_json()["error"]


def test_bad_follow_arguments_and_unknown_points(client):
    assert client.get("/benchmark/nope").status_code == 404
    assert "no point" in client.get("/benchmark/nope").get_json()["error"]
    start = client.post("/benchmark", json={"n_clients": 1, "n_requests_per_client": 1,
                                            "prompt": "x", "max_tokens": 2})  # fmt: skip
    point_id = start.get_json()["id"]
    r = client.get(f"/benchmark/{point_id}?offset=-1")
    assert r.status_code == 400 and "offset" in r.get_json()["error"]
    follow(client, point_id)


def test_benchmark_runs_every_request_and_allows_one_point_at_a_time(client, stub):
    body = {"n_clients": 16, "n_requests_per_client": 3, "prompt": "x", "max_tokens": 20}
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
    labels = 'clients="16",engine="openai",model="stub",outcome="ok",rate="",run="t"'
    assert f"llmsweep_requests_total{{{labels}}} 48.0" in metrics
    assert "llmsweep_request_ttft_seconds_bucket" in metrics


def test_a_point_against_a_failing_server_records_the_error_kind():
    with StubServer(fail_status=503) as failing:
        app = create_app({"UPSTREAM": failing.url, "MODEL": "m", "ENGINE": "openai", "RUN": "t"})
        c = app.test_client()
        start = c.post("/benchmark", json={"n_clients": 2, "n_requests_per_client": 2,
                                           "prompt": "x"})  # fmt: skip
        records, view = follow(c, start.get_json()["id"])
    assert view["state"] == "done"
    assert [r["error_kind"] for r in records] == ["http_503"] * 4


def test_cancel_stops_a_running_point(stub):
    with StubServer(gap_s=0.05) as slow:
        app = create_app({"UPSTREAM": slow.url, "MODEL": "m", "ENGINE": "openai", "RUN": "t"})
        c = app.test_client()
        start = c.post("/benchmark", json={"n_clients": 2, "n_requests_per_client": 1000,
                                           "prompt": "x", "max_tokens": 4})  # fmt: skip
        point_id = start.get_json()["id"]
        assert c.delete(f"/benchmark/{point_id}").status_code == 200
        records, view = follow(c, point_id)
    assert view["state"] == "cancelled"
    assert len(records) < 2000


def test_served_by_gunicorn_with_metrics_that_promtool_accepts(stub, tmp_path):
    """The real WSGI server, as the controller starts it."""
    from llmsweep.util import free_port

    port = free_port("127.0.0.1")
    env = {"LLMSWEEP_UPSTREAM": stub.url, "LLMSWEEP_MODEL": "stub", "LLMSWEEP_ENGINE": "openai",
           "LLMSWEEP_RUN": "t", "PATH": "/usr/bin:/bin"}  # fmt: skip
    proc = subprocess.Popen(
        [
            sys.executable,
            "-m",
            "gunicorn",
            "--bind",
            f"127.0.0.1:{port}",
            "--workers",
            "1",
            "--worker-class",
            "gthread",
            "--threads",
            "4",
            "llmsweep.client_service.app:create_app()",
        ],  # fmt: skip
        env={**env, "PYTHONPATH": ":".join(sys.path)},
        stdout=subprocess.DEVNULL,
        stderr=subprocess.DEVNULL,
    )
    try:
        base = f"http://127.0.0.1:{port}"
        from llmsweep.util import http_json, http_ok

        wait_until(lambda: http_ok(base + "/health"), 30, "gunicorn")
        status, body = http_json(base + "/query", {"prompt": "x", "max_tokens": 3})
        assert status == 200 and body["output_tokens"] == 3
        status, body = http_json(base + "/query", {"prompt": 5})
        assert status == 400 and "prompt" in body["error"]
        with urllib.request.urlopen(base + "/metrics") as resp:
            exposition = resp.read()
        check = subprocess.run(["promtool", "check", "metrics"], input=exposition,
                               capture_output=True)  # fmt: skip
        assert check.returncode == 0, check.stdout + check.stderr
        assert b"llmsweep_output_tokens_total" in exposition
    finally:
        proc.terminate()
        proc.wait(30)


def test_follow_returns_json_not_html_for_unknown_routes(client):
    r = client.get("/nope")
    assert r.status_code == 404
    assert json.loads(r.get_data())["error"]
