"""The service controller's local backend with the real Pushgateway and Prometheus (e2e);
the wrapper's failures before any service starts are fast (the controller's decisions are in
test_controller)."""

import json
import os
import signal
import socket
import subprocess
import sys
import time
import urllib.error
import urllib.request

import pytest

from conftest import alive_pids
from llmsweep import config, secret
from llmsweep.paths import RunPaths
from llmsweep.procs import pid_alive, start_time
from llmsweep.services import definitions
from llmsweep.services.controller import Controller, ServiceError
from llmsweep.util import http_json, http_ok, wait_until


@pytest.fixture()
def env(tmp_path, no_owner):
    cfg = config.load(overrides={"run": "svc", "services": {"ready_timeout_s": 30}})
    paths = RunPaths("svc", tmp_path / "results")
    ctl = Controller(paths, owner={})
    yield cfg, paths, ctl
    ctl.stop_all()


@pytest.mark.e2e
def test_ensure_starts_then_reuses_and_stop_all_stops(env):
    cfg, paths, ctl = env
    first = ctl.ensure(definitions.pushgateway(cfg, paths))
    assert first["status"] == "started"
    auth = secret.headers_of(first)
    assert http_ok(first["url"] + "/-/ready", headers=auth)
    again = ctl.ensure(definitions.pushgateway(cfg, paths))
    assert again["status"] == "reused"
    assert again["instance"] == first["instance"] and again["url"] == first["url"]
    target = json.loads((paths.targets / "pushgateway.json").read_text())
    assert target[0]["targets"] == [first["url"].removeprefix("http://")]
    assert target[0]["labels"]["run"] == "svc"
    assert ctl.stop_all() == ["pushgateway"]
    assert not pid_alive(first["pid"])
    assert not http_ok(first["url"] + "/-/ready", headers=auth)
    wait_until(lambda: not (paths.targets / "pushgateway.json").exists(), 10, "target removal")


@pytest.mark.e2e
def test_prometheus_scrapes_pushgateway_with_honor_labels(env):
    cfg, paths, ctl = env
    cfg["monitoring"]["scrape_interval_s"] = 1
    gw = ctl.ensure(definitions.pushgateway(cfg, paths))
    prom = ctl.ensure(definitions.prometheus(cfg, paths))
    from llmsweep.loadgen.stats import summarize
    from llmsweep.metrics.push import push_summary

    records = [
        {
            "start": 1.0,
            "ttft_s": 0.1,
            "e2e_s": 1.0,
            "itl_s": [0.1],
            "tpot_s": 0.9,
            "output_tokens": 2,
            "output_tokens_source": "usage",
            "input_tokens": 3,
            "ok": True,
            "error_kind": None,
        }
    ]
    grouping = {"run": "svc", "model": "m:1", "clients": 4}
    with pytest.raises(urllib.error.HTTPError) as refused:  # without the run's token
        push_summary(gw["url"], grouping, summarize(records))
    assert refused.value.code == 401
    push_summary(gw["url"], grouping, summarize(records), secret.headers_of(gw))

    def pushed():
        q = "llmsweep_point_output_token_throughput_tps"
        _, body = http_json(
            f"{prom['url']}/api/v1/query?query={q}", headers=secret.headers_of(prom)
        )
        result = body["data"]["result"]
        return result and result[0]["metric"]

    labels = wait_until(pushed, 60, "the pushed summary in Prometheus", max_delay=1)
    # honor_labels keeps the pushed grouping key and job (no exported_job).
    assert labels["job"] == "llmsweep_point"
    assert labels["run"] == "svc" and labels["model"] == "m:1" and labels["clients"] == "4"
    assert "exported_job" not in labels


def test_a_taken_fixed_port_is_reported_and_never_reused(env):
    cfg, paths, ctl = env
    with socket.socket() as taken:
        taken.bind(("127.0.0.1", 0))
        taken.listen()
        port = taken.getsockname()[1]
        cfg["services"]["ports"]["pushgateway"] = port
        with pytest.raises(ServiceError) as err:
            ctl.ensure(definitions.pushgateway(cfg, paths))
    message = str(err.value)
    assert f"port {port}" in message and "already in use" in message
    assert "services.ports.pushgateway" in message


