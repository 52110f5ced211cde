"""The client service as an attacker and a clumsy caller meet it: any point stops within a
second of DELETE, no input gets a 5xx, bodies and finished points are bounded, and
/health answers while slow and long-poll requests hold the rest (issue 12)."""

import contextlib
import json
import math
import os
import socket
import subprocess
import sys
import threading
import time
import urllib.request

import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from helpers import AUTH, TOKEN, client_app, follow
from llmsweep import config, deployments, secret
from llmsweep.client_service import points as points_module
from llmsweep.client_service.points import Points
from llmsweep.loadgen import patterns, point_request
from llmsweep.loadgen.stub_server import StubServer
from llmsweep.paths import RunPaths
from llmsweep.services import definitions
from llmsweep.util import free_port, http_json, http_ok, wait_until
from strategies import json_values

AUTH_LINE = f"Authorization: Bearer {TOKEN}\r\n".encode()  # raw requests carry the token
REFUSED = "http://127.0.0.1:9"  # nothing listens: every request fails at once


def service(upstream: str):
    app = client_app({"UPSTREAM": upstream, "MODEL": "m", "ENGINE": "openai", "RUN": "t"})
    return app, app.test_client()


def closed(clients: int, requests: int, max_tokens: int = 4) -> dict:
    return {
        "sweep": {"clients": clients, "requests_per_client": requests},
        "workload": {"prompt": "x", "max_tokens": max_tokens},
    }


def rss_mb() -> float:
    with open("/proc/self/statm") as f:
        return int(f.read().split()[1]) * os.sysconf("SC_PAGE_SIZE") / 1e6


def stop_time(c, point_id: str) -> float:
    """Seconds from DELETE until the point is no longer running."""
    t0 = time.monotonic()
    r = c.delete(f"/benchmark/{point_id}")
    assert r.status_code == 200 and r.get_json()["state"] in ("cancelling", "cancelled")
    while c.get(f"/benchmark/{point_id}?limit=1").get_json()["state"] == "running":
        assert time.monotonic() - t0 < 30, "the point did not stop"
        time.sleep(0.01)
    return time.monotonic() - t0


def cancel(c, point_id: str) -> None:
    c.delete(f"/benchmark/{point_id}")
    wait_until(lambda: c.get(f"/benchmark/{point_id}").get_json()["state"] != "running", 30, "stop")


def assert_free(c) -> None:
    """The service takes a new point (and that one is stopped again)."""
    r = c.post("/benchmark", json=closed(1, 1))
    assert r.status_code == 202, r.get_json()
    cancel(c, r.get_json()["id"])


@contextlib.contextmanager
def black_hole():
    """A server that never accepts: connections wait in its queue (then in the kernel's
    retries) and nothing ever comes back."""
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        sock.listen(1)
        yield f"http://127.0.0.1:{sock.getsockname()[1]}"


def test_delete_stops_100_clients_with_a_million_requests_each_within_a_second():
    """The finding: cancelled clients went through their remaining requests (73 s)."""
    with StubServer(gap_s=0.01) as stub:
        _, c = service(stub.url)
        point_id = c.post("/benchmark", json=closed(100, 1000000)).get_json()["id"]
        wait_until(lambda: c.get(f"/benchmark/{point_id}").get_json()["completed"] > 100, 60, "")
        assert stop_time(c, point_id) < 1.0
        view = c.get(f"/benchmark/{point_id}").get_json()
        assert view["state"] == "cancelled" and view["in_flight"] == 0
        assert_free(c)


def test_delete_stops_100000_clients_within_a_second_in_bounded_memory():
    """The finding: 100 000 clients x 1e6 requests ran on 90 s after DELETE, memory
    growing, every new point refused. Here most of them cannot even open a connection (the
    descriptor limit), so they fail and loop as fast as they can."""
    with black_hole() as upstream:
        _, c = service(upstream)
        before = rss_mb()
        point_id = c.post("/benchmark", json=closed(100000, 1000000)).get_json()["id"]
        wait_until(lambda: c.get(f"/benchmark/{point_id}").get_json()["in_flight"] >= 1000, 120, "")
        assert stop_time(c, point_id) < 1.0
        assert rss_mb() - before < 300
        assert_free(c)


