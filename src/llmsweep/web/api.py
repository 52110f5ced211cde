"""JSON API of the web front end: config, target, runs (launch, progress, queue, files).

User text reaches the target's command line only checked: run names and job ids by their
patterns, other text as strings without NUL (and the target puts them after `--`)."""

from __future__ import annotations

from pathlib import Path
from urllib.parse import urlsplit

import yaml
from flask import Blueprint, current_app, jsonify, request

from llmsweep import secret
from llmsweep.paths import run_name
from llmsweep.services.slurm import valid_job_id
from llmsweep.web import charts as live_charts
from llmsweep.web.targets import LocalTarget, SshTarget, TargetError

bp = Blueprint("api", __name__)
STATUS = {0: 200, 2: 400, 3: 403, 4: 404, 5: 409}


def state():
    return current_app.extensions["llmsweep"]


def target():
    return state().target


def reply(result, ok_status: int = 200):
    """The remote operation's JSON with its status mapped to HTTP."""
    body = result.json()
    status = STATUS.get(result.status, 500)
    if status == 500:
        body = {"error": body.get("error") or result.stderr[-2000:] or "the operation failed"}
    return jsonify(body), ok_status if status == 200 else status


def body() -> dict:
    try:
        data = request.get_json(silent=True)
    except RecursionError:
        data = None
    if not isinstance(data, dict):
        raise BadRequest("the request body must be a JSON object (Content-Type: application/json)")
    return data


def user_text(value, what: str) -> str:
    """User text for the target's command line: a string (absent: empty) without NUL that
    UTF-8 can carry; else a bad request."""
    if value is None:
        return ""
    if not isinstance(value, str):
        raise BadRequest(f"{what}: text is required")
    if "\0" in value:
        raise BadRequest(f"{what}: a NUL character is not allowed")
    try:
        value.encode()
    except UnicodeEncodeError:
        raise BadRequest(f"{what}: not valid text") from None
    return value


def checked_run(run: str) -> str:
    """A run name from the URL, checked before it goes anywhere."""
    try:
        return run_name(run)
    except ValueError as exc:
        raise BadRequest(f"run: {exc}") from None


class BadRequest(Exception):
    pass


@bp.errorhandler(BadRequest)
def bad_request(exc):
    return jsonify(error=str(exc)), 400


@bp.errorhandler(TargetError)
def target_error(exc):
    return jsonify(error=str(exc)), 502


@bp.errorhandler(404)
def not_found(_):
    return jsonify(error="no such API endpoint"), 404


@bp.errorhandler(405)
def not_allowed(_):
    return jsonify(error="method not allowed"), 405


def config_text(data: dict) -> str:
    cfg = data.get("config")
    if not isinstance(cfg, dict):
        raise BadRequest("config: an object of config keys is required")
    try:
        return yaml.safe_dump(cfg, sort_keys=False)
    except (yaml.YAMLError, RecursionError):
        raise BadRequest("config: cannot be written as YAML") from None


@bp.get("/defaults")
def defaults():
    return reply(target().call("defaults"))


@bp.post("/validate")
def validate():
    text = config_text(body())
    result = target().call("validate", stdin=text.encode())
    if result.status:
        return reply(result)
    return jsonify({**result.json(), "yaml": text})


@bp.get("/target")
def get_target():
    return jsonify(target().describe())


@bp.post("/target")
def set_target():
    data = body()
    kind = data.get("kind")
    if kind == "local":
        new = LocalTarget(
            current_app.config["WORKFLOW"], user_text(data.get("workdir"), "workdir") or "."
        )
    elif kind == "ssh":
        new = ssh_target(data)
    else:
        raise BadRequest("kind: local or ssh")
    extra = {}
    if kind == "ssh" and data.get("upload"):
        extra["uploaded"] = new.upload(Path(current_app.config["WORKFLOW"]))
    state().swap(new)
    return jsonify({**new.describe(), **extra})


def ssh_target(data: dict) -> SshTarget:
    """The SSH target the request names, connected (the host key checked)."""
    host, port = ssh_host(data), ssh_port(data)
    field = {
        key: user_text(data.get(key), key) for key in ("user", "key_file", "workflow", "workdir")
    }
    return SshTarget(
        host,
        port,
        user=field["user"] or None,
        key_file=field["key_file"] or None,
        known_hosts=current_app.config["KNOWN_HOSTS"],
        workflow=field["workflow"] or "llmsweep",
        workdir=field["workdir"] or None,
        python=user_text(data.get("python"), "python") or None,
    )


