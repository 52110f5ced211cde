"""One sweep point: drive the client service, keep every record, summarise, push."""

from __future__ import annotations

import json
import os
import sys
import time
from pathlib import Path

from llmsweep import secret
from llmsweep.engines import engine_module
from llmsweep.live.terminal import terminal
from llmsweep.live.watch import PointWatch
from llmsweep.loadgen import patterns, point_request
from llmsweep.loadgen.stats import summarize
from llmsweep.loadgen.workload import build_prompts, build_trace
from llmsweep.metrics.gpu_info import gpu_info
from llmsweep.metrics.push import push_summary
from llmsweep.paths import RunPaths
from llmsweep.util import http_json, wait_until, write_json_atomic

# Each long poll returns when records arrive or after this many seconds, so the live view
# (figures, time left, ETA) is refreshed at least this often.
POLL_WAIT_S = 2
LOG_EVERY_S = 10  # the log's "done/total requests" line, when nothing was completed
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
    point: dict, settings: dict, leases: dict[str, dict], requests_path: Path, summary_path: Path
) -> dict:
    """Run one point through the client service of its leases; return the summary.

    `point` is a sweep point (deployment, model, pattern, clients or rate, repeat, load)
    with run, engine, the server's settings and GPUs and the point's fingerprint;
    `settings` holds the config's sweep, warmup, workload and slo sections; `leases` the
    leases held on the services by name (llm_server, client_service, and pushgateway and
    prometheus with monitoring on).
    Records are appended to `requests_path` as requests complete; on failure they are
    also kept under another name, since a re-run replaces requests.jsonl. While it runs,
    its live figures go to its live.json and the terminal (llmsweep.live).
    """
    requests_path = Path(requests_path)
    watch = PointWatch(RunPaths.of_point_file(requests_path), point, settings, terminal())
    try:
        return _run_point(point, settings, leases, requests_path, Path(summary_path), watch)
    except BaseException as exc:
        watch.failed((str(exc) or type(exc).__name__) if isinstance(exc, Exception) else "stopped")
        kept = keep_failed_attempt(requests_path)
        if kept:
            print(f"the records of the failed attempt are kept in {kept}", file=sys.stderr)
        raise


def _run_point(
    point: dict,
    settings: dict,
    held: dict[str, dict],
    requests_path: Path,
    summary_path: Path,
    watch: PointWatch,
) -> dict:
    """The point's steps: start it, follow it to the end, check it, describe it, publish."""
    client, llm = held["client_service"], held["llm_server"]
    seed = point_request.seed(settings["sweep"], point)
    module = patterns.of(point)
    args = (settings["workload"], llm["url"], point["model"], seed, secret.headers_of(llm))
    if module.SCHEDULE:  # a trace: its rows are the prompts, and give the schedule
        prompts, schedule = build_trace(*args)
    else:
        prompts, schedule = build_prompts(*args), None
    point_id = start_point(client, point_request.build(point, settings, prompts, schedule))
    started_at = time.time()
    requests_path.parent.mkdir(parents=True, exist_ok=True)
    watch.begin()
    view = follow_point(client, point_id, requests_path, point, list(held.values()), watch)
    records = read_records(requests_path)
    summary = summarize(records, settings["slo"], settings["sweep"]["slice_s"])
    summary |= module.figures([r for r in records if not r.get("warmup")])
    check_server_survived(summary, client, llm["url"], point, requests_path)
    summary["point"] = describe_point(point, settings, held, view, started_at)
    summary["client"] = view.get("client")
    if summary.get("stall_warning"):
        print(f"warning: {_name(point)}: {summary['stall_warning']}", file=sys.stderr)
    if summary["client"] and summary["client"]["warning"]:
        print(f"warning: {_name(point)}: {summary['client']['warning']}", file=sys.stderr)
    if "pushgateway" in held:
        grouping = {
            "run": point["run"],
            "model": point["model"],
            "deployment": point["deployment"],
            "load": point["load"],
        }
        try:
            gateway = held["pushgateway"]
            push_summary(gateway["url"], grouping, summary, secret.headers_of(gateway))
        except OSError as exc:  # the figures are kept in summary.json all the same
            summary["monitoring_gap"] = f"the Pushgateway did not take this summary: {exc}"
            print(f"warning: {_name(point)}: {summary['monitoring_gap']}", file=sys.stderr)
    write_json_atomic(summary_path, summary)
    watch.finished(summary)
    return summary


def _name(point: dict) -> str:
    return f"{point['deployment']} {point['load']}"


