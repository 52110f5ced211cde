"""The web front end's defences, through Flask's test client and the real remote command
(`python -m llmsweep.web.remote`), with no browser and no sweep:

- user text (run names, paths, job ids) is never an option of the remote command;
- a request that may change something, carried by the cookie, must come from the page itself
  (its Origin or Referer), or carry the token as a Bearer header;
- odd input (NUL, text that is not ASCII, CR/LF, bodies of any shape) gets a 4xx with a
  reason, never a 5xx.
"""

import io
import json
import os
import shlex
import signal
import subprocess
import sys
import time
from pathlib import Path
from urllib.parse import quote, quote_from_bytes, urlencode

import pytest
from hypothesis import event, given, settings
from hypothesis import strategies as st

from conftest import ROOT
from llmsweep.procs import pid_alive, start_time
from llmsweep.services import slurm
from llmsweep.web import api, launch, remote
from llmsweep.web.app import COOKIE, create_app
from llmsweep.web.targets import LocalTarget, Result, Target, TargetError
from llmsweep.web.workspace import Workspace
from strategies import json_values

TOKEN = "test-token-0123456789"
ORIGIN = "http://localhost"  # the test client's server: Host localhost, plain http
BEARER = {"Authorization": f"Bearer {TOKEN}"}
# Bounded property tests: each runs in seconds, and never writes a database to the checkout.
BOUNDED = {"deadline": 5000, "database": None}


# -- fixtures -------------------------------------------------------------------------------
@pytest.fixture
def workdir(tmp_path, monkeypatch):
    """A working folder with one run (`fakerun`: a file, and a folder named "-h"), and
    another folder with a run of the same name that must never be reached."""
    monkeypatch.setenv("PYTHONPATH", str(ROOT / "src"))  # the remote runs this checkout
    work = tmp_path / "work"
    run = work / "results" / "fakerun"
    (run / "-h").mkdir(parents=True)
    (run / "-h" / "inside-dash-h.txt").write_text("a folder named -h")
    (run / "mine.txt").write_text("the run's own")
    elsewhere = tmp_path / "elsewhere" / "results" / "fakerun"
    elsewhere.mkdir(parents=True)
    (elsewhere / "secret.txt").write_text("not this run's")
    return work


@pytest.fixture
def app(workdir):
    return create_app({"token": TOKEN, "workflow": str(ROOT), "workdir": str(workdir)})


@pytest.fixture
def client(app):
    return app.test_client()


def cookie(client):
    """The client as the browser is after opening the printed link: it has the cookie."""
    resp = client.get(f"/?token={TOKEN}")
    assert resp.status_code == 302
    assert client.get_cookie(COOKIE).value == TOKEN
    return client


def error_of(resp) -> str:
    """The JSON reason of a refused request (it must have one)."""
    assert resp.is_json, (resp.status_code, resp.data[:300])
    message = resp.get_json()["error"]
    assert isinstance(message, str) and message
    return message


class Spy:
    """A target that records the calls that reach it, and answers like a real one that
    found nothing."""

    kind = "local"

    def __init__(self):
        self.calls = []

    def call(self, op, *args, **options):
        self.calls.append((op, args))
        return Result(4, json.dumps({"error": "nothing here"}).encode(), "")

    def close(self):
        pass


# -- 1. user text is never an option of the remote command ----------------------------------
def test_a_path_of_option_text_is_a_path_not_another_workdir(client, workdir):
    elsewhere = workdir.parent / "elsewhere"
    resp = client.get(f"/api/runs/fakerun/files?path=--workdir={elsewhere}", headers=BEARER)
    assert resp.status_code == 404, resp.data
    assert "secret.txt" not in resp.get_data(as_text=True)
    assert error_of(resp).startswith("no --workdir=")
    # A folder of the run named like an option is listed as the folder it is.
    resp = client.get("/api/runs/fakerun/files?path=-h", headers=BEARER)
    assert resp.status_code == 200, resp.data
    assert [e["name"] for e in resp.get_json()["entries"]] == ["inside-dash-h.txt"]
    resp = client.get("/api/runs/fakerun/files", headers=BEARER)
    assert "mine.txt" in [e["name"] for e in resp.get_json()["entries"]]


