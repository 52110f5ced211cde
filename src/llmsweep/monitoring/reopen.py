"""Reopen a finished run's monitoring: its Prometheus data (and Grafana, where installed).

The run's Prometheus keeps its data in results/<run>/monitoring/prometheus-data; this starts
a Prometheus on that folder that scrapes nothing, so the run's series stay as they were.
"""

from __future__ import annotations

import contextlib
import os
import signal
import subprocess
import time
from collections.abc import Iterator
from pathlib import Path

import yaml

from llmsweep import config, programs, secret
from llmsweep.paths import RunPaths
from llmsweep.util import free_port, http_json, read_json, wait_until, write_atomic


class ReopenError(RuntimeError):
    pass


def run_window(paths: RunPaths) -> tuple[float, float] | None:
    """(start, end) of the run from its report metadata, else from its point summaries."""
    if paths.metadata.exists():
        m = read_json(paths.metadata)
        return m["started_at"], m["finished_at"]
    windows = [read_json(p)["window"] for p in paths.summaries()]
    if not windows:
        return None
    return min(w["start"] for w in windows), max(w["end"] for w in windows)


def prometheus_program(paths: RunPaths) -> dict:
    """How the run ran Prometheus (monitoring.prometheus of its config), else the defaults."""
    try:
        return read_json(paths.metadata)["config"]["monitoring"]["prometheus"]
    except (OSError, ValueError, KeyError):
        return config.program_defaults()


def _stop(proc: subprocess.Popen) -> None:
    if proc.poll() is None:
        os.killpg(proc.pid, signal.SIGTERM)
        try:
            proc.wait(10)
        except subprocess.TimeoutExpired:
            os.killpg(proc.pid, signal.SIGKILL)
            proc.wait()


@contextlib.contextmanager
def prometheus(paths: RunPaths, host: str = "127.0.0.1", port: int = 0) -> Iterator[str]:
    """A Prometheus on the run's data, read back as it was; yields its URL."""
    data = (paths.monitoring / "prometheus-data").resolve()
    if not data.is_dir():
        raise ReopenError(f"{data} does not exist: the run has no Prometheus data")
    if (data / "lock").exists():
        # Prometheus removes its lock file when it stops.
        raise ReopenError(f"{data} is in use (its Prometheus is still running?)")
    conf = paths.monitoring / "reopen-prometheus.yml"
    write_atomic(conf, yaml.safe_dump({"global": {"scrape_interval": "1m"}}))
    port = port or free_port(host)
    log = open(paths.monitoring / "reopen-prometheus.log", "ab")  # noqa: SIM115
    web_config = secret.ensure_web_config(paths.web_config, secret.ensure(paths.secret))
    args = [
        f"--config.file={conf.resolve()}",
        f"--storage.tsdb.path={data}",
        "--storage.tsdb.retention.time=100y",
        f"--web.listen-address={host}:{port}",
        f"--web.config.file={web_config.resolve()}",  # the run's token, as during the run
    ]
    argv, env = programs.command(
        "prometheus", prometheus_program(paths), args, binds=(paths.monitoring.resolve(),)
    )
    headers = secret.basic(secret.read(paths.secret))
    proc = subprocess.Popen(
        argv,
        stdin=subprocess.DEVNULL,
        stdout=log,
        stderr=log,
        start_new_session=True,
        env={**os.environ, **env},
    )
    url = f"http://{host}:{port}"
    try:

        def ready() -> bool:
            if proc.poll() is not None:
                raise ReopenError(f"prometheus exited; see {log.name}")
            try:
                return http_json(f"{url}/-/ready", timeout=2, headers=headers)[0] == 200
            except OSError:
                return False

        wait_until(ready, 120, "the reopened Prometheus to be ready", max_delay=0.5)
        yield url
    finally:
        _stop(proc)
        log.close()


def serve(paths: RunPaths, host: str, port: int, out=print) -> None:
    """Reopen the run's Prometheus until Ctrl-C; say where and over which time range."""
    window = run_window(paths)
    with prometheus(paths, host, port) as url:
        out(f"Prometheus on the data of run {paths.run}: {url}")
        out(f"  user {secret.USER}, password in {paths.secret.resolve()} (0600)")
        if window:
            a, b = (int(t * 1000) for t in window)
            out(
                f"the run's time range: {time.strftime('%F %T', time.localtime(window[0]))} to "
                f"{time.strftime('%F %T', time.localtime(window[1]))}; in Grafana add "
                f"?var-run={paths.run}&from={a}&to={b} to a dashboard's URL"
            )
        out(
            f"import the dashboards from {Path(__file__).with_name('dashboards')} into a "
            "Grafana with this Prometheus as its datasource; Ctrl-C stops"
        )
        stop = []
        signal.signal(signal.SIGTERM, lambda *_: stop.append(1))
        try:
            while not stop:
                time.sleep(0.5)
        except KeyboardInterrupt:
            pass
