"""HTML pages: the wizard, a run's page, and the run's files (viewed escaped, or downloaded)."""

from __future__ import annotations

import mimetypes

from flask import Blueprint, Response, abort, render_template, request

from llmsweep.paths import RUN_NAME, RunPaths
from llmsweep.web.api import target
from llmsweep.web.files import VIEW_LIMIT

bp = Blueprint("pages", __name__)
STATUS = {2: 400, 3: 403, 4: 404, 5: 409}
# Files are shown as data: no scripts, nothing fetched from elsewhere.
FILE_CSP = "default-src 'none'; img-src data:; style-src 'unsafe-inline'; sandbox"


def _check_run(run: str) -> None:
    if not RUN_NAME.match(run):
        abort(400)


@bp.get("/")
def index():
    return render_template("index.html")


@bp.get("/favicon.ico")
def favicon():
    return Response(status=204)


@bp.get("/runs/<run>")
def run_page(run):
    _check_run(run)
    return render_template("run.html", run=run)


def _read(run: str, path: str, limit: int = 0) -> bytes:
    _check_run(run)
    options = {"limit": str(limit)} if limit else {}
    result = target().call("cat", run, path, **options)
    if result.status:
        message = result.json().get("error", "cannot read the file")
        return abort(Response(message, STATUS.get(result.status, 500), mimetype="text/plain"))
    return result.stdout


@bp.get("/runs/<run>/view")
def view(run):
    """A text file of the run, escaped into a page (first VIEW_LIMIT bytes)."""
    path = request.args.get("path", "")
    data = _read(run, path, VIEW_LIMIT + 1)
    truncated = len(data) > VIEW_LIMIT
    text = data[:VIEW_LIMIT].decode(errors="replace")
    return render_template("view.html", run=run, path=path, text=text, truncated=truncated)


@bp.get("/runs/<run>/download")
def download(run):
    path = request.args.get("path", "")
    data = _read(run, path)
    kind = mimetypes.guess_type(path)[0] or "application/octet-stream"
    name = path.rsplit("/", 1)[-1].replace('"', "")
    resp = Response(data, mimetype=kind)
    resp.headers["Content-Disposition"] = f'attachment; filename="{name}"'
    resp.headers["Content-Security-Policy"] = FILE_CSP
    return resp


@bp.get("/runs/<run>/report")
def report(run):
    """The run's report page (self-contained: styles inline, plots as data: images)."""
    paths = RunPaths(run)
    data = _read(run, paths.relative(paths.report_page))
    resp = Response(data, mimetype="text/html")
    resp.headers["Content-Security-Policy"] = FILE_CSP
    return resp