def test_delete_ends_an_open_loops_wait_for_its_next_arrival_at_once():
    """The finding: a point at 0.001 requests/s ran on 30 s after DELETE."""
    with StubServer() as stub:
        _, c = service(stub.url)
        body = {
            "pattern": "open",
            "sweep": {"rate": 0.001, "requests": 1000},
            "workload": {"prompt": "x"},
        }
        point_id = c.post("/benchmark", json=body).get_json()["id"]
        wait_until(lambda: c.get(f"/benchmark/{point_id}").get_json()["completed"] == 1, 60, "")
        assert stop_time(c, point_id) < 1.0
        assert_free(c)


def test_delete_stops_a_point_of_several_workers_within_a_second():
    with StubServer(gap_s=0.01) as stub:
        _, c = service(stub.url)
        body = {**closed(50, 1000000), "client": {"workers": 2}}
        point_id = c.post("/benchmark", json=body).get_json()["id"]
        wait_until(lambda: c.get(f"/benchmark/{point_id}").get_json()["completed"] > 50, 60, "")
        assert stop_time(c, point_id) < 1.0
        assert c.get(f"/benchmark/{point_id}").get_json()["in_flight"] == 0
        assert_free(c)


def raw(sweep: str = '"clients": 1, "requests_per_client": 1', **sections: str) -> str:
    """A /benchmark body written out, with the sweep keys and sections given as JSON text
    (which may hold what JSON itself cannot: NaN, Infinity)."""
    sections.setdefault("workload", '{"prompt": "x"}')
    rest = "".join(f', "{name}": {text}' for name, text in sections.items())
    return f'{{"sweep": {{{sweep}}}{rest}}}'


OPEN = '"pattern": "open", '


@pytest.mark.parametrize(
    ("path", "body", "needle"),
    [
        ("/benchmark", raw('"clients": NaN, "requests_per_client": 1'), "sweep.clients"),
        ("/benchmark", "{" + OPEN + raw('"rate": NaN, "requests": 5')[1:], "sweep.rate"),
        ("/benchmark", "{" + OPEN + raw('"rate": 1e999, "requests": 5')[1:], "sweep.rate"),
        ("/benchmark", raw(warmup='{"duration_s": -Infinity}'), "warmup.duration_s"),
        (
            "/benchmark",
            raw('"clients": 1, "requests_per_client": 1, "max_point_duration_s": Infinity'),
            "sweep.max_point_duration_s",
        ),
        (
            "/benchmark",
            raw(workload='{"prompt": "x", "request_timeout_s": NaN}'),
            "workload.request_timeout_s",
        ),
        (
            "/benchmark",
            raw(f'"clients": 1, "requests_per_client": 1, "seed": {2**64}'),
            "sweep.seed",
        ),
        ("/benchmark", raw('"clients": 1.0, "requests_per_client": 1'), "sweep.clients"),
        ("/benchmark", raw('"clients": true, "requests_per_client": 1'), "sweep.clients"),
        ("/benchmark", raw(workload='{"prompts": {"prompt": "x"}}'), "workload.prompts"),
        ("/benchmark", raw(client='{"stall_s": NaN}'), "client.stall_s"),
        ("/benchmark", raw(client='{"stop_on_stall": 1}'), "client.stop_on_stall"),
        ("/benchmark", raw(x="[" * 40 + "]" * 40), "nested"),
        ("/benchmark", "[" * 100000 + "]" * 100000, "nested too deeply"),
        ("/benchmark", '{"a":' * 100000 + "1" + "}" * 100000, "nested too deeply"),
        ("/benchmark", "1" * 5000, "JSON object"),
        ("/benchmark", "[1, 2]", "JSON object"),
        ("/benchmark", '"text"', "JSON object"),
        ("/benchmark", "", "JSON object"),
        ("/query", '{"prompt": "x", "max_tokens": NaN}', "max_tokens"),
        ("/query", '{"prompt": "x", "request_timeout_s": 1e400}', "request_timeout_s"),
        ("/query", '{"prompt": "x\\u0000"}', "prompt"),
    ],
)
def test_nan_infinities_huge_numbers_deep_nesting_and_wrong_types_get_400(path, body, needle):
    """The findings: NaN passed the bounds (an open loop at rate NaN grew to 3.6 GB) and
    deep nesting gave 500."""
    _, c = service(REFUSED)
    r = c.post(path, data=body, content_type="application/json")
    assert r.status_code == 400, r.get_data()
    assert needle in r.get_json()["error"]