def test_a_run_name_of_option_text_is_refused_before_the_remote(app, client):
    resp = client.get("/api/runs/-h/files", headers=BEARER)
    assert resp.status_code == 400
    assert "usage" not in resp.get_data(as_text=True)
    assert error_of(resp).startswith("run: invalid run name '-h'")
    spy = app.extensions["llmsweep"].target = Spy()
    for path in ("/api/runs/-h/progress", "/api/runs/--workdir=x/queue", "/api/runs/-h/files"):
        assert client.get(path, headers=BEARER).status_code == 400, path
    for path in ("/api/runs/-h/stop", "/api/runs/-h/jobs/1/cancel", "/api/runs/a/jobs/-h/cancel"):
        assert client.post(path, headers=BEARER).status_code == 400, path
    assert client.get("/runs/-h/view?path=x", headers=BEARER).status_code == 400
    assert spy.calls == []


def test_the_remote_itself_takes_option_text_as_a_run_or_a_path(workdir):
    """Whatever reaches it, the real remote command reads user text after `--` as it is."""
    target = LocalTarget(str(ROOT), str(workdir))
    elsewhere = workdir.parent / "elsewhere"
    result = target.call("ls", "-h")
    assert result.status == 2 and "usage" not in result.stdout.decode() + result.stderr
    assert result.json()["error"].startswith("invalid run name '-h'")
    result = target.call("ls", "fakerun", f"--workdir={elsewhere}")
    assert result.status == 4 and b"secret.txt" not in result.stdout, result
    result = target.call("cat", "fakerun", "--", limit="3")
    assert result.status == 4 and result.json()["error"] == "no -- in run fakerun"
    result = target.call("cat", "fakerun", "mine.txt", limit="3")
    assert (result.status, result.stdout) == (0, b"the")


# Any text, and text made to look like the remote's options.
OPTION_LIKE = st.sampled_from(
    ["-h", "--help", "--", "-", "--workdir=/elsewhere", "--workflow", "--limit=1", "--wor=x"]
)
ANY_TEXT = st.one_of(
    OPTION_LIKE,
    st.text(max_size=30),
    st.builds(lambda a, b: a + b, OPTION_LIKE, st.text(max_size=10)),
)


@settings(max_examples=300, **BOUNDED)
@given(
    op=st.sampled_from(["ls", "cat", "progress", "cancel", "launch", "supervise"]),
    run=ANY_TEXT,
    path=ANY_TEXT,
    profile=ANY_TEXT,
)
def test_no_run_name_or_path_text_is_ever_an_option_of_the_remote(op, run, path, profile):
    """The remote command the targets build parses back to the workflow and workdir the
    server gave, the operation asked, and the user text as its arguments, unchanged; over
    SSH too, where the command is one shell line."""
    target = Target("/the/workflow", "/the/workdir", "python3")
    if "\0" in run + path + profile:
        with pytest.raises(TargetError):
            target.argv(op, run, path, profile=profile)
        return
    argv = target.argv(op, run, path, profile=profile, limit="7")
    assert argv[:3] == ["python3", "-m", "llmsweep.web.remote"]
    parsed = remote.parse(argv[3:])
    assert parsed.workflow == Path("/the/workflow") and parsed.workdir == Path("/the/workdir")
    assert (parsed.op, parsed.args, parsed.profile, parsed.limit) == (op, [run, path], profile, 7)
    assert shlex.split(shlex.join(argv)) == argv  # SshTarget sends shlex.join(argv)
    # The supervisor's command line: the workflow's own argv after the run, as it is.
    ws = Workspace(Path("/the/workflow"), Path("/the/workdir"))
    driver_argv = ["snakemake", "--profile", path, "--", run]
    parsed = remote.parse(launch._supervisor_argv(ws, run, driver_argv)[3:])
    assert (parsed.workdir, parsed.op, parsed.args) == (
        ws.workdir,
        "supervise",
        [run, *driver_argv],
    )


@settings(max_examples=15, deadline=20000, database=None)  # a subprocess each
@given(run=ANY_TEXT.filter(lambda t: "\0" not in t), path=ANY_TEXT.filter(lambda t: "\0" not in t))
def test_the_real_remote_never_reads_user_text_as_options(run, path):
    """The same through the real subprocess: whatever the run name and the path, the remote
    answers about that run name in the workdir it was given (not a run name, or no such
    run there), never with its usage or about another argument."""
    from llmsweep.paths import RUN_NAME

    target = LocalTarget(str(ROOT), "/nonexistent-workdir")
    result = target.call("ls", run, path)
    out = result.stdout.decode() + result.stderr
    assert "usage:" not in out
    if RUN_NAME.fullmatch(run):
        assert (result.status, result.json()) == (4, {"error": f"no run {run}"}), out
    else:
        assert result.status == 2, out
        assert result.json()["error"].startswith(f"invalid run name {run!r}"), out


