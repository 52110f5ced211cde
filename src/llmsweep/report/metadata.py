"""What ran: config, services (started or reused, job ids, start-up), servers, times, and
the GPU time the deployments' servers held."""

from __future__ import annotations

import json
import time
from pathlib import Path

import pandas as pd

from llmsweep import __version__
from llmsweep.report import deployments
from llmsweep.util import read_json


def services(run_dir: Path) -> list[dict]:
    out = []
    for inst_file in sorted(run_dir.glob("services/*/instance.json")):
        inst = read_json(inst_file)
        history = inst_file.with_name("history.jsonl")
        events = (
            [json.loads(x) for x in history.read_text().splitlines()] if history.exists() else []
        )
        service = {
            "key": inst["key"],
            "role": inst["role"],
            "backend": inst["backend"],
            "job_id": inst.get("job_id"),
            "instances_started": sum(e["event"] == "started" for e in events),
            "times_reused": sum(e["event"] == "reused" for e in events),
            "startup_s": [r["time"] - s["time"] for s, r in _pairs(events)],
        }
        out.append(service)
    return out


def _pairs(events: list[dict]):
    """(started, ready) event pairs of each instance."""
    started = {e["instance"]: e for e in events if e["event"] == "started"}
    for e in events:
        if e["event"] == "ready" and e["instance"] in started:
            yield started[e["instance"]], e


def collect(
    config: dict, summaries: list[dict], run_dir: Path, deployments_table: pd.DataFrame
) -> dict:
    """metadata.json: `deployments_table` is deployments.csv's frame (deployments.table)."""
    points = [s["point"] for s in summaries]
    return {
        "llmsweep_version": __version__,
        "written_at": time.time(),
        "config": config,
        "started_at": min((p["started_at"] for p in points), default=None),
        "finished_at": max((p["finished_at"] for p in points), default=None),
        "servers": {deployments.deployment_of(p): p.get("server") for p in points},
        "gpu_time": deployments.totals(deployments_table),
        "services": services(run_dir),
        "monitoring": monitoring_note(config),
    }


def monitoring_note(config: dict) -> str:
    """What the run's monitoring recorded, for the report."""
    if config.get("monitoring", {}).get("enabled", True):
        return "on: Prometheus data in monitoring/prometheus-data"
    return (
        "off (monitoring.enabled: false): no Prometheus data, node or GPU metrics; "
        "every figure of this report comes from the requests' own records"
    )
