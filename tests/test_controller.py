"""The service controller's decisions, with an in-memory backend and a stubbed health check:
no process is started and nothing touches the network (the real services are in
test_services)."""

import json
import os
import sys
from pathlib import Path

import pytest

from llmsweep.paths import RunPaths
from llmsweep.procs import DRIVER_ENV, start_time
from llmsweep.services import controller
from llmsweep.services.controller import Controller, ServiceError, current_owner, spec_hash
from llmsweep.util import read_json, write_json_atomic


class FakeBackend:
    """The backend interface in memory. `start` plays the service wrapper: it reads the spec
    the controller wrote and, per `behaviour`, writes the endpoint file ('ready'), keeps
    running without one ('hang') or ends at once with a line in the log ('die')."""

    name = "fake"
    poll_max_delay = 0.01

    def __init__(self, behaviour: str = "ready", job_states: list[str] | None = None):
        self.behaviour = behaviour
        self.job_states = job_states  # SLURM-like: a job ID, and these states in turn
        self.calls: list[tuple[str, str]] = []  # (method, instance id)
        self.live: set[str] = set()
        self.lock_holders: list[dict] = []
        self.interrupt_on_poll = False

    def start(self, argv: list[str], log: Path, cwd: Path | None = None) -> dict:
        assert argv[:3] == [sys.executable, "-m", "llmsweep.services.wrapper"]
        spec = read_json(argv[3])
        self.calls.append(("start", spec["instance"]))
        self.lock_holders.append(read_json(Path(argv[3]).parent / "lock" / "holder.json"))
        n = sum(1 for call, _ in self.calls if call == "start")
        if self.behaviour == "die":
            with open(log, "a") as f:
                f.write("boom: bad flag\n")
        else:
            self.live.add(spec["instance"])
        if self.behaviour == "ready":
            write_json_atomic(
                spec["endpoint_file"],
                {"key": spec["key"], "instance": spec["instance"], "url": f"http://fake:{n}"},
            )
        started = {"backend": self.name, "pid": 40000 + n}
        if self.job_states is not None:
            started["job_id"] = str(n)
        return started

    def alive(self, inst: dict) -> bool:
        return inst["instance"] in self.live

    def state(self, inst: dict) -> str:
        self.calls.append(("state", inst["instance"]))
        if self.interrupt_on_poll:
            raise KeyboardInterrupt
        if self.job_states:
            return self.job_states.pop(0)
        return "RUNNING" if self.alive(inst) else "GONE"

    def stop(self, inst: dict, grace: float = 10.0, settle: bool = True) -> bool:
        self.calls.append(("stop", inst["instance"]))
        was = self.alive(inst)
        self.live.discard(inst["instance"])
        return was

    def stopped(self) -> list[str]:
        return [i for call, i in self.calls if call == "stop"]

    def started(self) -> list[str]:
        return [i for call, i in self.calls if call == "start"]


@pytest.fixture(autouse=True)
def health(monkeypatch):
    """The controller's health check, answered from a set of unhealthy URLs (calls recorded),
    for every test: none reaches the network."""

    class Health:
        def __init__(self):
            self.unhealthy: set[str] = set()
            self.calls: list[tuple[dict, str]] = []

        def __call__(self, ready: dict, url: str, headers: dict) -> bool:
            self.calls.append((ready, url))
            return url not in self.unhealthy

    probe = Health()
    monkeypatch.setattr(controller, "check_health", probe)
    return probe


@pytest.fixture()
def paths(tmp_path) -> RunPaths:
    return RunPaths("t", tmp_path / "results")


@pytest.fixture()
def backend() -> FakeBackend:
    return FakeBackend()


@pytest.fixture()
def ctl(paths, backend, health) -> Controller:
    return Controller(paths, backend, owner={})


def make_spec(key: str = "svc", **changes) -> dict:
    spec = {
        "key": key,
        "role": "pushgateway",
        "argv": ["svc-binary", "--listen={host}:{port}"],
        "env": {},
        "host": "127.0.0.1",
        "port": None,
        "ready": {"kind": "http", "path": "/ready"},
        "sidecars": [],
        "ready_timeout_s": 5,
    }
    return {**spec, **changes}