@pytest.mark.parametrize(
    ("data", "content_type"),
    [(b"\xff\xfe{", "application/json"), (b'{"prompt": "x"}', "text/plain"), (b"", None)],
)
def test_bodies_that_are_no_json_get_400(data, content_type):
    _, c = service(REFUSED)
    r = c.post("/query", data=data, content_type=content_type)
    assert r.status_code == 400 and "JSON object" in r.get_json()["error"]


def test_a_refusal_names_the_key_in_a_short_message():
    _, c = service(REFUSED)
    body = {**closed(1, 1), "workload": {"prompt": "x" * 2000000}}
    r = c.post("/benchmark", json=body)
    assert r.status_code == 400
    error = r.get_json()["error"]
    assert error.startswith("workload.prompt: ") and "too long" in error and len(error) < 400


def test_the_api_takes_its_bounds_from_the_config_schema():
    """One source: a value past a bound of config/schema.yaml is refused by config and by
    the API alike (the findings: 1e9 s points, 0.00001 requests/s passed one, not the
    other)."""
    cases = [
        ("sweep", "max_point_duration_s", 1e9),
        ("sweep", "duration_s", 1e9),
        ("sweep", "requests_per_client", 10**7),
        ("warmup", "requests", 10**7),
        ("workload", "request_timeout_s", 1e9),
        ("workload", "max_tokens", 10**6),
        ("client", "workers", 65),
        ("client", "stall_s", 0),
    ]
    _, c = service(REFUSED)
    for section, key, value in cases:
        with pytest.raises(config.ConfigError, match=f"{section}.{key}"):
            config.load(overrides={section: {key: value}})
        body = closed(1, 1)
        body.setdefault(section, {})[key] = value
        r = c.post("/benchmark", json=body)
        assert r.status_code == 400 and f"{section}.{key}" in r.get_json()["error"], key
    spec = config.load_schema()["properties"]["sweep"]["properties"]["rates"]["items"]
    assert point_request.sweep_keys(patterns.pattern("open"))["rate"] == spec


def largest_request() -> dict:
    """A request the API takes, as long as json.dumps can write one: every prompt it may
    have, the text they may hold in all, every character escaped to 12 bytes."""
    wide = "\U0001f600"  # beyond the Basic Multilingual Plane: a surrogate pair in JSON
    n = point_request.MAX_PROMPTS
    small = n - 4
    big = (point_request.MAX_PROMPTS_TEXT - small) // 4
    assert big <= point_request.PROMPT["maxLength"]
    top = point_request.MAX_TOKENS["maximum"]
    prompts = [{"prompt": wide * big, "max_tokens": top} for _ in range(4)]
    prompts += [{"prompt": wide, "max_tokens": top} for _ in range(small)]
    return {
        "pattern": "closed",
        "sweep": {
            "clients": 100000,
            "requests_per_client": 1000000,
            "duration_s": 604799.99999999999,
            "max_point_duration_s": 604799.9999999999,
            "seed": -(2**63) + 1,
        },
        "warmup": {"requests": 1000000, "duration_s": 86399.99999999999},
        "workload": {
            "prompts": prompts,
            "ignore_eos": False,
            "api": "completions",
            "request_timeout_s": 86399.99999999999,
        },
        "client": {"workers": 1, "stall_s": 86399.99999999999, "stop_on_stall": False},
    }


def test_the_size_limit_fits_the_largest_request_and_refuses_more_with_413():
    """The finding: 143 MB bodies were accepted."""
    app, c = service(REFUSED)
    assert app.config["MAX_CONTENT_LENGTH"] == point_request.MAX_BODY_BYTES < 50_000_000
    request = largest_request()
    envelope = {**request, "workload": {**request["workload"], "prompts": []}}
    assert len(json.dumps(envelope)) < point_request.ENVELOPE_BYTES / 10
    body = json.dumps(request).encode()
    assert point_request.MAX_BODY_BYTES - 100_000 < len(body) <= point_request.MAX_BODY_BYTES
    r = c.post("/benchmark", data=body, content_type="application/json")
    assert r.status_code == 202, r.get_json()
    cancel(c, r.get_json()["id"])
    del body, request
    r = c.post(
        "/query", data=b" " * (point_request.MAX_BODY_BYTES + 1), content_type="application/json"
    )
    assert r.status_code == 413
    assert str(point_request.MAX_BODY_BYTES) in r.get_json()["error"]


