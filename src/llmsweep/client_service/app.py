"""Flask application factory of the client service.

GET  /health                 the service and its LLM server
POST /query                  one request; returns text, timings, token counts
POST /benchmark              start one load point, a point request (loadgen.point_request):
                             202 + id; 409 while another runs
GET  /benchmark/<id>         follow it: records from ?offset=, long-polled with ?wait=;
                             the records before offset are freed (410 when asked again)
DELETE /benchmark/<id>       cancel it: it stops within a second
GET  /metrics                Prometheus exposition

Every request must carry the run's token (llmsweep.secret: `Authorization: Bearer`, or
basic authentication as user llmsweep), /health and /metrics too; without it the answer
is 401. The token comes from the file LLMSWEEP_SECRET_FILE names; the service refuses to
start without one. It sends the same token to its LLM server as a bearer token.

Every answer is JSON; every refusal a 4xx whose `error` names the key. Bodies are held to
the point request's bounds (loadgen.point_request: config's, and MAX_BODY_BYTES). A few
threads serve every request (gunicorn, client_service.worker), so the ones that may wait
long are counted: at most LONG_POLLS reads wait at once (more are answered at once, as
with wait=0) and QUERIES queries run at once (more get 429), which leaves threads for
/health and the rest.
"""

from __future__ import annotations

import json
import os
import threading

import prometheus_client
from flask import Blueprint, Flask, current_app, jsonify, request
from werkzeug.exceptions import HTTPException, RequestEntityTooLarge
from werkzeug.middleware.dispatcher import DispatcherMiddleware

from llmsweep import secret
from llmsweep.client_service.points import Gone, Points
from llmsweep.engines import engine_module
from llmsweep.loadgen import patterns, point_request, session, workers
from llmsweep.loadgen.protocols import for_engine
from llmsweep.loadgen.request import stream_request
from llmsweep.loadgen.runner import Server

QUERY_SCHEMA = point_request.query_schema()
BENCHMARK_SCHEMA = point_request.schema()
LONG_POLLS = 8
QUERIES = 4
MAX_WAIT_S = 60

bp = Blueprint("client", __name__)


class BadRequest(Exception):
    pass


def _body(schema: dict) -> dict:
    """The request's JSON body, if `schema` and the point request's rules take it."""
    if not request.is_json:
        raise BadRequest("the body must be a JSON object (Content-Type: application/json)")
    raw = request.get_data(cache=False)  # 413 beyond MAX_CONTENT_LENGTH
    try:
        body = json.loads(raw)
    except RecursionError:
        raise BadRequest("the body is nested too deeply") from None
    except ValueError as exc:
        raise BadRequest(f"the body must be a JSON object, not this: {str(exc)[:200]}") from None
    refused = point_request.refusal(body, schema)
    if refused:
        raise BadRequest(refused)
    return body


def _int_arg(name: str, default: int, lo: int, hi: int) -> int:
    raw = request.args.get(name, default)
    try:
        value = int(raw)
    except (TypeError, ValueError):
        raise BadRequest(f"{name}: must be an integer") from None
    if not lo <= value <= hi:
        raise BadRequest(f"{name}: must be between {lo} and {hi}")
    return value


def upstream_headers() -> dict[str, str]:
    """The run's token as the LLM server takes it."""
    return secret.bearer(current_app.config["TOKEN"])


def upstream() -> str:
    """The LLM server's URL: given at start (LLMSWEEP_UPSTREAM), or read from the endpoint
    file its service writes once ready (LLMSWEEP_UPSTREAM_FILE), so that this service can
    start while the server is still loading; empty while that file does not exist."""
    cfg = current_app.config
    if cfg["UPSTREAM"] or not cfg["UPSTREAM_FILE"]:
        return cfg["UPSTREAM"]
    try:
        with open(cfg["UPSTREAM_FILE"]) as f:
            url = str(json.load(f).get("url") or "")
    except (OSError, ValueError, AttributeError):
        return ""
    cfg["UPSTREAM_SEEN"] = True
    return url


@bp.get("/health")
def health():
    cfg = current_app.config
    url = upstream()
    if not url and not cfg.get("UPSTREAM_SEEN"):
        # Started beside a server that is not ready yet: this service itself is.
        return jsonify(status="waiting_for_upstream", upstream=None, model=cfg["MODEL"]), 200
    if not url:  # the server's endpoint is gone: the server stopped
        return jsonify(status="upstream_down", upstream=None, model=cfg["MODEL"]), 503
    upstream_ok = engine_module(cfg["ENGINE"]).healthy(url, upstream_headers())
    status = 200 if upstream_ok else 503
    return jsonify(
        status="ok" if upstream_ok else "upstream_down",
        upstream=url,
        model=cfg["MODEL"],
        engine=cfg["ENGINE"],
    ), status


@bp.post("/query")
def query():
    slots = current_app.extensions["llmsweep_queries"]
    if not slots.acquire(blocking=False):
        reply = jsonify(error=f"{QUERIES} queries are running already; try again later")
        return reply, 429, {"Retry-After": "1"}
    try:
        return _query()
    finally:
        slots.release()


