"""The web front end: configure, launch and watch sweeps from a browser.

An application factory with two blueprints (pages, api), served by waitress (a real WSGI
server) on 127.0.0.1 by default. Every request needs the per-start token (printed on start,
like Jupyter): as ?token= once, which sets a strict same-site cookie, or as a Bearer header.
A request that may change something (any method but GET, HEAD, OPTIONS) carried by the
cookie must also come from the page itself, by its Origin (or Referer): same-site is not
same-origin, and a page on another port of this host would send the cookie too.
"""

from __future__ import annotations

import hmac
import secrets
import threading
from urllib.parse import quote, urlencode, urlsplit

from flask import Flask, jsonify, redirect, request

from llmsweep.web.targets import LocalTarget, Target

COOKIE = "llmsweep_token"
SAFE_METHODS = {"GET", "HEAD", "OPTIONS"}  # every other method may change something


class State:
    """The app's one target (connection reused across requests) and its lock."""

    def __init__(self, target: Target):
        self.target = target
        self.lock = threading.Lock()

    def swap(self, target: Target) -> None:
        with self.lock:
            old, self.target = self.target, target
        if old is not target:
            old.close()


def create_app(settings: dict | None = None) -> Flask:
    """settings: token (random when absent), workflow (the llmsweep checkout), workdir
    (where results go), known_hosts (for SSH targets), allowed_hosts (Host headers)."""
    from llmsweep.web import api, pages

    settings = dict(settings or {})
    app = Flask(__name__)
    app.config["TOKEN"] = settings.get("token") or secrets.token_urlsafe(32)
    app.config["KNOWN_HOSTS"] = settings.get("known_hosts")
    app.config["WORKFLOW"] = settings["workflow"]
    app.config["ALLOWED_HOSTS"] = settings.get("allowed_hosts")
    app.extensions["llmsweep"] = State(
        LocalTarget(settings["workflow"], settings.get("workdir", "."))
    )

    @app.before_request
    def authenticate():
        allowed = app.config["ALLOWED_HOSTS"]
        if allowed and request.host not in allowed:
            # A page elsewhere cannot reach us through a name it controls (DNS rebinding).
            return jsonify(error=f"unexpected Host {request.host!r}"), 400
        token = app.config["TOKEN"]
        given = request.args.get("token")
        if given is not None and same(given, token):
            # Once, in the link printed at start; then a cookie, and the token leaves the URL.
            path = "/" + quote(request.path.lstrip("/"))  # encoded: no CR/LF in Location
            query = urlencode([(k, v) for k, v in request.args.items(multi=True) if k != "token"])
            target = path + (f"?{query}" if query else "")
            resp = redirect(target if request.method == "GET" else path)
            resp.set_cookie(COOKIE, token, httponly=True, samesite="Strict")
            return resp
        header = request.headers.get("Authorization", "")
        bearer = header.removeprefix("Bearer ") if header.startswith("Bearer ") else ""
        sent = bearer or request.cookies.get(COOKIE)
        if not sent or not same(sent, token):
            return jsonify(error="missing or wrong token: open the link printed at start"), 401
        if request.method not in SAFE_METHODS and not bearer and not same_origin():
            # The cookie alone does not tell our page from another one of this site.
            return jsonify(
                error=f"refused: a {request.method} with the cookie must come from this "
                f"page (Origin {own_origin()}), or send the token as a Bearer header"
            ), 403
        return None

    @app.after_request
    def headers(resp):
        resp.headers.setdefault("X-Content-Type-Options", "nosniff")
        resp.headers.setdefault("X-Frame-Options", "DENY")
        resp.headers.setdefault("Referrer-Policy", "no-referrer")
        resp.headers.setdefault("Cache-Control", "no-store")
        resp.headers.setdefault(
            "Content-Security-Policy",
            "default-src 'self'; img-src 'self' data:; object-src 'none'; frame-ancestors 'none'",
        )
        return resp

    app.register_blueprint(pages.bp)
    app.register_blueprint(api.bp, url_prefix="/api")
    return app


def same(given: str, token: str) -> bool:
    """Whether the given text is the token, in constant time (any text: compare_digest
    refuses str that is not ASCII)."""
    return hmac.compare_digest(given.encode("utf-8", "surrogatepass"), token.encode())


def own_origin() -> str:
    return f"{request.scheme}://{request.host}".lower()


def same_origin() -> bool:
    """Whether the request says it comes from a page of this server: its Origin, or without
    one its Referer, is this server's origin. (The Host was checked before.)"""
    origin = request.headers.get("Origin")
    if origin is None:
        referer = request.headers.get("Referer")
        if not referer:
            return False
        try:
            parts = urlsplit(referer)
        except ValueError:
            return False
        origin = f"{parts.scheme}://{parts.netloc}"
    return origin.lower() == own_origin()
