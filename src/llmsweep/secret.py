"""The run's secret: one random token per run that every service of the run requires.

A run's services bind a compute node's address, where anyone on the cluster network can
reach them. Each one asks for the run's token:
  the LLM server       Authorization: Bearer (llama-server --api-key-file, vLLM's
                       VLLM_API_KEY, SGLang's --api-key given inside its process)
  the client service   Bearer or Basic (llmsweep.client_service)
  Prometheus, the Pushgateway, the node exporter
                       Basic, user USER (their --web.config.file holds a bcrypt hash)
  the GPU exporter     Bearer or Basic (llmsweep.metrics.gpu_exporter)
The token lives in one file of mode 0600 (RunPaths.secret), created once per run and kept
on re-runs; it never appears on a command line, in a spec or in a log. Programs that take
a file are given the file; the service wrapper puts it in the environment of those that
take a variable (ENV_PLACEHOLDER).
"""

from __future__ import annotations

import base64
import hmac
import json
import os
import secrets
from pathlib import Path

import bcrypt
import yaml

USER = "llmsweep"  # the basic-auth user name of every service of the run
# In a service spec's environment: replaced by the token when the wrapper starts the
# program, so the token is written nowhere but its own file.
ENV_PLACEHOLDER = "{secret}"


def create_file(path: str | Path, content: str = "") -> Path:
    """Create `path` with mode 0600 holding `content` (a new token when empty), once: an
    existing file is kept (and made 0600 again). Safe when several processes race."""
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    try:
        fd = os.open(path, os.O_WRONLY | os.O_CREAT | os.O_EXCL, 0o600)
    except FileExistsError:
        os.chmod(path, 0o600)
        return path
    with os.fdopen(fd, "w") as f:
        f.write(content or secrets.token_urlsafe(32))
    return path


def ensure(path: str | Path) -> Path:
    """The run's secret file at `path`, created when missing."""
    return create_file(path)


def read(path: str | Path) -> str:
    """The token in secret file `path` (its first line)."""
    with open(path) as f:
        return f.readline().strip()


def bearer(token: str) -> dict[str, str]:
    """Headers for a service that takes the token as a bearer token (the LLM servers)."""
    return {"Authorization": f"Bearer {token}"}


def basic(token: str) -> dict[str, str]:
    """Headers for a service that takes basic authentication (the monitoring services)."""
    pair = base64.b64encode(f"{USER}:{token}".encode()).decode()
    return {"Authorization": f"Basic {pair}"}


def headers(kind: str | None, token: str) -> dict[str, str]:
    """The headers that present `token` to a service that takes it as `kind` (basic,
    bearer; None: no headers)."""
    if kind == "basic":
        return basic(token)
    if kind == "bearer":
        return bearer(token)
    return {}


def headers_of(service: dict) -> dict[str, str]:
    """The headers that present the run's token to a service as it takes it; `service` is
    its spec, instance or lease (each names `auth` and `secret_file`)."""
    if not service.get("auth") or not service.get("secret_file"):
        return {}
    return headers(service["auth"], read(service["secret_file"]))


def accepts(token: str, header: str | None) -> bool:
    """Whether an Authorization header carries `token`, as a bearer token or as the basic
    password of USER; compared in constant time."""
    if not token or not header:
        return False
    kind, _, value = header.strip().partition(" ")
    kind, value = kind.lower(), value.strip()
    if kind == "bearer":
        given = value
    elif kind == "basic":
        try:
            user, _, given = base64.b64decode(value, validate=True).decode().partition(":")
        except (ValueError, UnicodeDecodeError):
            return False
        if not hmac.compare_digest(user.encode(), USER.encode()):
            return False
    else:
        return False
    return hmac.compare_digest(given.encode(errors="replace"), token.encode())


def guard(wsgi_app, token: str):
    """`wsgi_app` behind `token` (as accepts() takes it): any request without it gets 401
    and a JSON reason before the application sees it."""
    body = json.dumps({"error": "this service needs the run's token (llmsweep.secret)"}).encode()

    def guarded(environ, start_response):
        if accepts(token, environ.get("HTTP_AUTHORIZATION")):
            return wsgi_app(environ, start_response)
        start_response(
            "401 UNAUTHORIZED",
            [
                ("Content-Type", "application/json"),
                ("Content-Length", str(len(body))),
                ("WWW-Authenticate", 'Basic realm="llmsweep"'),
            ],
        )
        return [body]

    return guarded


def web_config(token: str) -> str:
    """The Prometheus exporter toolkit's web configuration (--web.config.file) that lets in
    USER with `token` only: a bcrypt hash, never the token itself."""
    hashed = bcrypt.hashpw(token.encode(), bcrypt.gensalt(rounds=10)).decode()
    return yaml.safe_dump({"basic_auth_users": {USER: hashed}}, sort_keys=False)


def ensure_web_config(path: str | Path, secret_file: str | Path) -> Path:
    """The web configuration file of the run at `path` (0600) for the token in
    `secret_file`: kept while it matches the token, written again when it does not."""
    token, path = read(secret_file), Path(path)
    try:
        hashed = yaml.safe_load(path.read_text())["basic_auth_users"][USER]
        if bcrypt.checkpw(token.encode(), hashed.encode()):
            return path
    except (OSError, ValueError, TypeError, KeyError, AttributeError, yaml.YAMLError):
        pass
    path.unlink(missing_ok=True)
    return create_file(path, web_config(token))
