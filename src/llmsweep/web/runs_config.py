"""A run's config as the web front end sends it: YAML text, checked field by field against
the schema, and the sweep points it makes."""

from __future__ import annotations

import yaml

from llmsweep import config as configuration
from llmsweep import deployments
from llmsweep.loadgen.sweep import sweep_points
from llmsweep.web.failure import BAD, Failure


def defaults() -> dict:
    """The default config file's text, for the wizard to start from."""
    return {"config": configuration.defaults_file()}


def parse(text: str):
    """The config the YAML text holds ({} for none); text that is not YAML is a bad request."""
    try:
        return yaml.safe_load(text) or {}
    except yaml.YAMLError as exc:
        raise Failure(BAD, f"not YAML: {exc}") from None


def check(user) -> tuple[dict, list[dict]]:
    """The user's config merged over the defaults, and its errors field by field."""
    if not isinstance(user, dict):
        return {}, [{"key": "(top level)", "message": "the config must be a mapping"}]
    cfg = configuration.merged(user)
    errors = configuration.field_errors(cfg)
    if not errors:
        try:
            deployments.expand(cfg)
        except configuration.ConfigError as exc:
            errors = [{"key": "deployments", "message": str(exc)}]
    return cfg, errors


def points(cfg: dict, errors: list) -> list[dict]:
    """The sweep points of a valid config, each with its deployment's slug and a display
    name."""
    if errors:
        return []
    return [_point(p) for p in sweep_points(cfg)]


def _point(point: dict) -> dict:
    name = f"{point['deployment']} {point['load']}"
    return {**point, "slug": point["deployment"], "name": name}


def validate(text: str) -> dict:
    cfg, errors = check(parse(text))
    return {"ok": not errors, "errors": errors, "points": len(points(cfg, errors))}


def accepted(text: str) -> dict:
    """The user's config from the YAML text, if it is valid; else a bad request that lists
    the errors."""
    user = parse(text)
    _, errors = check(user)
    if errors:
        raise Failure(BAD, "invalid config", errors=errors)
    return user
