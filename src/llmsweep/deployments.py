"""Deployments: the server configurations a run benchmarks, from a validated config.

A deployment is one engine serving one model with one set of engine settings on a number
of GPUs. The config gives them as a matrix (`models` x `gpus` x every engine setting that
lists several values) and as an explicit list (`deployments`). Each has a slug, its
results folder: the model's slug, then the engine when it is not the run's, then what is
swept (or set by an explicit entry): the GPU count and each such setting whose value is
not the default. Settings given once for the whole run are not in the slug, so a plain
`models:` list keeps the model's slug, and adding a value to a settings list leaves the
other slugs as they were: only the new deployments' points run. A changed setting that
is not in the slug re-runs the points (their fingerprint, see llmsweep.deploy, changes).
"""

from __future__ import annotations

import hashlib
import itertools
import json
import re

from llmsweep.config import ConfigError, is_dimension
from llmsweep.engines import engine_module, settings_schema
from llmsweep.paths import model_slug

SLUG_MAX = 100  # characters of a slug; longer ones end in a hash of the whole


def expand(cfg: dict) -> list[dict]:
    """Every deployment of `cfg`, in order: the matrix (model x gpus x settings), then the
    explicit list. Raises ConfigError when two of them would share a results folder."""
    main = cfg["engine"]
    gpu_values = cfg["gpus"] if isinstance(cfg["gpus"], list) else [cfg["gpus"]]
    base, dims = split_settings(cfg, main)
    found = []
    swept_gpus = isinstance(cfg["gpus"], list)
    for model, gpus in itertools.product(cfg["models"], gpu_values):
        for combo in itertools.product(*dims.values()):
            settings = {**base, **dict(zip(dims, combo, strict=True))}
            found.append(
                (
                    "models",
                    make(cfg, main, model, gpus, settings, set(dims), swept_gpus),
                )
            )
    for i, entry in enumerate(cfg["deployments"]):
        engine = entry["engine"] or main
        base, dims = split_settings(cfg, engine)
        settings = {**base, **{k: v[0] for k, v in dims.items()}, **entry["settings"]}
        gpus = gpu_values[0] if entry["gpus"] is None else entry["gpus"]
        own = set(dims) | set(entry["settings"])
        shown_gpus = swept_gpus or gpus != gpu_values[0]
        dep = make(cfg, engine, entry["model"], gpus, settings, own, shown_gpus, entry["name"])
        found.append((f"deployments[{i}]", dep))
    return _unique(found)


def _unique(found: list[tuple[str, dict]]) -> list[dict]:
    """The deployments, each once: two with the same engine, model, GPUs and settings, or
    the same folder, are an error naming the second."""
    slugs, contents = {}, {}
    for where, dep in found:
        content = json.dumps([dep[k] for k in ("engine", "model", "gpus", "settings")])
        if content in contents:
            raise ConfigError(
                f"{where}: the same deployment as {contents[content]} gives ({dep['label']})"
            )
        if dep["slug"] in slugs:
            raise ConfigError(
                f"{where}: the same folder ({dep['slug']}) as {slugs[dep['slug']]}"
                " gives; give it a name"
            )
        slugs[dep["slug"]], contents[content] = where, where
    return [dep for _, dep in found]


def split_settings(cfg: dict, engine: str) -> tuple[dict, dict]:
    """engines.<engine> as (the settings with one value, the settings listing values to
    sweep)."""
    props = settings_schema(engine)["properties"]
    section = cfg["engines"][engine]
    dims = {k: v for k, v in section.items() if k in props and is_dimension(props[k], v)}
    return {k: v for k, v in section.items() if k not in dims}, dims


def make(
    cfg: dict,
    engine: str,
    model: str,
    gpus: int | None,
    settings: dict,
    varied: set[str] = frozenset(),
    gpus_varied: bool = False,
    name: str | None = None,
) -> dict:
    """One deployment: its slug, engine, model, GPUs per server (None: as the machine or
    the profile gives), its full engine settings and a label for messages. `varied` names
    the settings, and `gpus_varied` says whether the GPU count, that set it apart from
    other deployments (in its slug)."""
    shown = shown_settings(engine, {k: v for k, v in settings.items() if k in varied})
    parts = [model_slug(model)]
    if engine != cfg["engine"]:
        parts.append(engine)
    if gpus_varied and gpus is not None:
        parts.append(f"gpus-{gpus}")
    parts += [f"{key}-{_token(value)}" for key, value in shown.items()]
    details = ([engine] if engine != cfg["engine"] else []) + (
        [f"gpus={gpus}"] if gpus_varied and gpus is not None else []
    )
    places = engine_module(engine).PLACES
    details += [
        f"{k}={json.dumps(settings[k])}"
        for k in sorted(varied)
        if k in settings and k not in places
    ]
    return {
        "slug": name or _shorten("_".join(parts)),
        "engine": engine,
        "model": model,
        "gpus": gpus,
        "settings": settings,
        "label": model + (f" ({', '.join(details)})" if details else ""),
    }


def shown_settings(engine: str, settings: dict) -> dict:
    """Those of `settings` that differ from the engine's defaults, leaving out those that
    say where the program or model is (the engine's PLACES)."""
    props = settings_schema(engine)["properties"]
    places = engine_module(engine).PLACES
    return {
        k: v
        for k, v in sorted(settings.items())
        if k not in places and k in props and v != props[k].get("default")
    }


def _hash(value) -> str:
    return hashlib.sha256(json.dumps(value, sort_keys=True).encode()).hexdigest()[:6]


def _token(value) -> str:
    """A setting's value in a folder name: on/off, a number, a short plain word, else a
    short hash of it."""
    if isinstance(value, bool):
        return "on" if value else "off"
    if value is None:
        return "none"
    text = str(value)
    if isinstance(value, int | float | str) and re.fullmatch(r"[A-Za-z0-9.+-]{1,24}", text):
        return text
    return _hash(value)


def _shorten(slug: str) -> str:
    if len(slug) <= SLUG_MAX:
        return slug
    return f"{slug[: SLUG_MAX - 7]}-{_hash(slug)}"


def by_slug(deployments: list[dict]) -> dict[str, dict]:
    return {d["slug"]: d for d in deployments}
