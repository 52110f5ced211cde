"""The web front end on this machine: a real browser (Debian's Chromium, headless, driven by
Playwright) fills the wizard, launches a real sweep, watches it reach 100 % and opens the
report; the token, the file browser's confinement and field errors are checked too.
Screenshots go to tests/artifacts/."""

import json
import re
import urllib.error
import urllib.request

import pytest

from helpers import WebServer, chromium, collect_errors, stop_launched_runs
from llmsweep.util import wait_until


@pytest.fixture(scope="module")
def web(tmp_path_factory):
    workdir = tmp_path_factory.mktemp("web")
    server = WebServer(workdir)
    yield server, workdir
    assert server.stop() == 0, server.output()
    stop_launched_runs(workdir)


def http(
    url: str, token: str | None = None, method: str = "GET", body=None, headers: dict | None = None
):
    req = urllib.request.Request(url, method=method, headers=dict(headers or {}))
    if token:
        req.add_header("Authorization", f"Bearer {token}")
    if body is not None:
        req.data = json.dumps(body).encode()
        req.add_header("Content-Type", "application/json")
    try:
        with urllib.request.urlopen(req, timeout=60) as resp:
            return resp.status, resp.read(), resp.headers
    except urllib.error.HTTPError as exc:
        return exc.code, exc.read(), exc.headers


def test_every_request_needs_the_token(web):
    server, _ = web
    for path in ("/", "/api/defaults", "/runs/x", "/runs/x/view?path=a", "/static/wizard.js"):
        status, body, _ = http(server.base + path)
        assert status == 401, path
        assert json.loads(body)["error"].startswith("missing or wrong token"), path
        assert http(server.base + path, token="wrong")[0] == 401
    status, _, _ = http(server.base + "/api/runs", method="POST", body={"config": {}})
    assert status == 401
    assert http(server.base + "/api/defaults", token=server.token)[0] == 200
    # The address is the one it printed; a page cannot reach it under another name.
    status, _, _ = http(
        server.base + "/api/defaults", token=server.token, headers={"Host": "attacker.example:80"}
    )
    assert status == 400


def test_bad_api_input_gets_400_with_a_json_reason(web):
    server, _ = web
    for body in ([1, 2], {"config": "run: x"}, {"config": {"run": "../x"}}):
        status, text, _ = http(server.base + "/api/runs", server.token, "POST", body)
        assert status == 400 and json.loads(text)["error"], (body, text)
    status, text, _ = http(server.base + "/api/target", server.token, "POST", {"kind": "ftp"})
    assert status == 400 and "kind" in json.loads(text)["error"]


def shot(page, artifacts, name):
    path = artifacts / f"web-{name}.png"
    page.screenshot(path=str(path), full_page=True)
    assert path.stat().st_size > 5000
    return path


@pytest.mark.e2e
def test_browser_fills_the_form_launches_and_watches_the_sweep_to_the_report(web, artifacts):
    from playwright.sync_api import expect, sync_playwright

    server, workdir = web
    errors = []
    with sync_playwright() as p:
        browser = chromium(p)
        page = browser.new_page(viewport={"width": 1280, "height": 900})
        collect_errors(page, errors)
        page.on(
            "response", lambda r: errors.append(f"{r.status} {r.url}") if r.status >= 400 else None
        )
        page.goto(server.url)
        page.wait_for_selector("#wizard[data-ready]")  # defaults filled in
        expect(page.locator("#steps li.current")).to_have_text("Job")
        expect(page.locator("input[name=run]")).to_have_value("demo")
        page.fill("input[name=run]", "webrun")
        page.click("#next")
        expect(page.locator("#steps li.current")).to_have_text("Where")
        page.click("#connect")
        expect(page.locator("#target-status")).to_contain_text("connected: this machine")
        page.click("#next")
        page.click("#next")  # infrastructure: empty, the profile applies
        expect(page.locator("#steps li.current")).to_have_text("Service")
        expect(page.locator("input[name='models']")).to_have_value("gemma3-270m")  # defaults
        page.fill("input[name='sweep.clients']", "1, 2")
        # Long enough (some seconds a point) for the page's polls to see the run going.
        page.fill("input[name='sweep.requests_per_client']", "6")
        page.fill("input[name='workload.max_tokens']", "32")
        page.click("#next")
        expect(page.locator("#steps li.current")).to_have_text("Review")
        expect(page.locator("#review-summary")).to_have_text("2 sweep point(s).")
        expect(page.locator("#review-yaml")).to_contain_text("run: webrun")
        shot(page, artifacts, "1-review")
        with page.expect_download() as download:
            page.click("#save")
        saved = download.value.path().read_text()
        assert "run: webrun" in saved and "- 2" in saved
        page.click("#launch")
        page.wait_for_url("**/runs/webrun")
        expect(page.locator("#state")).to_have_text("running")
        # While the run goes, its Prometheus is linked (Grafana is not installed here).
        link = page.locator("a.monitoring-link")
        expect(link).to_contain_text("Prometheus: http://127.0.0.1:", timeout=120_000)
        shot(page, artifacts, "2-running")
        # The page polls while the run goes; it ends finished, or failed/stopped (then fail).
        ended = re.compile(r"^(finished|failed|stopped|error)")
        expect(page.locator("#state")).to_have_text(ended, timeout=300_000)
        expect(page.locator("#state")).to_have_text("finished")
        expect(page.locator("#percent")).to_have_text("100 %")
        expect(page.locator("#points")).to_have_text("2 of 2 points done")
        expect(page.locator("#queue-note")).not_to_be_empty()
        page.locator("#files a.dir", has_text="bench/").click()
        expect(page.locator("#cwd")).to_have_text("/bench")
        page.locator("#files a.dir", has_text="..").click()
        page.locator("#files a.dir", has_text="logs/").click()
        expect(page.locator("#cwd")).to_have_text("/logs")
        shot(page, artifacts, "3-finished")
        page.click("#report-link")
        page.wait_for_url("**/runs/webrun/report")
        expect(page.locator("h1")).to_have_text("llmsweep run webrun")
        images = page.evaluate("Array.from(document.images).map(i => i.naturalWidth)")
        assert len(images) >= 4 and all(w > 100 for w in images), images
        shot(page, artifacts, "4-report")
        browser.close()
    assert not errors, errors
    summary = workdir / "results" / "webrun" / "bench" / "gemma3-270m" / "c2" / "summary.json"
    assert json.loads(summary.read_text())["requests"] == 12
    launched = (workdir / "results" / "webrun" / "launch" / "config.yaml").read_text()
    assert "clients:\n  - 1\n  - 2" in launched


