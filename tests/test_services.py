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

import pytest

from conftest import alive_pids
from llmsweep import config
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
    assert http_ok(first["url"] + "/-/ready")
    again = ctl.ensure(definitions.pushgateway(cfg, paths))
    assert again["status"] == "reused"
    assert again["instance"] == first["instance"] and again["url"] == first["url"]
    target = json.loads((paths.targets / "pushgateway.json").read_text())
    assert target[0]["targets"] == [first["url"].removeprefix("http://")]
    assert target[0]["labels"]["run"] == "svc"
    assert ctl.stop_all() == ["pushgateway"]
    assert not pid_alive(first["pid"])
    assert not http_ok(first["url"] + "/-/ready")
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
    push_summary(gw["url"], {"run": "svc", "model": "m:1", "clients": 4}, summarize(records))

    def pushed():
        q = "llmsweep_point_output_token_throughput_tps"
        _, body = http_json(f"{prom['url']}/api/v1/query?query={q}")
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


@pytest.mark.e2e
def test_exporters_run_beside_a_service_and_prometheus_scrapes_them(env):
    cfg, paths, ctl = env
    cfg["monitoring"]["scrape_interval_s"] = 1
    spec = definitions.pushgateway(cfg, paths)
    spec["sidecars"] = definitions.exporters(cfg, paths, "pushgateway", "pushgateway", gpu=True)
    gw = ctl.ensure(spec)
    prom = ctl.ensure(definitions.prometheus(cfg, paths))
    node = json.loads((paths.targets / "service-node-pushgateway.json").read_text())[0]
    assert node["labels"]["role"] == "pushgateway" and node["labels"]["node"]
    assert node["targets"][0].startswith("127.0.0.1:")

    def scraped(query):
        def check():
            _, body = http_json(f"{prom['url']}/api/v1/query?query={query}")
            return body["data"]["result"]

        return wait_until(check, 60, f"{query} in Prometheus", max_delay=1)

    assert scraped('node_load1{exporter="node",role="pushgateway"}')
    gpus = scraped('llmsweep_gpus{exporter="gpu"}')
    assert gpus[0]["value"][1] == "0"  # no GPU here, and it says so

    def targets(role):
        _, body = http_json(f"{prom['url']}/api/v1/targets")
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