def ssh_host(data: dict) -> str:
    host = user_text(data.get("host"), "host").strip()
    if not host or host.startswith("-") or any(c.isspace() for c in host):
        raise BadRequest("host: a host name or address is required")
    return host


def ssh_port(data: dict) -> int:
    try:
        port = int(data.get("port") or 22)
    except (TypeError, ValueError, OverflowError):
        raise BadRequest("port: a number") from None
    if not 0 < port < 65536:
        raise BadRequest("port: 1 to 65535")
    return port


@bp.get("/runs")
def runs():
    return reply(target().call("runs"))


@bp.post("/runs")
def launch():
    data = body()
    config = config_text(data).encode()
    profile = user_text(data.get("profile"), "profile") or "default"
    run = str(data["config"].get("run") or "")
    try:
        run_name(run)
    except ValueError as exc:
        return bad_run_in_config(config, exc)
    return reply(target().call("launch", run, stdin=config, profile=profile), 201)


def bad_run_in_config(config: bytes, exc: ValueError):
    """400 for a config whose run is not a run name, with the config's errors field by
    field as the target's schema finds them (as a launch would have answered)."""
    result = target().call("validate", stdin=config)
    if result.status:
        return reply(result)
    errors = result.json().get("errors") or [{"key": "run", "message": str(exc)}]
    return jsonify(error="invalid config", errors=errors), 400


@bp.get("/runs/<run>/progress")
def progress(run):
    return reply(target().call("progress", checked_run(run)))


@bp.get("/runs/<run>/queue")
def queue(run):
    return reply(target().call("queue", checked_run(run)))


@bp.post("/runs/<run>/jobs/<job>/cancel")
def cancel(run, job):
    run = checked_run(run)
    if not valid_job_id(job):
        raise BadRequest(f"{job!r} is not a SLURM job id")
    return reply(target().call("cancel", run, job))


@bp.post("/runs/<run>/stop")
def stop(run):
    return reply(target().call("stop", checked_run(run)))


@bp.get("/runs/<run>/files")
def files(run):
    run, path = checked_run(run), user_text(request.args.get("path"), "path")
    return reply(target().call("ls", run, path))


@bp.get("/runs/<run>/monitoring")
def monitoring(run):
    """Grafana (or Prometheus) of the run, reachable from this machine: through an SSH
    tunnel on the target's connection when the run is on a cluster."""
    result = target().call("monitoring", checked_run(run))
    if result.status:
        return reply(result)
    info = result.json()
    out = {"grafana": None, "prometheus": None, "tunnel": target().kind == "ssh"}
    if info.get("grafana"):
        out["grafana"] = grafana_link(info["grafana"])
    if info.get("prometheus"):
        out["prometheus"] = {
            **prometheus_link(info["prometheus"]),
            "user": secret.USER,
            "password_file": info.get("secret_file"),
        }
    return jsonify(out)


def grafana_link(access: dict) -> dict:
    """The run's Grafana as this machine reaches it, with its login."""
    return {
        "url": target().forward(access["host"], access["port"]),
        "user": access["user"],
        "password_file": access["password_file"],
        "remote_url": access["url"],
    }


def prometheus_link(url: str) -> dict:
    where = urlsplit(url)
    return {"url": target().forward(where.hostname, where.port), "remote_url": url}


@bp.get("/runs/<run>/charts")
def charts(run):
    """The run page's live charts from the run's own Prometheus, asked from this machine
    (through the SSH connection's tunnel when the run is on a cluster)."""
    run = checked_run(run)
    result = target().call("monitoring", run)
    if result.status:
        return reply(result)
    info = result.json()
    if not info.get("prometheus"):
        note = "the run's Prometheus is not running (it runs while the sweep does)"
        return jsonify(available=False, note=note)
    url = prometheus_link(info["prometheus"])["url"]
    try:
        data = live_charts.fetch(
            url,
            run,
            info.get("started_at"),
            info.get("scrape_interval_s"),
            headers=secret.basic(info.get("token") or ""),
        )
    except live_charts.PrometheusError as exc:
        return jsonify(available=False, note=str(exc))
    return jsonify({**data, "prometheus": url})