def test_a_finished_point_read_to_its_end_keeps_its_view_and_not_its_records():
    """The finding: finished points were kept forever (45 MB grew to 486 MB)."""
    with StubServer() as stub:
        app, c = service(stub.url)
        point_id = c.post("/benchmark", json=closed(4, 25)).get_json()["id"]
        records, view = follow(c, point_id)
        assert len(records) == 100 and view["state"] == "done"
        point = app.extensions["llmsweep_points"].get(point_id)
        assert point.records == [] and point.request is None and point.unread_bytes == 0
        again = c.get(f"/benchmark/{point_id}?offset=0")
        assert again.status_code == 410 and again.get_json()["next_offset"] == 100
        end = c.get(f"/benchmark/{point_id}?offset=100").get_json()
        assert end["state"] == "done" and end["completed"] == 100 and end["records"] == []


def test_records_before_the_offset_asked_are_freed_while_a_point_runs():
    with StubServer(gap_s=0.01) as stub:
        app, c = service(stub.url)
        point_id = c.post("/benchmark", json=closed(2, 200)).get_json()["id"]
        point = app.extensions["llmsweep_points"].get(point_id)
        view = c.get(f"/benchmark/{point_id}?wait=10").get_json()
        offset = view["next_offset"]
        assert offset > 0
        c.get(f"/benchmark/{point_id}?offset={offset}&limit=1")
        assert point.base == offset and len(point.records) == point.completed - offset
        cancel(c, point_id)


def test_at_most_a_few_finished_points_are_kept():
    """Starting a point forgets the oldest finished ones beyond the few kept."""
    with StubServer() as stub:
        app, c = service(stub.url)
        app.extensions["llmsweep_points"] = Points(keep_finished=2)
        ids = []
        for _ in range(4):
            ids.append(c.post("/benchmark", json=closed(1, 1)).get_json()["id"])
            follow(c, ids[-1])
        c.post("/benchmark", json=closed(1, 1))  # starting a point forgets the oldest
    assert [c.get(f"/benchmark/{i}?offset=1").status_code for i in ids] == [404, 404, 200, 200]


def test_unread_records_are_bounded_forgetting_finished_points_first():
    with StubServer() as stub:
        app, c = service(stub.url)
        app.extensions["llmsweep_points"] = Points(unread_limit=200 * points_module.RECORD_BYTES)
        old = c.post("/benchmark", json=closed(10, 10)).get_json()["id"]
        wait_until(lambda: c.get(f"/benchmark/{old}?limit=1").get_json()["state"] == "done", 60, "")
        new = c.post("/benchmark", json=closed(10, 100000)).get_json()["id"]
        wait_until(
            lambda: c.get(f"/benchmark/{new}?limit=1").get_json()["state"] != "running", 60, ""
        )
        assert c.get(f"/benchmark/{old}").status_code == 404  # forgotten to make room
        view = c.get(f"/benchmark/{new}?limit=1").get_json()
    assert view["state"] == "failed" and "not read" in view["error"]


def mutated(draw_key: str, value) -> dict:
    """A valid request with one key given `value` (or added, where it has none)."""
    body = {
        "pattern": "closed",
        "sweep": {"clients": 1, "requests_per_client": 1},
        "warmup": {"requests": 0},
        "workload": {"prompt": "x", "max_tokens": 2},
        "client": {"workers": 1},
    }
    *parents, key = draw_key.split(".")
    target = body
    for name in parents:
        target = target.setdefault(name, {})
    target[key] = value
    return body


KEYS = [
    "pattern",
    "sweep",
    "sweep.clients",
    "sweep.requests_per_client",
    "sweep.rate",
    "sweep.duration_s",
    "sweep.max_point_duration_s",
    "sweep.seed",
    "warmup.requests",
    "warmup.duration_s",
    "workload",
    "workload.prompt",
    "workload.prompts",
    "workload.max_tokens",
    "workload.api",
    "workload.request_timeout_s",
    "client.workers",
    "client.stall_s",
    "client.stop_on_stall",
    "extra",
]
ANSWERS = {200, 202, 400, 404, 409, 413, 429}