@pytest.mark.e2e
def test_changed_spec_restarts_and_dead_service_restarts(env):
    cfg, paths, ctl = env
    first = ctl.ensure(definitions.pushgateway(cfg, paths))
    os.killpg(first["pid"], signal.SIGKILL)
    wait_until(lambda: not pid_alive(first["pid"]), 10, "the kill")
    second = ctl.ensure(definitions.pushgateway(cfg, paths))
    assert second["status"] == "started" and second["instance"] != first["instance"]
    changed = definitions.pushgateway(cfg, paths)
    changed["argv"].append("--log.level=debug")
    third = ctl.ensure(changed)
    assert third["status"] == "started"
    assert not pid_alive(second["pid"])


@pytest.mark.e2e
def test_prune_drops_leases_of_dead_services_only(env):
    cfg, paths, ctl = env
    gw = ctl.ensure(definitions.pushgateway(cfg, paths))
    prom = ctl.ensure(definitions.prometheus(cfg, paths))
    live = paths.leases / "pushgateway" / "m" / "c1.json"
    dead = paths.leases / "prometheus" / "m" / "c1.json"
    for lease, data in ((live, gw), (dead, prom)):
        lease.parent.mkdir(parents=True, exist_ok=True)
        lease.write_text(json.dumps(data))
    os.killpg(prom["pid"], signal.SIGKILL)
    wait_until(lambda: not pid_alive(prom["pid"]), 10, "the kill")
    assert ctl.prune() == [dead]
    assert live.exists() and not dead.exists()


@pytest.mark.e2e
def test_services_stop_when_their_owner_dies(tmp_path, no_owner):
    cfg = config.load(overrides={"run": "own"})
    paths = RunPaths("own", tmp_path / "results")
    owner = subprocess.Popen([sys.executable, "-c", "import time; time.sleep(300)"])
    try:
        ctl = Controller(paths, owner={"pid": owner.pid, "pid_start": start_time(owner.pid)})
        gw = ctl.ensure(definitions.pushgateway(cfg, paths))
        assert pid_alive(gw["pid"])
    finally:
        owner.kill()
        owner.wait()
    wait_until(lambda: not alive_pids([gw["pid"]]), 30, "the service to notice its owner died")


@pytest.mark.e2e
def test_a_service_on_another_host_than_its_driver_follows_the_driver_heartbeat(tmp_path, no_owner):
    """The driver's process cannot be seen from another host: its heartbeat file on the
    shared filesystem stands for it. Here the owner names another host, so the service
    cannot check the process and must go by the heartbeat alone."""
    cfg = config.load(overrides={"run": "far", "services": {"owner_timeout_s": 15}})
    paths = RunPaths("far", tmp_path / "results")
    heartbeat = tmp_path / "driver.heartbeat"
    heartbeat.touch()
    owner = {
        "pid": 1,
        "pid_start": "0",
        "host": "login-node-elsewhere",
        "heartbeat": str(heartbeat),
    }
    gw = Controller(paths, owner=owner).ensure(definitions.pushgateway(cfg, paths))
    try:
        beats_until = time.monotonic() + 20  # longer than owner_timeout_s: beats keep it
        while time.monotonic() < beats_until:
            heartbeat.touch()
            assert pid_alive(gw["pid"]), "stopped although its driver's heartbeat was fresh"
            time.sleep(1)
        stopped_beating = time.monotonic()
        wait_until(lambda: not alive_pids([gw["pid"]]), 60, "the service to notice the silence")
        assert time.monotonic() - stopped_beating < 15 + 10
        log = (paths.service_dir("pushgateway") / "service.log").read_text()
        assert "the workflow that owns this service is gone" in log
    finally:
        Controller(paths, owner={}).stop_all()


