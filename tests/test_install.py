"""bin/install and a sweep as a cluster user runs them: an ordinary user made by the test
(own HOME, not root), with dpkg and apt-get out of reach (as on a RHEL-like login node)
and the monitoring programs from a folder on PATH; then without them."""

import json
import os
import pwd
import shutil
import subprocess
from pathlib import Path

import pytest
import yaml

from conftest import ROOT
from llmsweep.procs import pid_alive
from llmsweep.util import read_json, wait_until

pytestmark = pytest.mark.e2e

USER = "llmsweep-install-test"
HIDDEN = ("dpkg", "dpkg-query", "apt", "apt-get", "apt-cache")  # what RHEL-like nodes lack
MONITORING = ("prometheus", "prometheus-pushgateway", "prometheus-node-exporter")


def system_bin(folder: Path) -> Path:
    """A folder of links to every system program except Debian's package tools and the
    monitoring programs: PATH as on a RHEL-like node before `module load`."""
    folder.mkdir(parents=True)
    for base in ("/usr/local/bin", "/usr/bin", "/usr/sbin"):
        for entry in sorted(os.listdir(base)):
            if entry in HIDDEN or entry in MONITORING or (folder / entry).exists():
                continue
            (folder / entry).symlink_to(Path(base) / entry)
    return folder


def monitoring_bin(folder: Path) -> Path:
    """The monitoring programs in a folder of their own, as a module would provide them."""
    folder.mkdir(parents=True)
    for name in MONITORING:
        (folder / name).symlink_to(shutil.which(name))
    return folder


def remove_user() -> None:
    try:
        pwd.getpwnam(USER)
    except KeyError:
        return
    subprocess.run(["userdel", "--remove", USER], capture_output=True, timeout=60)


def user_pids() -> list[int]:
    out = subprocess.run(["ps", "-u", USER, "-o", "pid="], capture_output=True, text=True)
    return [int(p) for p in out.stdout.split()]


@pytest.fixture(scope="module")
def user():
    """An ordinary user with its own HOME holding a copy of this checkout and of pip's
    cache (so the llama.cpp wheel built once is not built again)."""
    remove_user()
    home = Path("/tmp") / f"{USER}-home"
    shutil.rmtree(home, ignore_errors=True)
    subprocess.run(
        ["useradd", "--create-home", "--home-dir", str(home), "--shell", "/bin/bash", USER],
        check=True,
        timeout=60,
    )
    checkout = home / "llmsweep"
    files = (
        subprocess.run(
            ["git", "ls-files", "-co", "--exclude-standard", "-z"],
            cwd=ROOT,
            capture_output=True,
            check=True,
        )
        .stdout.decode()
        .split("\0")
    )
    for rel in filter(None, files):
        src = ROOT / rel
        if src.is_file():
            (checkout / rel).parent.mkdir(parents=True, exist_ok=True)
            shutil.copy2(src, checkout / rel)
    pip_cache = Path.home() / ".cache" / "pip"
    if pip_cache.is_dir():
        shutil.copytree(pip_cache, home / ".cache" / "pip", symlinks=True)
    subprocess.run(["chown", "-R", f"{USER}:{USER}", str(home)], check=True, timeout=300)
    work = Path("/tmp") / f"{USER}-path"  # readable by the user, unlike pytest's tmp
    shutil.rmtree(work, ignore_errors=True)
    work.mkdir(mode=0o755)
    paths = {
        "home": home,
        "checkout": checkout,
        "system": system_bin(work / "system-bin"),
        "monitoring": monitoring_bin(work / "monitoring-bin"),
    }
    yield paths
    for pid in user_pids():  # only this test's user: everything of it is the test's
        if pid_alive(pid):
            os.kill(pid, 9)
    remove_user()
    shutil.rmtree(home, ignore_errors=True)
    shutil.rmtree(work, ignore_errors=True)


def as_user(user: dict, argv: list[str], monitoring: bool, timeout: int = 1500):
    path = [str(user["system"])]
    if monitoring:
        path.insert(0, str(user["monitoring"]))
    env = [
        "env",
        "-i",
        f"HOME={user['home']}",
        f"USER={USER}",
        f"PATH={':'.join(path)}",
        "LANG=C.UTF-8",
    ]
    return subprocess.run(
        ["runuser", "-u", USER, "--", *env, *argv],
        cwd=user["checkout"],
        capture_output=True,
        text=True,
        timeout=timeout,
    )


