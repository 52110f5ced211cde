"""The run's secret: its file, the headers that carry it, what accepts it, and the monitoring
services' web configuration (checked with promtool, as Prometheus reads it)."""

import base64
import os
import stat
import subprocess
import threading

import bcrypt
import yaml
from hypothesis import given
from hypothesis import strategies as st

from llmsweep import secret


def mode(path) -> int:
    return stat.S_IMODE(os.stat(path).st_mode)


def test_the_secret_file_is_made_once_with_mode_0600(tmp_path):
    path = tmp_path / "services" / "secret"
    secret.ensure(path)
    token = secret.read(path)
    assert len(token) >= 40 and mode(path) == 0o600
    os.chmod(path, 0o644)
    secret.ensure(path)  # a re-run keeps the token and the file's mode comes back
    assert secret.read(path) == token and mode(path) == 0o600
    assert secret.read(secret.ensure(tmp_path / "other")) != token


def test_processes_racing_to_make_it_agree_on_one_token(tmp_path):
    path = tmp_path / "secret"
    threads = [threading.Thread(target=secret.ensure, args=(path,)) for _ in range(8)]
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    assert len(path.read_text()) >= 40 and "\n" not in path.read_text()


def test_accepts_the_token_as_bearer_or_basic_and_nothing_else():
    token = "s3cret-token"
    assert secret.accepts(token, f"Bearer {token}")
    assert secret.accepts(token, secret.basic(token)["Authorization"])
    assert secret.accepts(token, secret.bearer(token)["Authorization"])
    other_user = base64.b64encode(f"admin:{token}".encode()).decode()
    for header in (
        None,
        "",
        "Bearer",
        f"Bearer {token}x",
        f"Token {token}",
        f"Basic {other_user}",
        "Basic !!!",
        "Basic " + base64.b64encode(b"\xff\xfe").decode(),
        secret.basic("wrong")["Authorization"],
    ):
        assert not secret.accepts(token, header), header
    assert not secret.accepts("", "Bearer ")  # no token: nothing is accepted


@given(st.text(max_size=200))
def test_no_header_value_raises_or_passes_without_the_token(header):
    accepted = secret.accepts("the-token", header)
    assert accepted is False or (accepted is True and "the-token" in header)


def test_headers_of_a_spec_or_lease(tmp_path):
    path = secret.create_file(tmp_path / "secret", "tok")
    assert secret.headers_of({"auth": "bearer", "secret_file": str(path)}) == {
        "Authorization": "Bearer tok"
    }
    assert secret.headers_of({"auth": "basic", "secret_file": str(path)}) == secret.basic("tok")
    assert secret.headers_of({"auth": None, "secret_file": str(path)}) == {}
    assert secret.headers_of({"url": "http://external"}) == {}  # a server llmsweep did not start


def test_the_web_configuration_holds_a_hash_that_promtool_accepts(tmp_path):
    token_file = secret.ensure(tmp_path / "secret")
    token = secret.read(token_file)
    config = secret.ensure_web_config(tmp_path / "web-config.yml", token_file)
    assert mode(config) == 0o600 and token not in config.read_text()
    hashed = yaml.safe_load(config.read_text())["basic_auth_users"][secret.USER]
    assert bcrypt.checkpw(token.encode(), hashed.encode())
    check = subprocess.run(["promtool", "check", "web-config", str(config)], capture_output=True)
    assert check.returncode == 0, check.stdout + check.stderr
    before = config.read_text()
    assert secret.ensure_web_config(config, token_file).read_text() == before  # kept
    token_file.write_text("a-new-token")  # the secret replaced: the hash follows it
    hashed = yaml.safe_load(secret.ensure_web_config(config, token_file).read_text())
    assert bcrypt.checkpw(b"a-new-token", hashed["basic_auth_users"][secret.USER].encode())


def test_the_guard_refuses_without_the_token_before_the_application_runs():
    called = []

    def app(environ, start_response):
        called.append(environ["PATH_INFO"])
        start_response("200 OK", [("Content-Type", "text/plain")])
        return [b"ok"]

    guarded = secret.guard(app, "tok")
    seen = {}

    def start_response(status, headers):
        seen["status"], seen["headers"] = status, dict(headers)

    body = b"".join(guarded({"PATH_INFO": "/metrics"}, start_response))
    assert seen["status"].startswith("401") and b"token" in body and not called
    assert seen["headers"]["Content-Type"] == "application/json"
    env = {"PATH_INFO": "/metrics", "HTTP_AUTHORIZATION": "Bearer tok"}
    assert b"".join(guarded(env, start_response)) == b"ok" and called == ["/metrics"]