@pytest.mark.e2e
def test_idle_service_stops_itself(tmp_path, no_owner):
    cfg = config.load(overrides={"run": "idle", "services": {"idle_timeout_s": 2}})
    paths = RunPaths("idle", tmp_path / "results")
    gw = Controller(paths, owner={}).ensure(definitions.pushgateway(cfg, paths))
    wait_until(lambda: not pid_alive(gw["pid"]), 30, "the idle watchdog")
    assert "no lease renewed" in (paths.service_dir("pushgateway") / "service.log").read_text()


def test_a_service_that_dies_at_start_fails_fast_with_its_log(env, tmp_path):
    cfg, paths, ctl = env
    spec = definitions.pushgateway(cfg, paths)
    spec["argv"] = [sys.executable, "-c", "import sys; print('boom: bad flag'); sys.exit(4)"]
    t0 = time.monotonic()
    with pytest.raises(ServiceError, match="boom: bad flag"):
        ctl.ensure(spec)
    assert time.monotonic() - t0 < 20


@pytest.mark.e2e
def test_cli_status_and_stop_all(env, tmp_path):
    cfg, paths, ctl = env
    gw = ctl.ensure(definitions.pushgateway(cfg, paths))
    cli = [sys.executable, "-m", "llmsweep.cli", "--results", str(paths.root.parent), "services"]
    out = subprocess.run(cli + ["status"], capture_output=True, text=True, check=True).stdout
    row = json.loads(out.splitlines()[0])
    assert row["key"] == "pushgateway" and row["state"] == "RUNNING" and row["url"] == gw["url"]
    out = subprocess.run(cli + ["stop-all"], capture_output=True, text=True, check=True).stdout
    assert "stopped svc/pushgateway" in out
    assert not pid_alive(gw["pid"])


def monitored_pushgateway(cfg: dict, paths, ctl) -> tuple[dict, dict]:
    """The Pushgateway with its node and GPU exporters beside it, and Prometheus scraping
    every second: their leases."""
    cfg["monitoring"]["scrape_interval_s"] = 1
    spec = definitions.pushgateway(cfg, paths)
    spec["sidecars"] = definitions.exporters(cfg, paths, "pushgateway", "pushgateway", gpu=True)
    return ctl.ensure(spec), ctl.ensure(definitions.prometheus(cfg, paths))


@pytest.mark.e2e
def test_exporters_run_beside_a_service_and_prometheus_scrapes_them(env):
    cfg, paths, ctl = env
    gw, prom = monitored_pushgateway(cfg, paths, ctl)
    node = json.loads((paths.targets / "service-node-pushgateway.json").read_text())[0]
    assert node["labels"]["role"] == "pushgateway" and node["labels"]["node"]
    assert node["targets"][0].startswith("127.0.0.1:")

    auth = secret.headers_of(prom)

    def scraped(query):
        def check():
            _, body = http_json(f"{prom['url']}/api/v1/query?query={query}", headers=auth)
            return body["data"]["result"]

        return wait_until(check, 60, f"{query} in Prometheus", max_delay=1)

    assert scraped('node_load1{exporter="node",role="pushgateway"}')
    gpus = scraped('llmsweep_gpus{exporter="gpu"}')
    assert gpus[0]["value"][1] == "0"  # no GPU here, and it says so

    def targets(role):
        _, body = http_json(f"{prom['url']}/api/v1/targets", headers=auth)
        return [t for t in body["data"]["activeTargets"] if t["labels"].get("role") == role]

    assert {t["labels"].get("exporter") for t in targets("pushgateway")} >= {"node", "gpu"}
    inst = ctl.instance("pushgateway")
    ctl.backend_of(inst).stop(inst)  # the service alone; Prometheus goes on
    wait_until(lambda: not targets("pushgateway"), 60, "its targets to leave Prometheus", 1)
    ctl.stop_all()
    assert not pid_alive(gw["pid"])
    assert not (paths.targets / "service-node-pushgateway.json").exists()
    out = subprocess.run(
        ["pgrep", "-f", f"node-exporter.*{node['targets'][0]}"], capture_output=True, text=True
    )
    assert out.stdout.strip() == ""


