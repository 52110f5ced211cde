"""Where the run's Grafana and Prometheus are, as the run's services recorded them."""

from __future__ import annotations

import json

from llmsweep.monitoring import grafana
from llmsweep.paths import RunPaths


def links(paths: RunPaths) -> dict:
    return {"grafana": _grafana_access(paths), "prometheus": _prometheus_url(paths)}


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
