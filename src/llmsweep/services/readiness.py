"""Readiness probes: a service is ready when it does its job, not when its port opens."""

from __future__ import annotations

from llmsweep.engines import engine_module
from llmsweep.util import http_ok


def check_ready(ready: dict, url: str) -> bool:
    if ready["kind"] == "http":
        return http_ok(url + ready["path"])
    if ready["kind"] == "llm":
        return engine_module(ready["engine"]).ready(url, ready["model"])
    raise ValueError(f"unknown readiness kind {ready['kind']!r}")


def check_health(ready: dict, url: str) -> bool:
    """A cheap liveness probe for a service that was ready before."""
    if ready["kind"] == "http":
        return http_ok(url + ready["path"])
    return engine_module(ready["engine"]).healthy(url)