# -- 2. requests that change something come from the page (Origin), or with the Bearer -------
@pytest.fixture
def running(workdir):
    """fakerun as if launched and running: its driver record names a process of ours."""
    proc = subprocess.Popen(["sleep", "120"])
    paths = Workspace.at(ROOT, workdir).paths("fakerun")
    paths.launch.mkdir(parents=True, exist_ok=True)
    record = {"pid": proc.pid, "pid_start": start_time(proc.pid), "host": os.uname().nodename}
    paths.driver_record.write_text(json.dumps(record))
    yield proc
    proc.kill()
    proc.wait()


def ended(proc, seconds=10.0) -> bool:
    deadline = time.monotonic() + seconds
    while time.monotonic() < deadline:
        if proc.poll() is not None:
            return True
        time.sleep(0.05)
    return False


def test_a_cross_site_post_with_the_cookie_does_not_stop_a_run(client, running):
    cookie(client)
    elsewhere = {
        "no Origin": {},
        "another port": {"Origin": "http://localhost:9999"},
        "another host": {"Origin": "http://attacker.example"},
        "https": {"Origin": "https://localhost"},
        "null": {"Origin": "null"},
        "Referer elsewhere": {"Referer": "http://localhost:9999/page"},
        "Origin elsewhere, Referer here": {"Origin": "null", "Referer": f"{ORIGIN}/"},
    }
    for why, headers in elsewhere.items():
        resp = client.post("/api/runs/fakerun/stop", headers=headers)
        assert resp.status_code == 403, why
        assert "Origin" in error_of(resp) and "Bearer" in error_of(resp)
    for path in ("/api/runs/fakerun/jobs/1/cancel", "/api/runs", "/api/target", "/api/validate"):
        resp = client.post(path, json={"kind": "local", "config": {}}, headers=elsewhere["null"])
        assert resp.status_code == 403, path
    for method in ("put", "patch", "delete"):
        resp = getattr(client, method)("/api/runs/fakerun/stop")
        assert resp.status_code == 403, method
    assert pid_alive(running.pid)
    # Reading needs no Origin (a page's GETs, links opened in a new tab).
    assert client.get("/api/runs/fakerun/files").status_code == 200
    # From the page itself (fetch sends Origin on a POST), the run is stopped.
    resp = client.post("/api/runs/fakerun/stop", headers={"Origin": ORIGIN})
    assert resp.status_code == 200 and resp.get_json() == {"run": "fakerun", "stopping": True}
    assert ended(running) and running.returncode == -signal.SIGTERM


def test_the_referer_stands_in_for_a_missing_origin(client, running):
    cookie(client)
    resp = client.post("/api/runs/fakerun/stop", headers={"Referer": f"{ORIGIN}/runs/fakerun"})
    assert resp.status_code == 200, resp.data
    assert ended(running)


def test_the_bearer_header_needs_no_origin(client, running):
    """A script with the token is not a page of another site: no Origin is needed."""
    resp = client.post("/api/runs/fakerun/stop", headers=BEARER)
    assert resp.status_code == 200, resp.data
    assert ended(running)
    # A wrong Bearer with a right cookie is still wrong; a missing token is 401, not 403.
    cookie(client)
    resp = client.post("/api/runs/fakerun/stop", headers={"Authorization": "Bearer nope"})
    assert resp.status_code == 401
    client.delete_cookie(COOKIE)
    assert client.post("/api/runs/fakerun/stop").status_code == 401


def test_state_changing_endpoints_require_their_json_object_body(app, client):
    spy = app.extensions["llmsweep"].target = Spy()
    cookie(client)
    here = {"Origin": ORIGIN}
    for path in ("/api/validate", "/api/target", "/api/runs"):
        sent = {
            "no body": {},
            "text/plain": {"data": '{"config": {}, "kind": "local"}', "content_type": "text/plain"},
            "a form": {"data": {"config": "x", "kind": "local"}},
            "a JSON list": {"json": [1, 2]},
            "JSON null": {"data": "null", "content_type": "application/json"},
            "not JSON": {"data": "{", "content_type": "application/json"},
        }
        for why, kwargs in sent.items():
            resp = client.post(path, headers=here, **kwargs)
            assert resp.status_code == 400, (path, why)
            assert "JSON object" in error_of(resp), (path, why)
    assert spy.calls == []
    # The same, well formed, gets through to the target.
    resp = client.post("/api/validate", headers=here, json={"config": {}})
    assert spy.calls == [("validate", ())] and resp.status_code == 404