def write_config(user: dict, name: str, **extra) -> str:
    cfg = {
        "run": name,
        "sweep": {"clients": [1, 2], "requests_per_client": 2},
        "workload": {"max_tokens": 8},
        "engines": {"llama_cpp": {"parallel": 2, "ctx_size": 1024}},
        "monitoring": {"scrape_interval_s": 1},
        **extra,
    }
    path = user["checkout"] / f"{name}.yaml"
    path.write_text(yaml.safe_dump(cfg))
    shutil.chown(path, USER, USER)
    return str(path)


def assert_nothing_left() -> None:
    wait_until(lambda: not user_pids(), 30, "the user's processes to end", max_delay=0.5)


def test_install_and_sweep_as_an_ordinary_user_without_debian_tools(user):
    proc = as_user(user, ["bin/install"], monitoring=True)
    out = proc.stdout + proc.stderr
    assert proc.returncode == 0, out[-4000:]
    assert "not installing system packages" not in out  # everything needed was found
    for name in ("prometheus", "pushgateway", "node_exporter"):
        assert f"found {name}: {user['monitoring']}" in out, out[-3000:]
    assert (user["checkout"] / ".venv" / "llama-cpp-variant").read_text().strip() == "cpu"
    assert (user["home"] / ".cache" / "llmsweep" / "models").is_dir()

    config = write_config(user, "mine")
    proc = as_user(user, ["bin/demo", "--configfile", config], monitoring=True)
    out = proc.stdout + proc.stderr
    assert proc.returncode == 0, out[-4000:]
    run = user["checkout"] / "results" / "mine"
    assert (run / "report" / "index.html").stat().st_uid == pwd.getpwnam(USER).pw_uid
    for load in ("c1", "c2"):
        summary = read_json(run / "bench" / "gemma3-270m" / load / "summary.json")
        assert summary["successful"] == summary["requests"] > 0
    assert (run / "monitoring" / "prometheus-data").is_dir()
    llm_log = (run / "services" / "llm_server.gemma3-270m" / "service.log").read_text()
    assert "--n-gpu-layers 0" in llm_log  # no GPU here: nothing offloaded by default
    assert_nothing_left()


def test_without_monitoring_programs_install_says_how_and_sweeps_run_with_it_off(user):
    if not (user["checkout"] / ".venv" / "bin" / "llmsweep").exists():
        pytest.skip("needs the install of the test before")
    proc = as_user(user, ["bin/install"], monitoring=False)
    out = proc.stdout + proc.stderr
    assert proc.returncode == 0, out[-4000:]
    assert "not installing system packages (not root with apt-get): prometheus" in out
    assert "missing prometheus: monitoring.prometheus: prometheus not found" in out
    assert "module load" in out and "docker://prom/prometheus:v2.42.0" in out
    assert "monitoring.enabled: false" in out

    on = write_config(user, "on")
    proc = as_user(
        user, [".venv/bin/llmsweep", "check-config", "--configfile", on], monitoring=False
    )
    assert proc.returncode == 2
    assert proc.stderr.startswith(f"llmsweep: {on}: monitoring.prometheus: prometheus not found")
    proc = as_user(user, ["bin/demo", "--configfile", on], monitoring=False)
    assert proc.returncode != 0
    assert "monitoring.prometheus: prometheus not found" in proc.stdout + proc.stderr
    assert not (user["checkout"] / "results" / "on").exists(), "a job ran on a bad config"

    off = write_config(user, "off", monitoring={"enabled": False})
    proc = as_user(user, ["bin/demo", "--configfile", off], monitoring=False)
    out = proc.stdout + proc.stderr
    assert proc.returncode == 0, out[-4000:]
    run = user["checkout"] / "results" / "off"
    for load in ("c1", "c2"):
        summary = read_json(run / "bench" / "gemma3-270m" / load / "summary.json")
        assert summary["successful"] == summary["requests"] > 0
    assert not (run / "monitoring").exists()
    # Only the deployment's own services ran: no Pushgateway, Prometheus or exporters.
    services = sorted(p.parent.name for p in (run / "services").glob("*/instance.json"))
    assert services == ["client_service.gemma3-270m", "llm_server.gemma3-270m"]
    meta = json.loads((run / "report" / "metadata.json").read_text())
    assert meta["monitoring"].startswith("off (monitoring.enabled: false)")
    assert "monitoring.enabled: false" in (run / "report" / "index.html").read_text()
    assert_nothing_left()
