"""Shared fixtures: a scratch results folder and a check that nothing of ours survives."""

import os
import sys
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT / "src"))
ARTIFACTS = ROOT / "tests" / "artifacts"

from llmsweep.procs import pid_alive  # noqa: E402


def service_pids(results: Path) -> list[int]:
    """Every PID a run's services ever had (from instance.json and endpoint.json files)."""
    import json

    pids = []
    for name in ("instance.json", "endpoint.json"):
        for f in results.glob(f"*/services/*/{name}"):
            try:
                pids.append(json.loads(f.read_text())["pid"])
            except (OSError, ValueError, KeyError):
                pass
    return pids


def alive_pids(pids) -> list[int]:
    return [p for p in pids if pid_alive(p)]


@pytest.fixture(scope="module")
def cluster():
    """The single-node SLURM cluster of tests/slurm/cluster.sh, for one test module."""
    import subprocess

    if os.environ.get("LLMSWEEP_SKIP_SLURM"):
        pytest.skip("LLMSWEEP_SKIP_SLURM is set")
    script = str(ROOT / "tests" / "slurm" / "cluster.sh")
    subprocess.run([script, "start"], check=True, timeout=900)
    yield
    subprocess.run([script, "stop"], timeout=300)


@pytest.fixture()
def no_owner(monkeypatch):
    monkeypatch.delenv("LLMSWEEP_DRIVER_PID", raising=False)


_deselected = 0


def pytest_deselected(items):
    global _deselected
    _deselected += len(items)


def pytest_sessionfinish(session, exitstatus):
    """A tier chosen with -m (e.g. "not e2e and not slurm") that leaves nothing to run in the
    modules asked for (tests/test_workflow.py is all e2e) passed: pytest alone would exit 5."""
    tier = session.config.getoption("markexpr")
    if exitstatus == pytest.ExitCode.NO_TESTS_COLLECTED and tier and _deselected:
        session.exitstatus = pytest.ExitCode.OK


@pytest.fixture(scope="session")
def artifacts() -> Path:
    ARTIFACTS.mkdir(parents=True, exist_ok=True)
    return ARTIFACTS


os.environ.setdefault("PYTHONUNBUFFERED", "1")