# -- 3. odd input is a 4xx with a reason, never a 5xx ---------------------------------------
def test_a_nul_in_a_path_or_run_name_is_a_400(client):
    for path in (
        "/api/runs/fakerun/files?path=a%00b",
        "/api/runs/fake%00run/files",
        "/api/runs/fake%00run/progress",
        "/api/runs/fakerun%00/queue",
        "/api/runs/fakerun%00/monitoring",
    ):
        resp = client.get(path, headers=BEARER)
        assert resp.status_code == 400, path
        assert "NUL" in error_of(resp) or "invalid run name" in error_of(resp), path
    for path in ("/api/runs/fakerun/jobs/1%00/cancel", "/api/runs/fake%00run/stop"):
        resp = client.post(path, headers=BEARER)
        assert resp.status_code == 400, path
        error_of(resp)
    bodies = {
        "/api/target": [
            {"kind": "local", "workdir": "a\0b"},
            {"kind": "local", "workdir": ["x"]},
            {"kind": "ssh", "host": "a\0b"},
            {"kind": "ssh", "host": "h", "port": [22]},
            {"kind": "ssh", "host": "h", "port": float("inf")},
            {"kind": "ssh", "host": "h", "key_file": "k\0"},
        ],
        "/api/runs": [
            {"config": {"run": "fakerun"}, "profile": "default\0"},
            {"config": {"run": "fakerun"}, "profile": "\ud800"},
        ],
    }
    for path, sent in bodies.items():
        for data in sent:
            raw = json.dumps(data)  # "\ud800" as JSON's own escape, as a client may send
            resp = client.post(path, data=raw, content_type="application/json", headers=BEARER)
            assert resp.status_code == 400, (path, data)
            error_of(resp)
    for page in ("/runs/fakerun/view?path=a%00b", "/runs/fakerun/download?path=%00"):
        assert client.get(page, headers=BEARER).status_code == 400, page
    assert client.get("/runs/fake%00run/report", headers=BEARER).status_code == 400


def test_a_token_that_is_not_ascii_is_a_401(client):
    for token in ("é", "tøken", TOKEN + "\xff"):
        resp = client.get("/api/runs", headers={"Authorization": f"Bearer {token}"})
        assert resp.status_code == 401, token
        error_of(resp)
        client.set_cookie(COOKIE, token)
        resp = client.get("/api/runs")
        assert resp.status_code == 401, token
        client.delete_cookie(COOKIE)
        assert client.get(f"/?token={quote(token)}").status_code == 401


def test_crlf_in_the_token_links_query_stays_in_the_query(client):
    resp = client.get(f"/runs/fakerun?token={TOKEN}&next=a%0D%0ASet-Cookie:%20evil=1&x=%E2%9C%93")
    assert resp.status_code == 302
    location = resp.headers["Location"]
    assert "\r" not in location and "\n" not in location
    assert location == "/runs/fakerun?next=a%0D%0ASet-Cookie%3A+evil%3D1&x=%E2%9C%93"
    [set_cookie] = resp.headers.getlist("Set-Cookie")
    assert set_cookie.startswith(f"{COOKIE}={TOKEN};")
    assert client.get(location).status_code == 200


def test_a_download_whose_name_a_header_cannot_carry(client, workdir):
    (workdir / "results" / "fakerun" / "名前.txt").write_text("x")
    resp = client.get(f"/runs/fakerun/download?path={quote('名前.txt')}", headers=BEARER)
    assert resp.status_code == 200
    disposition = resp.headers["Content-Disposition"]
    disposition.encode("latin-1")  # what a WSGI server sends
    assert disposition == "attachment; filename=\"__.txt\"; filename*=UTF-8''%E5%90%8D%E5%89%8D.txt"


# The property test runs the remote's operations in this process (hundreds of requests in
# seconds), as the subprocess would: its arguments through the same encoding exec uses.
FAKE_PID = int(Path("/proc/sys/kernel/pid_max").read_text()) + 1  # never a live process