def history(paths: RunPaths, key: str = "svc") -> list[tuple[str, str]]:
    lines = (paths.service_dir(key) / "history.jsonl").read_text().splitlines()
    return [(e["instance"], e["event"]) for e in map(json.loads, lines)]


def instance(paths: RunPaths, key: str = "svc") -> dict:
    return read_json(paths.service_dir(key) / "instance.json")


def test_first_ensure_starts_the_wrapper_and_records_started_then_acquired(ctl, paths, backend):
    spec = make_spec()
    lease = ctl.ensure(spec)
    sdir = paths.service_dir("svc")
    inst = instance(paths)
    assert lease["status"] == "started" and lease["url"] == "http://fake:1"
    assert lease["instance"] == inst["instance"] and lease["backend"] == "fake"
    assert lease["pid"] == 40001 and lease["heartbeat"] == str(sdir / "heartbeat")
    assert backend.calls[0] == ("start", inst["instance"]) and backend.stopped() == []
    assert inst["key"] == "svc" and inst["role"] == "pushgateway"
    assert inst["spec_hash"] == spec_hash(spec) and inst["log"] == str(sdir / "service.log")
    written = read_json(sdir / "spec.json")
    assert written["argv"] == spec["argv"] and written["instance"] == inst["instance"]
    assert written["endpoint_file"] == str(sdir / "endpoint.json")
    assert f"starting instance {inst['instance']}" in (sdir / "service.log").read_text()
    assert history(paths) == [(inst["instance"], "started"), (inst["instance"], "acquired")]
    assert (sdir / "heartbeat").exists()
    assert not (sdir / "lock").exists()  # released
    assert backend.lock_holders[0]["pid"] == os.getpid()  # held while starting
    assert not (sdir / "owner.json").exists()  # no owner, nothing claimed


def test_the_same_spec_reuses_the_healthy_instance(ctl, paths, backend, health):
    first = ctl.ensure(make_spec())
    # Keys outside the spec hash (timeouts) do not make it another service.
    again = ctl.ensure(make_spec(ready_timeout_s=99))
    assert again["status"] == "reused"
    assert again["instance"] == first["instance"] and again["url"] == first["url"]
    assert backend.started() == [first["instance"]] and backend.stopped() == []
    assert health.calls[-1] == ({"kind": "http", "path": "/ready"}, first["url"])
    assert [event for _, event in history(paths)] == ["started", "acquired", "reused", "acquired"]


def test_a_changed_spec_stops_the_old_instance_and_says_why(ctl, paths, backend, capsys):
    first = ctl.ensure(make_spec())
    second = ctl.ensure(make_spec(argv=["svc-binary", "--log.level=debug"]))
    assert "llmsweep: restarting svc: its configuration changed" in capsys.readouterr().err
    assert second["status"] == "started" and second["instance"] != first["instance"]
    assert backend.stopped() == [first["instance"]]
    assert backend.live == {second["instance"]}
    assert instance(paths)["instance"] == second["instance"]
    assert history(paths)[-2:] == [
        (second["instance"], "started"),
        (second["instance"], "acquired"),
    ]


def test_an_unhealthy_live_instance_is_restarted(ctl, paths, backend, health, capsys):
    first = ctl.ensure(make_spec())
    health.unhealthy.add(first["url"])
    second = ctl.ensure(make_spec())
    assert "llmsweep: restarting svc: it is not healthy" in capsys.readouterr().err
    assert second["status"] == "started" and second["instance"] != first["instance"]
    assert backend.stopped() == [first["instance"]]


def test_a_live_instance_whose_endpoint_is_another_s_is_restarted(ctl, paths, backend, capsys):
    first = ctl.ensure(make_spec())
    endpoint = paths.service_dir("svc") / "endpoint.json"
    write_json_atomic(endpoint, {**read_json(endpoint), "instance": "someone-else"})
    second = ctl.ensure(make_spec())
    assert "restarting svc: it is not healthy" in capsys.readouterr().err
    assert second["instance"] != first["instance"] and backend.stopped() == [first["instance"]]


def test_a_dead_instance_is_restarted_without_a_message(ctl, paths, backend, capsys):
    first = ctl.ensure(make_spec())
    backend.live.clear()  # it died
    second = ctl.ensure(make_spec())
    assert second["status"] == "started" and second["instance"] != first["instance"]
    assert "restarting" not in capsys.readouterr().err
    assert backend.stopped() == [first["instance"]]  # whatever is left of it, e.g. its watcher