def _query():
    params = point_request.complete_query(_body(QUERY_SCHEMA))
    cfg = current_app.config
    protocol = for_engine(cfg["ENGINE"])
    body = protocol.body(
        params["api"], cfg["MODEL"], params["prompt"], params["max_tokens"], params["ignore_eos"]
    )

    async def one():
        keep_alive = session.keep_alive_for(cfg["ENGINE"])
        timeout_s = params["request_timeout_s"]
        async with session.new_session(timeout_s, keep_alive, upstream_headers()) as http:
            return await stream_request(
                http, upstream(), protocol, params["api"], body, keep_text=True
            )

    rec = session.run(one())
    return jsonify(rec), (200 if rec["ok"] else 502)


def _busy():
    """409 while a point runs (before its body is read: large bodies wait their turn)."""
    running = current_app.extensions["llmsweep_points"].running()
    return jsonify(error="another point is running", running=running and running.id), 409


@bp.post("/benchmark")
def benchmark():
    points = current_app.extensions["llmsweep_points"]
    if points.running():
        return _busy()
    spec = point_request.complete(_body(BENCHMARK_SCHEMA))
    cfg = current_app.config
    url = upstream()
    if not url:
        return jsonify(error="the LLM server is not ready yet"), 503
    server = Server(url, cfg["ENGINE"], cfg["MODEL"], upstream_headers())
    labels = {"run": cfg["RUN"], "model": cfg["MODEL"], "engine": cfg["ENGINE"]}
    labels |= patterns.metric_labels(spec)
    point = points.start(spec, server, labels)
    if point is None:
        return _busy()
    return jsonify(id=point.id, total=point.total, state=point.state), 202


def _point(point_id: str):
    point = current_app.extensions["llmsweep_points"].get(point_id)
    if point is None:
        return None, (jsonify(error=f"no point {point_id!r}"), 404)
    return point, None


@bp.get("/benchmark/<point_id>")
def follow(point_id: str):
    point, missing = _point(point_id)
    if missing:
        return missing
    offset = _int_arg("offset", 0, 0, 10**12)
    limit = _int_arg("limit", 10000, 1, 100000)
    wait = _int_arg("wait", 0, 0, MAX_WAIT_S)
    slots = current_app.extensions["llmsweep_long_polls"]
    waits = wait > 0 and slots.acquire(blocking=False)
    try:
        return jsonify(point.view(offset, limit, wait if waits else 0))
    except Gone as exc:
        reply = jsonify(
            error=str(exc), next_offset=point.base, state=point.state, completed=point.completed
        )
        return reply, 410
    finally:
        if waits:
            slots.release()


@bp.delete("/benchmark/<point_id>")
def cancel(point_id: str):
    point, missing = _point(point_id)
    if missing:
        return missing
    point.cancel.set()
    return jsonify(id=point.id, state="cancelling" if point.state == "running" else point.state)


def _errors(app: Flask) -> None:
    @app.errorhandler(BadRequest)
    def bad_request(exc):
        return jsonify(error=str(exc)), 400

    @app.errorhandler(RequestEntityTooLarge)
    def too_large(exc):
        limit = app.config["MAX_CONTENT_LENGTH"]
        return jsonify(error=f"the body is larger than the limit of {limit} bytes"), 413

    @app.errorhandler(HTTPException)
    def http_error(exc):
        return jsonify(error=exc.description), exc.code

    @app.errorhandler(Exception)
    def internal_error(exc):  # a bug: still JSON, and logged
        app.logger.exception("unexpected error")
        return jsonify(error=f"internal error: {type(exc).__name__}"), 500


def _token_from_environment() -> str:
    path = os.environ.get("LLMSWEEP_SECRET_FILE", "")
    return secret.read(path) if path else ""


def create_app(config: dict | None = None) -> Flask:
    """Build the app; without `config`, settings come from LLMSWEEP_* environment variables
    (TOKEN: the run's token, from the file LLMSWEEP_SECRET_FILE names)."""
    app = Flask(__name__)
    app.config.update(
        UPSTREAM=os.environ.get("LLMSWEEP_UPSTREAM", ""),
        UPSTREAM_FILE=os.environ.get("LLMSWEEP_UPSTREAM_FILE", ""),
        MODEL=os.environ.get("LLMSWEEP_MODEL", ""),
        ENGINE=os.environ.get("LLMSWEEP_ENGINE", "openai"),
        RUN=os.environ.get("LLMSWEEP_RUN", ""),
        MAX_CONTENT_LENGTH=point_request.MAX_BODY_BYTES,
    )
    if config:
        app.config.update(config)
    if not app.config.get("TOKEN"):
        app.config["TOKEN"] = _token_from_environment()
    if not app.config["TOKEN"]:
        raise RuntimeError("the client service needs the run's token: set LLMSWEEP_SECRET_FILE")
    app.extensions["llmsweep_points"] = Points()
    app.extensions["llmsweep_long_polls"] = threading.BoundedSemaphore(LONG_POLLS)
    app.extensions["llmsweep_queries"] = threading.BoundedSemaphore(QUERIES)
    app.register_blueprint(bp)
    _errors(app)
    session.raise_fd_limit()
    workers.prepare()
    app.wsgi_app = secret.guard(
        DispatcherMiddleware(app.wsgi_app, {"/metrics": prometheus_client.make_wsgi_app()}),
        app.config["TOKEN"],
    )
    return app
