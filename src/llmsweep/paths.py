"""The results layout and the one place that maps model names to filesystem-safe slugs."""

from __future__ import annotations

import hashlib
import re
from pathlib import Path

RUN_NAME = re.compile(r"^[A-Za-z0-9][A-Za-z0-9._-]{0,63}$")  # as config/schema.yaml's run


def run_name(text: str) -> str:
    """`text` if it is a valid run name (no path separators, no leading dot), else ValueError."""
    if not RUN_NAME.match(text):
        raise ValueError(f"invalid run name {text!r}: letters, digits, '.', '_', '-' only")
    return text


def model_slug(model: str) -> str:
    """`llama3.2:1b` -> `llama3.2_1b`; a short hash keeps distinct names distinct."""
    safe = re.sub(r"[^A-Za-z0-9._-]+", "_", model).strip("._") or "model"
    if safe == model:
        return safe
    return f"{safe}-{hashlib.sha256(model.encode()).hexdigest()[:6]}"


class RunPaths:
    """Where everything of one run lives, under `<results>/<run>/`."""

    def __init__(self, run: str, results: str | Path = "results"):
        self.run = run
        self.root = Path(results) / run

    @property
    def services(self) -> Path:
        return self.root / "services"

    def service_dir(self, key: str) -> Path:
        return self.services / key

    @property
    def leases(self) -> Path:
        return self.services / "leases"

    @property
    def monitoring(self) -> Path:
        return self.root / "monitoring"

    @property
    def targets(self) -> Path:
        return self.monitoring / "targets"