def test_a_service_that_dies_before_ready_raises_with_its_log_and_is_stopped(paths, health):
    backend = FakeBackend("die")
    ctl = Controller(paths, backend, owner={})
    with pytest.raises(ServiceError) as err:
        ctl.ensure(make_spec())
    inst = instance(paths)
    message = str(err.value)
    assert message.startswith("service svc ended before it was ready; last lines of ")
    assert inst["log"] in message and "boom: bad flag" in message
    assert backend.stopped() == [inst["instance"]]
    assert history(paths) == [(inst["instance"], "started")]  # never acquired
    assert not (paths.service_dir("svc") / "lock").exists()


def test_a_job_s_states_are_shown_and_its_end_before_ready_names_the_job(paths, health, capsys):
    backend = FakeBackend("hang", job_states=["PENDING", "PENDING", "RUNNING", "FAILED"])
    ctl = Controller(paths, backend, owner={})
    with pytest.raises(ServiceError, match=r"ended before it was ready \(job 1: FAILED\)"):
        ctl.ensure(make_spec())
    err = capsys.readouterr().err
    assert err.count("llmsweep: svc: job 1 PENDING") == 1  # once per change
    assert "llmsweep: svc: job 1 RUNNING" in err and "llmsweep: svc: job 1 FAILED" in err
    assert backend.stopped() == [instance(paths)["instance"]]


def test_a_timeout_stops_the_instance(paths, health):
    backend = FakeBackend("hang")
    ctl = Controller(paths, backend, owner={})
    # The controller allows ready_timeout_s + queue_timeout_s + 5 s; this leaves 0.2 s.
    spec = make_spec(ready_timeout_s=0.2, queue_timeout_s=-5)
    with pytest.raises(ServiceError) as err:
        ctl.ensure(spec)
    inst = instance(paths)
    assert str(err.value).startswith("timed out after 0.2 s waiting for service svc; last lines")
    assert f"starting instance {inst['instance']}" in str(err.value)  # the log's tail
    assert backend.stopped() == [inst["instance"]] and backend.live == set()


def test_an_interrupted_wait_stops_the_instance_and_propagates(paths, health):
    backend = FakeBackend("hang")
    backend.interrupt_on_poll = True  # Ctrl-C while waiting for the endpoint
    ctl = Controller(paths, backend, owner={})
    with pytest.raises(KeyboardInterrupt):
        ctl.ensure(make_spec())
    inst = instance(paths)
    assert backend.calls == [
        ("start", inst["instance"]),
        ("state", inst["instance"]),
        ("stop", inst["instance"]),
    ]
    assert backend.live == set()
    assert not (paths.service_dir("svc") / "lock").exists()


def test_an_endpoint_that_does_not_answer_is_an_error_and_is_stopped(ctl, paths, backend, health):
    health.unhealthy.add("http://fake:1")
    with pytest.raises(ServiceError, match="service svc wrote http://fake:1 but does not answer"):
        ctl.ensure(make_spec())
    assert backend.stopped() == [instance(paths)["instance"]]


def test_stop_all_stops_every_instance_and_reports_the_live_ones(ctl, paths, backend):
    a = ctl.ensure(make_spec("a"))
    b = ctl.ensure(make_spec("b"))
    c = ctl.ensure(make_spec("c"))
    backend.live.discard(c["instance"])  # already gone: stopped, but not reported
    paths.targets.mkdir(parents=True)
    (paths.targets / "a.json").write_text("[]")
    lease = paths.leases / "a" / "m" / "c1.json"
    lease.parent.mkdir(parents=True)
    lease.write_text(json.dumps(a))
    assert ctl.stop_all() == ["a", "b"]
    assert sorted(backend.stopped()) == sorted([a["instance"], b["instance"], c["instance"]])
    assert backend.live == set()
    for key in "abc":
        assert not (paths.service_dir(key) / "endpoint.json").exists()
        assert (paths.service_dir(key) / "instance.json").exists()  # kept: the record
    assert list(paths.targets.iterdir()) == [] and not paths.leases.exists()


