"""Readiness probes: a service is ready when it does its job, not when its port opens."""

from __future__ import annotations

from llmsweep.engines import engine_module
from llmsweep.util import http_ok


def check_ready(ready: dict, url: str, log_text: str = "", headers: dict | None = None) -> bool:
    """Whether the service does its job (asked with `headers`: secret.headers_of). An LLM engine
    may also check, from the server's own log since this start, that it serves as
    configured, raising NotServable if not."""
    if ready["kind"] == "http":
        return http_ok(url + ready["path"], headers=headers)
    if ready["kind"] == "llm":
        engine = engine_module(ready["engine"])
        if not engine.ready(url, ready["model"], headers):
            return False
        verify = getattr(engine, "verify", None)
        if verify is not None:
            verify(ready, log_text)
        return True
    raise ValueError(f"unknown readiness kind {ready['kind']!r}")


def check_health(ready: dict, url: str, headers: dict | None = None) -> bool:
    """A cheap liveness probe for a service that was ready before."""
    if ready["kind"] == "http":
        return http_ok(url + ready["path"], headers=headers)
    return engine_module(ready["engine"]).healthy(url, headers)