class InProcess(LocalTarget):
    """The real remote operations, run here instead of in a subprocess."""

    def call(self, op, *args, stdin=b"", timeout=120, **options):
        argv = [os.fsdecode(os.fsencode(a)) for a in self.argv(op, *args, **options)]
        stdout = io.TextIOWrapper(io.BytesIO(), encoding="utf-8")
        saved = sys.stdin, sys.stdout
        sys.stdin, sys.stdout = io.TextIOWrapper(io.BytesIO(stdin), encoding="utf-8"), stdout
        try:
            status = remote.main(argv[3:])  # an exception: a 500 in the subprocess, here a failure
        finally:
            stdout.flush()
            sys.stdin, sys.stdout = saved
        return Result(status, stdout.buffer.getvalue(), "")


def checked_user_text(*values):
    for value in values:
        assert value is None or (isinstance(value, str) and "\0" not in value), value


API_ROUTES = [
    ("GET", "/api/defaults"),
    ("POST", "/api/validate"),
    ("GET", "/api/target"),
    ("POST", "/api/target"),
    ("GET", "/api/runs"),
    ("POST", "/api/runs"),
    ("GET", "/api/runs/{run}/progress"),
    ("GET", "/api/runs/{run}/queue"),
    ("POST", "/api/runs/{run}/jobs/{job}/cancel"),
    ("POST", "/api/runs/{run}/stop"),
    ("GET", "/api/runs/{run}/files"),
    ("GET", "/api/runs/{run}/monitoring"),
    ("GET", "/api/runs/{run}/charts"),
]
PAGE_ROUTES = [
    ("GET", "/"),
    ("GET", "/runs/{run}"),
    ("GET", "/runs/{run}/view"),
    ("GET", "/runs/{run}/download"),
    ("GET", "/runs/{run}/report"),
]

JSON = json_values(20)
RUN = st.one_of(
    st.sampled_from(["fakerun", "demo", "-h", "--workdir=x", "a\0b", "fakerun\n", "..", "é"]),
    st.from_regex(r"[A-Za-z0-9][A-Za-z0-9._-]{0,12}", fullmatch=True),
    st.text(max_size=20),
)
JOB = st.one_of(st.sampled_from(["1", "12_3", "-h", "1\0", "1\n"]), st.text(max_size=10))
QUERY_TEXT = st.one_of(ANY_TEXT, st.sampled_from(["", "mine.txt", "-h", "../x", "a\0b", "é\r\n"]))

HEADER_TEXT = st.text(
    st.characters(min_codepoint=0x20, max_codepoint=0xFF, exclude_characters="\x7f")
    | st.just("\t"),
    max_size=30,
)


def mostly(usual, other, odds: int = 4):
    """`usual` in `odds` - 1 examples out of `odds`, else `other` (so that most requests get
    past the token to the operation)."""
    return st.integers(1, odds).flatmap(lambda i: usual if i < odds else other)


QUERY = mostly(
    st.one_of(
        st.builds(lambda p: urlencode({"path": p}), QUERY_TEXT),
        st.builds(lambda b: quote_from_bytes(b, safe="=&%+;"), st.binary(max_size=30)),
        st.builds(lambda b: "path=" + quote_from_bytes(b), st.binary(max_size=30)),
    ),
    st.one_of(  # the token link, with whatever else its query has
        st.builds(
            lambda d: urlencode({**d, "token": TOKEN}),
            st.dictionaries(st.sampled_from(["path", "next", "x"]), QUERY_TEXT, max_size=3),
        ),
        st.builds(lambda t: urlencode({"token": t}), HEADER_TEXT),
    ),
)
ORIGINS = st.one_of(
    st.just(ORIGIN), st.sampled_from(["null", "http://localhost:1", ""]), HEADER_TEXT
)
HEADERS = mostly(
    st.one_of(st.just(BEARER), st.just({"cookie": TOKEN, "Origin": ORIGIN})),
    st.one_of(
        st.builds(lambda o: {"cookie": TOKEN, "Origin": o}, ORIGINS),
        st.builds(lambda r: {"cookie": TOKEN, "Referer": r}, ORIGINS),
        st.builds(lambda t: {"Authorization": f"Bearer {t}"}, HEADER_TEXT),
        st.builds(lambda t: {"Authorization": t}, HEADER_TEXT),
        st.builds(lambda t: {"cookie": t}, HEADER_TEXT),
        st.just({}),
    ),
)
CONFIG = st.one_of(
    JSON,
    st.dictionaries(
        st.sampled_from(["run", "models", "sweep", "workload", "infrastructure", "engine", "x"]),
        st.one_of(RUN, JSON),
        max_size=4,
    ),
    st.builds(lambda run: {"run": run}, RUN),
)
FIELDS = st.one_of(st.sampled_from(["local", "ssh", "h", "22", "", "-x", "a\0b"]), JSON)
LAUNCH = st.builds(  # a config that may well launch (a launch here starts nothing)
    lambda run, profile: {"config": {"run": run}, "profile": profile},
    RUN,
    st.sampled_from(["default", "slurm", "nope", "-h", "--", None]),
)
BODY = st.one_of(
    LAUNCH,
    st.fixed_dictionaries({"config": CONFIG}, optional={"profile": st.one_of(JSON, RUN)}),
    st.fixed_dictionaries(
        {"kind": st.one_of(st.sampled_from(["local", "ssh"]), JSON)},
        optional={
            k: FIELDS
            for k in ("workdir", "host", "port", "user", "key_file", "workflow", "python", "upload")
        },
    ),
    JSON,
)
RAW_BODY = st.one_of(
    st.builds(lambda b: (json.dumps(b), "application/json"), BODY),
    st.tuples(st.binary(max_size=40), st.sampled_from(["application/json", "text/plain"])),
    st.just((None, None)),
)


