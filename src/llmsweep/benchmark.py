"""One sweep point: drive the client service, keep every record, summarise, push."""

from __future__ import annotations

import json
import os
import sys
import time
from pathlib import Path

from llmsweep.engines import engine_module
from llmsweep.loadgen.stats import summarize
from llmsweep.metrics.push import push_summary
from llmsweep.util import http_json, read_json, wait_until, write_json_atomic

POLL_WAIT_S = 10
BUSY_TIMEOUT_S = 3600


class PointFailed(RuntimeError):
    pass


def keep_failed_attempt(requests_path: Path) -> Path | None:
    """Keep a failed attempt's records beside the point: a re-run replaces requests.jsonl."""
    if not requests_path.exists() or not requests_path.stat().st_size:
        return None
    stamp = time.strftime("%Y%m%dT%H%M%S")
    kept = requests_path.with_name(f"requests.failed-{stamp}.jsonl")
    os.link(requests_path, kept)
    return kept


def renew(*leases: dict) -> None:
    """Tell the services' idle watchdogs that this point still uses them."""
    for lease in leases:
        if lease.get("heartbeat"):
            Path(lease["heartbeat"]).touch()


def read_records(path: Path) -> list[dict]:
    with open(path) as f:
        return [json.loads(line) for line in f if line.strip()]


def run_point(
    point: dict, leases: dict[str, Path], requests_path: Path, summary_path: Path
) -> dict:
    """Run one point through the client service named in its lease; return the summary.

    `point` holds run, model, clients, requests_per_client and workload. Records are
    appended to `requests_path` as requests complete; on failure they are also kept
    under another name, since a re-run replaces requests.jsonl.
    """
    try:
        return _run_point(point, leases, Path(requests_path), Path(summary_path))
    except BaseException:
        kept = keep_failed_attempt(Path(requests_path))
        if kept:
            print(f"the records of the failed attempt are kept in {kept}", file=sys.stderr)
        raise


def _run_point(
    point: dict, leases: dict[str, Path], requests_path: Path, summary_path: Path
) -> dict:
    run, model, clients = point["run"], point["model"], point["clients"]
    workload, requests_per_client = point["workload"], point["requests_per_client"]
    client = read_json(leases["client_service"])
    llm = read_json(leases["llm_server"])
    gateway = read_json(leases["pushgateway"])
    base = client["url"]
    status, body = http_json(base + "/health", timeout=30)
    if status != 200:
        raise PointFailed(f"client service {base} is not healthy: {body}")
    requests_path.parent.mkdir(parents=True, exist_ok=True)
    request = {
        "n_clients": clients,
        "n_requests_per_client": requests_per_client,
        "prompt": workload["prompt"],
        "max_tokens": workload["max_tokens"],
        "ignore_eos": workload["ignore_eos"],
        "api": workload["api"],
        "request_timeout_s": workload["request_timeout_s"],
    }

    def start():
        status, body = http_json(base + "/benchmark", request, timeout=30)
        if status == 202:
            return body
        if status == 409:
            return None  # another point still runs on this service: wait for it
        raise PointFailed(f"client service refused the point ({status}): {body}")

    started = wait_until(start, BUSY_TIMEOUT_S, "the client service to be free", max_delay=2)
    point_id = started["id"]
    started_at = time.time()
    offset = 0
    view: dict = {}
    with open(requests_path, "w") as out:
        while True:
            url = f"{base}/benchmark/{point_id}?offset={offset}&wait={POLL_WAIT_S}"
            status, view = http_json(url, timeout=POLL_WAIT_S + 30)
            if status != 200:
                raise PointFailed(f"lost the point on the client service ({status}): {view}")
            for rec in view["records"]:
                out.write(json.dumps(rec) + "\n")
            out.flush()
            os.fsync(out.fileno())
            offset = view["next_offset"]
            renew(client, llm, gateway)
            done = view["completed"]
            print(f"{model} c{clients}: {done}/{view['total']} requests", file=sys.stderr)
            if view["state"] != "running" and offset >= view["completed"]:
                break
    if view["state"] != "done":
        raise PointFailed(f"point ended {view['state']}: {view.get('error')}")
    records = read_records(requests_path)
    summary = summarize(records)
    failed = summary["failed"]
    if failed:
        status, _ = http_json(base + "/health", timeout=30)
        if status != 200:
            kinds = ", ".join(f"{k}: {v}" for k, v in summary["errors"].items())
            raise PointFailed(
                f"the LLM server {llm['url']} stopped answering during point {model} c{clients}: "
                f"{failed} of {summary['requests']} requests failed ({kinds}); the "
                f"{summary['successful']} completed requests are in {requests_path}"
            )
    try:
        server = engine_module(point["engine"]).metadata(llm["url"], model)
    except Exception as exc:  # noqa: BLE001 - metadata must never fail a finished point
        server = {"error": str(exc)}
    summary["point"] = {
        "run": run,
        "model": model,
        "engine": point["engine"],
        "server": server,
        "clients": clients,
        "requests_per_client": requests_per_client,
        "peak_in_flight": view["peak_in_flight"],
        "client_service": {k: client[k] for k in ("url", "status", "instance")},
        "llm_server": {k: llm[k] for k in ("url", "status", "instance", "pid", "job_id")},
        "started_at": started_at,
        "finished_at": time.time(),
    }
    push_summary(gateway["url"], run, model, clients, summary)
    write_json_atomic(summary_path, summary)
    return summary