def test_prune_drops_leases_whose_instance_is_gone_and_claims_live_services(paths, backend):
    ctl = Controller(paths, backend, owner={"pid": 1, "pid_start": "7", "host": "h"})
    live = ctl.ensure(make_spec("live"))
    dead = ctl.ensure(make_spec("dead"))
    backend.live.discard(dead["instance"])
    leases = {
        "kept": (paths.leases / "live" / "m" / "c1.json", live),
        "dead": (paths.leases / "dead" / "m" / "c1.json", dead),
        "older": (paths.leases / "live" / "m" / "c2.json", {**live, "instance": "earlier"}),
    }
    for lease, data in leases.values():
        lease.parent.mkdir(parents=True, exist_ok=True)
        lease.write_text(json.dumps(data))
    (paths.service_dir("live") / "owner.json").unlink()
    assert ctl.prune() == sorted([leases["dead"][0], leases["older"][0]])
    assert leases["kept"][0].exists()
    assert not leases["dead"][0].exists() and not leases["older"][0].exists()
    assert read_json(paths.service_dir("live") / "owner.json") == ctl.owner  # claimed again


def test_prune_without_leases_removes_nothing(ctl):
    ctl.ensure(make_spec())
    assert ctl.prune() == []


def test_an_owner_is_written_for_the_service_s_watchdog(paths, backend, health, monkeypatch):
    monkeypatch.setenv(DRIVER_ENV, str(os.getpid()))
    owner = current_owner()
    assert owner["pid"] == os.getpid() and owner["pid_start"] == start_time(os.getpid())
    ctl = Controller(paths, backend)
    ctl.ensure(make_spec())
    assert read_json(paths.service_dir("svc") / "owner.json") == owner
    monkeypatch.delenv(DRIVER_ENV)
    assert current_owner() == {}


def _dead_pid() -> int:
    """A PID no process has: the kernel hands out PIDs below pid_max."""
    return int(Path("/proc/sys/kernel/pid_max").read_text())


@pytest.mark.parametrize(
    "holder",
    [
        pytest.param(lambda: {"pid": _dead_pid(), "pid_start": "1"}, id="dead-pid"),
        pytest.param(lambda: {"pid": os.getpid(), "pid_start": "-1"}, id="reused-pid"),
    ],
)
def test_a_stale_lock_whose_holder_is_gone_is_taken_over(ctl, paths, backend, holder, monkeypatch):
    monkeypatch.setattr(controller, "LOCK_TIMEOUT_S", 5)  # fail fast if it waits instead
    lock = paths.service_dir("svc") / "lock"
    lock.mkdir(parents=True)
    write_json_atomic(lock / "holder.json", holder())
    lease = ctl.ensure(make_spec())
    assert lease["status"] == "started"
    assert backend.lock_holders == [{"pid": os.getpid(), "pid_start": start_time(os.getpid())}]
    assert not lock.exists()


def test_a_lock_held_by_a_live_process_is_waited_for(ctl, paths, backend, monkeypatch):
    monkeypatch.setattr(controller, "LOCK_TIMEOUT_S", 0.3)
    lock = paths.service_dir("svc") / "lock"
    lock.mkdir(parents=True)
    held = {"pid": os.getpid(), "pid_start": start_time(os.getpid())}
    write_json_atomic(lock / "holder.json", held)
    with pytest.raises(TimeoutError, match="the lock of service svc"):
        ctl.ensure(make_spec())
    assert backend.calls == [] and read_json(lock / "holder.json") == held


def test_stop_all_stops_the_services_at_once_and_each_even_when_one_fails(ctl, paths, backend):
    """Each stop waits for its service to be gone (seconds for a SLURM job): the run's
    services are stopped side by side, every one of them also when another's stop fails."""
    import threading

    names = ("a", "b", "c")
    for name in names:
        ctl.ensure(make_spec(name))
    together = threading.Barrier(len(names), timeout=10)  # broken if the stops took turns
    plain_stop = backend.stop

    def stop(inst, grace=10.0, settle=True):
        together.wait()
        if inst["key"] == "b":
            raise RuntimeError("scancel failed")
        return plain_stop(inst, grace, settle)

    backend.stop = stop
    with pytest.raises(RuntimeError, match="scancel failed"):
        ctl.stop_all()
    assert not together.broken
    assert backend.live == {instance(paths, "b")["instance"]}