def test_no_input_to_any_route_is_a_5xx(app, workdir, monkeypatch):
    """Generated run names, job ids, paths and query strings, tokens and Origins in the
    headers, and JSON bodies of any shape, to every route of the API and the pages: a 4xx
    (or 2xx/3xx), never a 5xx. The target is the real remote operations, in this process,
    on a working folder of its own; a launch starts nothing."""
    rules = {(m, r.rule) for r in app.url_map.iter_rules() for m in r.methods} - {
        (m, r.rule) for r in app.url_map.iter_rules() for m in ("HEAD", "OPTIONS")
    }
    routes = {(m, p.replace("{run}", "<run>").replace("{job}", "<job>")) for m, p in API_ROUTES}
    assert {x for x in rules if x[1].startswith("/api")} == routes  # every API route is here
    monkeypatch.setattr(launch, "_start_supervisor", lambda *a: type("P", (), {"pid": FAKE_PID}))
    # No SLURM: its commands would wait for a controller, or find another user's queue.
    monkeypatch.setattr(slurm, "available", lambda: False)
    monkeypatch.setattr(slurm, "cancel", lambda job: pytest.fail(f"scancel {job}"))

    def local(workflow, workdir_):
        checked_user_text(workdir_)
        return InProcess(workflow, str(workdir))

    def ssh(host, port, **fields):
        checked_user_text(host, *fields.values())
        assert isinstance(port, int)
        target = InProcess(str(ROOT), str(workdir))
        target.upload = lambda _: 0
        return target

    monkeypatch.setattr(api, "LocalTarget", local)
    monkeypatch.setattr(api, "SshTarget", ssh)
    app.extensions["llmsweep"].target = InProcess(str(ROOT), str(workdir))
    app.testing = True  # an exception in a view fails the test with its traceback
    client = app.test_client()  # warm: the first validation imports the schema's code
    assert client.post("/api/validate", json={"config": {}}, headers=BEARER).status_code == 200

    @settings(max_examples=400, **BOUNDED)
    @given(
        route=st.sampled_from(API_ROUTES + PAGE_ROUTES),
        run=RUN,
        job=JOB,
        query=QUERY,
        headers=HEADERS,
        body=RAW_BODY,
    )
    def request_anything(route, run, job, query, headers, body):
        method, template = route
        path = template.format(run=quote(run, safe=""), job=quote(job, safe=""))
        data, content_type = body if method == "POST" else (None, None)
        client = app.test_client()  # only the cookie the example sends
        headers = dict(headers)
        if "cookie" in headers:
            client.set_cookie(COOKIE, headers.pop("cookie"))
        resp = client.open(
            path,
            method=method,
            query_string=query,
            headers=headers,
            data=data,
            content_type=content_type,
        )
        event(f"{method} {template}: {resp.status_code}")  # --hypothesis-show-statistics
        assert resp.status_code < 500, (resp.status_code, resp.data[:500])
        if resp.status_code in (400, 401, 403) and path.startswith("/api"):
            error_of(resp)

    request_anything()
