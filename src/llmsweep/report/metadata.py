"""What ran: config, services (started or reused, job ids, start-up), servers, times, and
the GPU time the deployments' servers held."""

from __future__ import annotations

import json
import time
from pathlib import Path

import pandas as pd

from llmsweep import __version__
from llmsweep.paths import RunPaths
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
        "monitoring_gaps": (gaps := monitoring_gaps(run_dir, summaries)),
        "monitoring": monitoring_note(config, gaps),
    }


def monitoring_gaps(run_dir: Path, summaries: list[dict]) -> list[dict]:
    """Where the run's monitoring has holes: each restart of its Pushgateway or Prometheus
    (from the deployment records), and each summary the Pushgateway did not take."""
    gaps = []
    for path in sorted(RunPaths.of_run_dir(run_dir).bench.glob("*/deployment.json")):
        record = read_json(path)
        for session in record.get("sessions", []):
            gaps += [
                {"deployment": record["slug"], **g} for g in session.get("monitoring_gaps", [])
            ]
    for summary in summaries:
        if summary.get("monitoring_gap"):
            point = summary["point"]
            gaps.append(
                {
                    "deployment": deployments.deployment_of(point),
                    "load": point.get("load"),
                    "service": "pushgateway",
                    "noticed_at": point.get("finished_at"),
                    "message": summary["monitoring_gap"],
                }
            )
    return gaps


def monitoring_note(config: dict, gaps: list[dict] = ()) -> str:
    """What the run's monitoring recorded, for the report."""
    if config.get("monitoring", {}).get("enabled", True):
        note = "on: Prometheus data in monitoring/prometheus-data"
        if gaps:
            when = "; ".join(
                f"{g['service']} during {g['deployment']} at "
                f"{time.strftime('%H:%M:%S', time.localtime(g['noticed_at']))}"
                for g in gaps
                if g.get("noticed_at")
            )
            note += (
                f", WITH GAPS: lost and restarted ({when}); Prometheus misses those"
                " periods, the points' own figures do not"
            )
        return note
    return (
        "off (monitoring.enabled: false): no Prometheus data, node or GPU metrics; "
        "every figure of this report comes from the requests' own records"
    )
