"""HTML pages: the wizard, a run's page, and the run's files (viewed escaped, or downloaded)."""

from __future__ import annotations

import mimetypes
from urllib.parse import quote

from flask import Blueprint, Response, abort, render_template, request

from llmsweep.config import load_schema
from llmsweep.paths import RunPaths, run_name
from llmsweep.web.api import target
from llmsweep.web.files import VIEW_LIMIT

bp = Blueprint("pages", __name__)
STATUS = {2: 400, 3: 403, 4: 404, 5: 409}
# Files are shown as data: no scripts, nothing fetched from elsewhere.
FILE_CSP = "default-src 'none'; img-src data:; style-src 'unsafe-inline'; sandbox"


def _check_run(run: str) -> None:
    try:
        run_name(run)
    except ValueError:
        abort(400)


def _check_path(path: str) -> None:
    """A path for the target's command line: no NUL (a query's text is valid Unicode)."""
    if "\0" in path:
        abort(Response("a path cannot hold a NUL character", 400, mimetype="text/plain"))


@bp.get("/")
def index():
    engines = load_schema()["properties"]["engine"]["enum"]
    return render_template("index.html", engines=engines)


@bp.get("/favicon.ico")
def favicon():
    return Response(status=204)


@bp.get("/runs/<run>")
def run_page(run):
    _check_run(run)
    return render_template("run.html", run=run)


def _read(run: str, path: str, limit: int = 0) -> bytes:
    _check_run(run)
    _check_path(path)
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
    resp = Response(data, mimetype=kind)
    resp.headers["Content-Disposition"] = _attachment(path.rsplit("/", 1)[-1])
    resp.headers["Content-Security-Policy"] = FILE_CSP
    return resp


def _attachment(name: str) -> str:
    """The Content-Disposition of a download: the name as it is when it is printable ASCII;
    else an ASCII stand-in and the name itself encoded (RFC 6266): a header cannot carry a
    line break or a character beyond Latin-1."""
    if name.isascii() and name.isprintable():
        return f'attachment; filename="{name.replace(chr(34), "")}"'
    plain = "".join(c if c.isascii() and c.isprintable() and c != '"' else "_" for c in name)
    return f"attachment; filename=\"{plain}\"; filename*=UTF-8''{quote(name, safe='')}"


@bp.get("/runs/<run>/report")
def report(run):
    """The run's report page (self-contained: styles inline, plots as data: images)."""
    paths = RunPaths(run)
    data = _read(run, paths.relative(paths.report_page))
    resp = Response(data, mimetype="text/html")
    resp.headers["Content-Security-Policy"] = FILE_CSP
    return resp