@pytest.mark.e2e
def test_file_browser_stays_in_the_run_and_escapes_content(web):
    server, workdir = web
    root = workdir / "results" / "webrun"
    wait_until(lambda: (root / "launch").is_dir(), 5, "the run of the browser test")
    (root / "note.txt").write_text("<script>alert(1)</script> & more")
    (root / "escape").symlink_to("/etc")
    (root / "passwd-link").symlink_to("/etc/passwd")
    (workdir / "results" / "secret.txt").write_text("not the run's")
    base = f"{server.base}/runs/webrun"
    status, body, headers = http(f"{base}/view?path=note.txt", server.token)
    assert status == 200
    assert (
        b"&lt;script&gt;alert(1)&lt;/script&gt; &amp; more" in body and b"<script>alert" not in body
    )
    status, body, headers = http(f"{base}/download?path=report/points.csv", server.token)
    assert status == 200 and headers["Content-Type"].startswith("text/csv")
    assert headers["Content-Disposition"] == 'attachment; filename="points.csv"'
    status, _, headers = http(f"{base}/download?path=report/throughput.png", server.token)
    assert status == 200 and headers["Content-Type"] == "image/png"
    for bad in (
        "../secret.txt",
        "../../etc/passwd",
        "/etc/passwd",
        "escape/passwd",
        "passwd-link",
        "bench/../../secret.txt",
        "%2e%2e/secret.txt",
    ):
        for kind in ("view", "download"):
            status, body, _ = http(f"{base}/{kind}?path={bad}", server.token)
            assert status in (400, 404), (kind, bad, status)
            assert b"root:" not in body and b"not the run's" not in body
        status, body, _ = http(f"{server.base}/api/runs/webrun/files?path={bad}", server.token)
        assert status in (400, 404), (bad, status)
    status, _, _ = http(f"{base}/view?path=no-such-file", server.token)
    assert status == 404
    status, body, _ = http(f"{server.base}/api/runs/webrun/files", server.token)
    names = [e["name"] for e in json.loads(body)["entries"]]
    assert "note.txt" in names and "escape" not in names and "passwd-link" not in names
    status, _, _ = http(f"{server.base}/runs/..%2F..%2Fetc/view?path=passwd", server.token)
    assert status in (400, 404)


def test_bad_form_input_is_shown_next_to_the_fields_and_nothing_is_launched(web, artifacts):
    from playwright.sync_api import expect, sync_playwright

    server, workdir = web
    with sync_playwright() as p:
        browser = chromium(p)
        page = browser.new_page(viewport={"width": 1280, "height": 900})
        page.goto(server.url)
        page.wait_for_selector("#wizard[data-ready]")
        page.fill("input[name=run]", "bad run/../x")
        page.click("#next")
        error = page.locator("input[name=run] ~ .field-error")
        expect(error).to_contain_text("run:")
        expect(page.locator("#steps li.current")).to_have_text("Job")  # stays on the step
        page.fill("input[name=run]", "badinput")
        page.click("#next")
        page.click("#next")
        page.fill("input[name='infrastructure.time']", "soon")
        page.click("#next")
        expect(page.locator("input[name='infrastructure.time'] ~ .field-error")).to_contain_text(
            "infrastructure.time"
        )
        page.fill("input[name='infrastructure.time']", "")
        page.click("#next")
        page.fill("input[name='sweep.clients']", "0, x")
        page.fill("input[name='workload.max_tokens']", "-3")
        page.click("#next")
        expect(page.locator("input[name='sweep.clients'] ~ .field-error").first).to_contain_text(
            "sweep.clients"
        )
        expect(page.locator("textarea[name='workload.prompt'] ~ .field-error")).to_have_count(0)
        expect(page.locator("input[name='workload.max_tokens'] ~ .field-error")).to_contain_text(
            "workload.max_tokens"
        )
        shot(page, artifacts, "5-field-errors")
        # Launching anyway (the API directly) is refused with the same errors.
        browser.close()
    status, body, _ = http(
        f"{server.base}/api/runs",
        server.token,
        "POST",
        {"config": {"run": "badinput", "sweep": {"clients": [0]}}},
    )
    assert status == 400
    assert json.loads(body)["errors"][0]["key"] == "sweep.clients"
    assert not (workdir / "results" / "badinput").exists()