@pytest.fixture(scope="module")
def property_client():
    return service(REFUSED)[1]


@settings(max_examples=150, deadline=None, suppress_health_check=list(HealthCheck))
@given(
    data=st.one_of(
        st.builds(mutated, st.sampled_from(KEYS), json_values()),
        json_values(),
        st.binary(max_size=64),
    ),
    path=st.sampled_from(["/benchmark", "/query"]),
)
def test_no_json_gets_a_5xx(property_client, data, path):
    """Any body: a 2xx or a 4xx with a JSON reason, never a 5xx (a /query that reached
    the upstream and failed is a 502 carrying its record)."""
    c = property_client
    if isinstance(data, bytes):
        r = c.post(path, data=data, content_type="application/json")
    else:
        r = c.post(path, data=json.dumps(data), content_type="application/json")
    body = r.get_json()
    assert isinstance(body, dict), r.get_data()[:200]
    if path == "/query" and r.status_code == 502:
        assert body["ok"] is False and body["error_kind"] == "connect"
        return
    assert r.status_code in ANSWERS, (r.status_code, body)
    if r.status_code >= 400:
        assert isinstance(body["error"], str) and body["error"]
    if r.status_code == 202:
        cancel(c, body["id"])


def test_json_values_include_what_json_itself_cannot_hold():
    """The strategy gives NaN and infinities (Python's json writes them), so the property
    test above covers them."""
    assert math.isnan(json.loads(json.dumps({"x": math.nan}))["x"])


# The client service under gunicorn.


