"""Where the run's Grafana and Prometheus are, as the run's services recorded them, and what
the run page's charts need to ask Prometheus: when the run started, its scrape interval and
the run's token (llmsweep.secret; the web front end's server keeps it, the browser is
never sent it)."""

from __future__ import annotations

import json

from llmsweep import secret
from llmsweep.live.plan import read_plan
from llmsweep.monitoring import grafana
from llmsweep.paths import RunPaths
from llmsweep.web import launch


def links(paths: RunPaths) -> dict:
    plan = read_plan(paths) or {}
    monitoring = (plan.get("config") or {}).get("monitoring") or {}
    return {
        "grafana": _grafana_access(paths),
        "prometheus": _prometheus_url(paths),
        "started_at": plan.get("started_at") or (launch.driver(paths) or {}).get("started_at"),
        "scrape_interval_s": monitoring.get("scrape_interval_s"),
        "secret_file": str(paths.secret.resolve()),
        "token": _token(paths),
    }


def _token(paths: RunPaths) -> str | None:
    try:
        return secret.read(paths.secret)
    except OSError:
        return None


def _grafana_access(paths: RunPaths) -> dict | None:
    """Grafana's URL and login (user, password file), once it runs."""
    try:
        return json.loads((grafana.directory(paths) / "access.json").read_text())
    except (OSError, ValueError):
        return None


def _prometheus_url(paths: RunPaths) -> str | None:
    try:
        endpoint = json.loads((paths.service_dir("prometheus") / "endpoint.json").read_text())
        return endpoint["url"]
    except (OSError, ValueError, KeyError):
        return None