def start_point(client: dict, request: dict) -> str:
    """Hand the point to the client service (its lease: `client`), waiting while another
    point runs there; return its id."""
    base, headers = client["url"], secret.headers_of(client)
    status, body = http_json(base + "/health", timeout=30, headers=headers)
    if status != 200:
        raise PointFailed(f"client service {base} is not healthy: {body}")

    def start():
        status, body = http_json(base + "/benchmark", request, timeout=30, headers=headers)
        if status == 202:
            return body
        if status == 409:
            return None  # another point still runs on this service: wait for it
        raise PointFailed(f"client service refused the point ({status}): {body}")

    return wait_until(start, BUSY_TIMEOUT_S, "the client service to be free", max_delay=2)["id"]


def follow_point(
    client: dict,
    point_id: str,
    requests_path: Path,
    point: dict,
    leases: list[dict],
    watch: PointWatch | None = None,
) -> dict:
    """Append the point's records to `requests_path` as they complete (synced to disk) and
    renew the leases, until the point ends; hand every view to `watch` (the live view);
    return the client service's last view. `client` is the client service's lease."""
    base, headers = client["url"], secret.headers_of(client)
    offset = 0
    logged = (-1, 0.0)  # (requests done, when) of the log's last progress line
    with open(requests_path, "w") as out:
        while True:
            url = f"{base}/benchmark/{point_id}?offset={offset}&wait={POLL_WAIT_S}"
            status, view = http_json(url, timeout=POLL_WAIT_S + 30, headers=headers)
            if status != 200:
                raise PointFailed(f"lost the point on the client service ({status}): {view}")
            for rec in view["records"]:
                out.write(json.dumps(rec) + "\n")
            out.flush()
            os.fsync(out.fileno())
            offset = view["next_offset"]
            renew(*leases)
            if watch is not None:
                watch.update(view)
            done = view["completed"]
            if done != logged[0] or time.monotonic() - logged[1] >= LOG_EVERY_S:
                warning = f"; WARNING: {view['warning']}" if view.get("warning") else ""
                print(f"{_name(point)}: {done}/{view['total']} requests{warning}", file=sys.stderr)
                logged = (done, time.monotonic())
            if view["state"] != "running" and offset >= view["completed"]:
                break
    if view["state"] != "done":
        raise PointFailed(f"point ended {view['state']}: {view.get('error')}")
    return view


def check_server_survived(
    summary: dict, client: dict, llm_url: str, point: dict, requests_path: Path
) -> None:
    """Failed requests are data while the server stays up; a server that stopped answering
    fails the point (its completed records are kept)."""
    failed = summary["failed"]
    if not failed:
        return
    status, _ = http_json(client["url"] + "/health", timeout=30, headers=secret.headers_of(client))
    if status != 200:
        kinds = ", ".join(f"{k}: {v}" for k, v in summary["errors"].items())
        raise PointFailed(
            f"the LLM server {llm_url} stopped answering during point {_name(point)}: "
            f"{failed} of {summary['requests']} requests failed ({kinds}); the "
            f"{summary['successful']} completed requests are in {requests_path}"
        )


def server_info(point: dict, llm: dict, monitored: bool) -> dict:
    """What the LLM server says of itself, and its GPUs from the exporter beside it."""
    try:
        headers = secret.headers_of(llm)
        server = engine_module(point["engine"]).metadata(llm["url"], point["model"], headers)
    except Exception as exc:  # noqa: BLE001 - metadata must never fail a finished point
        server = {"error": str(exc)}
    if llm.get("heartbeat") and monitored:  # a service llmsweep runs, with its GPU exporter
        targets = RunPaths.of_service_file(llm["heartbeat"]).targets
        server["gpu"] = gpu_info(targets / f"service-gpu-{llm['key']}.json", headers)
    return server


def describe_point(point: dict, settings: dict, held: dict, view: dict, started_at: float) -> dict:
    """The summary's `point` section: what ran, where, and when."""
    client, llm = held["client_service"], held["llm_server"]
    return {
        "run": point["run"],
        "model": point["model"],
        "deployment": point["deployment"],
        "engine": point["engine"],
        "settings": point["settings"],
        "gpus": point["gpus"],
        "fingerprint": point["fingerprint"],
        "server": server_info(point, llm, monitored="pushgateway" in held),
        "load": point["load"],
        "pattern": point["pattern"],
        **patterns.levels(point),
        "repeat": point["repeat"],
        "requests_per_client": settings["sweep"].get("requests_per_client"),
        "peak_in_flight": view["peak_in_flight"],
        "client_service": {k: client[k] for k in ("url", "status", "instance")},
        "llm_server": {k: llm[k] for k in ("url", "status", "instance", "pid", "job_id")},
        "started_at": started_at,
        "finished_at": time.time(),
    }