@pytest.mark.e2e
def test_the_monitoring_services_are_the_runs_alone(env):
    """Prometheus, the Pushgateway and the exporters answer only with the run's token (a
    0600 file, never on a command line); Prometheus's own scrapes carry it (every target
    up)."""
    cfg, paths, ctl = env
    gw, prom = monitored_pushgateway(cfg, paths, ctl)
    token = secret.read(paths.secret)
    assert os.stat(paths.secret).st_mode & 0o777 == 0o600
    assert os.stat(paths.web_config).st_mode & 0o777 == 0o600
    assert token not in paths.web_config.read_text()  # a bcrypt hash only
    exporters = [
        json.loads(p.read_text())[0]["targets"][0] for p in paths.targets.glob("service-*-*.json")
    ]
    assert len(exporters) == 2  # node and GPU
    urls = [gw["url"] + "/metrics", prom["url"] + "/-/ready"]
    urls += [f"http://{address}/metrics" for address in exporters]
    wrong = secret.basic("not-the-token")
    for url in urls:
        for headers in ({}, wrong, {"Authorization": f"Bearer {token}x"}):
            with pytest.raises(urllib.error.HTTPError) as refused:
                urllib.request.urlopen(urllib.request.Request(url, headers=headers), timeout=10)
            assert refused.value.code == 401, url
        assert http_ok(url, headers=secret.basic(token)), url
    for pid in (gw["pid"], prom["pid"]):  # what ps shows of each process
        cmdline = open(f"/proc/{pid}/cmdline").read()
        assert token not in cmdline and "--web.config.file=" in cmdline

    def all_up():
        _, body = http_json(f"{prom['url']}/api/v1/targets", headers=secret.headers_of(prom))
        active = body["data"]["activeTargets"]
        jobs = {t["labels"]["job"] for t in active}
        healthy = all(t["health"] == "up" for t in active)
        return healthy and {"pushgateway", "llmsweep"} <= jobs and len(active) >= 4 and active

    active = wait_until(all_up, 60, "every target scraped with the token", max_delay=1)
    assert {t["labels"].get("exporter") for t in active} >= {"node", "gpu"}


@pytest.mark.e2e
def test_the_llm_server_and_client_service_are_the_runs_alone(env):
    """The real llama-server and the client service under gunicorn, started as a deployment
    starts them: each refuses a request without the run's token (401) and serves one with
    it; the token is on neither command line."""
    from llmsweep import deployments
    from llmsweep.engines import llama_cpp

    cfg, paths, ctl = env
    cfg["monitoring"]["enabled"] = False
    cfg["engines"]["llama_cpp"].update(ctx_size=512, parallel=1)
    (dep,) = deployments.expand(cfg)
    llm = ctl.ensure(definitions.llm_server(cfg, paths, dep, cpus=2))
    client = ctl.ensure(definitions.client_service(cfg, paths, dep, llm["url"]))
    token = secret.read(paths.secret)
    assert llm["auth"] == client["auth"] == "bearer"
    body = {"model": dep["model"], "prompt": "Hello", "max_tokens": 2}
    for headers in ({}, secret.bearer("not-the-token")):
        assert http_json(llm["url"] + "/v1/completions", body, 60, headers=headers)[0] == 401
        assert http_json(llm["url"] + "/metrics", headers=headers)[0] == 401
        assert http_json(client["url"] + "/health", headers=headers)[0] == 401
        status, reply = http_json(client["url"] + "/query", {"prompt": "x"}, headers=headers)
        assert status == 401 and "token" in reply["error"]
    status, reply = http_json(
        llm["url"] + "/v1/completions", body, 60, headers=secret.bearer(token)
    )
    assert status == 200 and reply["choices"]
    assert llama_cpp.metadata(llm["url"], dep["model"], secret.bearer(token))["slots"] == 1
    status, reply = http_json(
        client["url"] + "/query", {"prompt": "x", "max_tokens": 2}, 60, headers=secret.basic(token)
    )
    assert status == 200 and reply["ok"], reply  # and the client service's own token upstream
    for lease in (llm, client):
        assert token not in open(f"/proc/{lease['pid']}/cmdline").read()