@contextlib.contextmanager
def gunicorn_service(upstream: str, tmp_path):
    """The client service under gunicorn, started as the service controller starts it
    (services.definitions), against the OpenAI-compatible server at `upstream`."""
    overrides = {"engine": "openai", "engines": {"openai": {"base_url": upstream}}}
    cfg = config.load(overrides={**overrides, "monitoring": {"enabled": False}})
    dep = deployments.expand(cfg)[0]
    paths = RunPaths("t", tmp_path)
    secret.create_file(paths.secret, TOKEN)  # the run's token: helpers.AUTH sends it
    spec = definitions.client_service(cfg, paths, dep, upstream)
    port = free_port("127.0.0.1")
    argv = [a.format(host="127.0.0.1", port=port) for a in spec["argv"]]
    env = {**spec["env"], "PATH": "/usr/bin:/bin", "PYTHONPATH": ":".join(sys.path)}
    proc = subprocess.Popen(argv, env=env, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
    base = f"http://127.0.0.1:{port}"
    try:
        wait_until(lambda: http_ok(base + "/health", headers=AUTH), 60, "gunicorn")
        yield base
    finally:
        proc.terminate()
        proc.wait(30)


def test_served_by_gunicorn_with_metrics_that_promtool_accepts(tmp_path):
    """The real WSGI server, as the controller starts it."""
    with StubServer() as stub, gunicorn_service(stub.url, tmp_path) as base:
        status, body = http_json(base + "/query", {"prompt": "x", "max_tokens": 3}, headers=AUTH)
        assert status == 200 and body["output_tokens"] == 3
        status, body = http_json(base + "/query", {"prompt": 5}, headers=AUTH)
        assert status == 400 and "prompt" in body["error"]
        with urllib.request.urlopen(
            urllib.request.Request(base + "/metrics", headers=AUTH)
        ) as resp:
            exposition = resp.read()
    check = subprocess.run(["promtool", "check", "metrics"], input=exposition, capture_output=True)
    assert check.returncode == 0, check.stdout + check.stderr
    assert b"llmsweep_output_tokens_total" in exposition


def timed_health(base: str) -> float:
    t0 = time.monotonic()
    with urllib.request.urlopen(
        urllib.request.Request(base + "/health", headers=AUTH), timeout=10
    ) as resp:
        assert resp.status == 200
    return time.monotonic() - t0


def test_health_answers_within_a_second_beside_long_polls_and_half_sent_requests(tmp_path):
    """The findings: twenty long-poll reads made /health wait 59 s; twenty half-sent
    requests left it unanswered."""
    stop = threading.Event()
    with StubServer(gap_s=0.05) as stub, gunicorn_service(stub.url, tmp_path) as base:
        status, started = http_json(base + "/benchmark", closed(1, 1000000), headers=AUTH)
        assert status == 202, started
        poll = f"{base}/benchmark/{started['id']}?offset=1000000000&wait=60"

        def long_poll():
            while not stop.is_set():  # those past LONG_POLLS come back at once: again
                with contextlib.suppress(OSError):
                    http_json(poll, timeout=70, headers=AUTH)

        pollers = [threading.Thread(target=long_poll, daemon=True) for _ in range(20)]
        for t in pollers:
            t.start()
        port = int(base.rsplit(":", 1)[1])
        half_sent = []
        for i in range(20):
            sock = socket.create_connection(("127.0.0.1", port))
            if i % 2:
                sock.sendall(b"GET /health HTTP/1.1\r\nHost: x\r\n" + AUTH_LINE)
            else:
                head = (
                    b"POST /query HTTP/1.1\r\nHost: x\r\n"
                    + AUTH_LINE
                    + b"Content-Type: application/json\r\n"
                )
                sock.sendall(head + b"Content-Length: 1000\r\n\r\n{")
            half_sent.append(sock)
        time.sleep(2)  # every poller and half-sent request in place
        try:
            assert max(timed_health(base) for _ in range(5)) < 1.0
            status, body = http_json(
                base + "/query", {"prompt": "x", "max_tokens": 2}, headers=AUTH
            )
            assert status == 200 and body["ok"]
            status, body = http_json(
                f"{base}/benchmark/{started['id']}?wait=0", timeout=5, headers=AUTH
            )
            assert status == 200 and body["state"] == "running"
            for sock in half_sent:  # they finish now: each gets its answer
                sock.sendall(b"\r\n" if half_sent.index(sock) % 2 else b"}" + b" " * 998)
            for sock in half_sent:
                sock.settimeout(10)
                assert sock.recv(100).startswith(b"HTTP/1.1 ")
        finally:
            stop.set()
            for sock in half_sent:
                sock.close()
            http_json(f"{base}/benchmark/{started['id']}", method="DELETE", headers=AUTH)


def test_gunicorn_refuses_a_body_over_the_limit_before_reading_it(tmp_path):
    with StubServer() as stub, gunicorn_service(stub.url, tmp_path) as base:
        port = int(base.rsplit(":", 1)[1])
        with socket.create_connection(("127.0.0.1", port), timeout=10) as sock:
            length = point_request.MAX_BODY_BYTES + 1
            sock.sendall(
                b"POST /benchmark HTTP/1.1\r\nHost: x\r\n"
                + AUTH_LINE
                + b"Content-Type: application/json\r\n"
                + f"Content-Length: {length}\r\n\r\n{{".encode()
            )
            answer = b""
            while chunk := sock.recv(4096):  # the service closes the connection after it
                answer += chunk
        assert answer.startswith(b"HTTP/1.1 413")
        assert b"larger than the limit" in answer


def test_gunicorn_answers_100_continue_before_the_body_arrives(tmp_path):
    """A client that waits for "100 Continue" before its body (curl does, for large ones)
    gets it though the worker waits for whole requests."""
    with StubServer() as stub, gunicorn_service(stub.url, tmp_path) as base:
        port = int(base.rsplit(":", 1)[1])
        body = json.dumps({"prompt": "x", "max_tokens": 2}).encode()
        with socket.create_connection(("127.0.0.1", port), timeout=10) as sock:
            sock.sendall(
                b"POST /query HTTP/1.1\r\nHost: x\r\n"
                + AUTH_LINE
                + b"Content-Type: application/json\r\n"
                + f"Expect: 100-continue\r\nContent-Length: {len(body)}\r\n\r\n".encode()
            )
            assert sock.recv(4096).startswith(b"HTTP/1.1 100 Continue")
            sock.sendall(body)
            answer = b""
            while chunk := sock.recv(4096):
                answer += chunk
        assert b"HTTP/1.1 200 " in answer and b'"ok":true' in answer.replace(b" ", b"")
