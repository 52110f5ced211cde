"""One sweep point: drive the client service, keep every record, summarise, push."""

from __future__ import annotations

import json
import os
import sys
import time
from pathlib import Path

from llmsweep.engines import engine_module
from llmsweep.loadgen.stats import summarize
from llmsweep.loadgen.workload import build_prompts
from llmsweep.metrics.gpu_info import gpu_info
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
    point: dict, settings: dict, leases: dict[str, Path], requests_path: Path, summary_path: Path
) -> dict:
    """Run one point through the client service named in its lease; return the summary.

    `point` is a sweep point (model, pattern, clients or rate, repeat, load) with run and
    engine; `settings` holds the config's sweep, warmup, workload and slo sections.
    Records are appended to `requests_path` as requests complete; on failure they are
    also kept under another name, since a re-run replaces requests.jsonl.
    """
    try:
        return _run_point(point, settings, leases, Path(requests_path), Path(summary_path))
    except BaseException:
        kept = keep_failed_attempt(Path(requests_path))
        if kept:
            print(f"the records of the failed attempt are kept in {kept}", file=sys.stderr)
        raise


def point_request(point: dict, settings: dict, prompts: list[dict]) -> dict:
    """The client service's /benchmark body for one sweep point."""
    sweep, warmup, workload = settings["sweep"], settings["warmup"], settings["workload"]
    request = {
        "pattern": point["pattern"],
        "duration_s": sweep["duration_s"],
        "prompts": prompts,
        "ignore_eos": workload["ignore_eos"],
        "api": workload["api"],
        "request_timeout_s": workload["request_timeout_s"],
        "warmup_requests": warmup["requests"],
        "warmup_duration_s": warmup["duration_s"],
        "max_duration_s": sweep["max_point_duration_s"],
        "seed": sweep["seed"] + point["repeat"],
        "workers": settings["client"]["workers"],
    }
    if point["pattern"] == "closed":
        request.update(
            n_clients=point["clients"], n_requests_per_client=sweep["requests_per_client"]
        )
    else:
        request.update(rate=point["rate"], arrival=sweep["arrival"], n_requests=sweep["requests"],
                       max_concurrency=sweep["max_concurrency"])  # fmt: skip
    return request


def _run_point(
    point: dict, settings: dict, leases: dict[str, Path], requests_path: Path, summary_path: Path
) -> dict:
    run, model, load = point["run"], point["model"], point["load"]
    client = read_json(leases["client_service"])
    llm = read_json(leases["llm_server"])
    gateway = read_json(leases["pushgateway"])
    base = client["url"]
    status, body = http_json(base + "/health", timeout=30)
    if status != 200:
        raise PointFailed(f"client service {base} is not healthy: {body}")
    requests_path.parent.mkdir(parents=True, exist_ok=True)
    seed = settings["sweep"]["seed"] + point["repeat"]
    prompts = build_prompts(settings["workload"], llm["url"], model, seed)
    request = point_request(point, settings, prompts)

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
            print(f"{model} {load}: {done}/{view['total']} requests", file=sys.stderr)
            if view["state"] != "running" and offset >= view["completed"]:
                break
    if view["state"] != "done":
        raise PointFailed(f"point ended {view['state']}: {view.get('error')}")
    records = read_records(requests_path)
    summary = summarize(records, settings["slo"])
    failed = summary["failed"]
    if failed:
        status, _ = http_json(base + "/health", timeout=30)
        if status != 200:
            kinds = ", ".join(f"{k}: {v}" for k, v in summary["errors"].items())
            raise PointFailed(
                f"the LLM server {llm['url']} stopped answering during point {model} {load}: "
                f"{failed} of {summary['requests']} requests failed ({kinds}); the "
                f"{summary['successful']} completed requests are in {requests_path}"
            )
    try:
        server = engine_module(point["engine"]).metadata(llm["url"], model)
    except Exception as exc:  # noqa: BLE001 - metadata must never fail a finished point
        server = {"error": str(exc)}
    if llm.get("heartbeat"):  # a service llmsweep runs: its GPU exporter says what it had
        targets = Path(llm["heartbeat"]).parents[2] / "monitoring" / "targets"
        server["gpu"] = gpu_info(targets / f"service-gpu-{llm['key']}.json")
    summary["point"] = {
        "run": run,
        "model": model,
        "engine": point["engine"],
        "server": server,
        "load": load,
        "pattern": point["pattern"],
        "clients": point["clients"],
        "rate": point["rate"],
        "repeat": point["repeat"],
        "requests_per_client": settings["sweep"].get("requests_per_client"),
        "peak_in_flight": view["peak_in_flight"],
        "client_service": {k: client[k] for k in ("url", "status", "instance")},
        "llm_server": {k: llm[k] for k in ("url", "status", "instance", "pid", "job_id")},
        "started_at": started_at,
        "finished_at": time.time(),
    }
    summary["client"] = view.get("client")
    if summary["client"] and summary["client"]["warning"]:
        print(f"warning: {model} {load}: {summary['client']['warning']}", file=sys.stderr)
    grouping = {"run": run, "model": model, "load": load}
    push_summary(gateway["url"], grouping, summary)
    write_json_atomic(summary_path, summary)
    return summary
