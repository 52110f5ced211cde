"""The one config loader: recipe mapping, JSON Schema validation with defaults, checks."""

from __future__ import annotations

import copy
import os
import re
import warnings
from pathlib import Path

import jsonschema
import yaml

from llmsweep import programs
from llmsweep.models import DEMO_MODEL

SCHEMA_PATH = Path(__file__).resolve().parents[2] / "config" / "schema.yaml"
DEFAULT_CONFIG_PATH = SCHEMA_PATH.with_name("config.yaml")


class ConfigError(ValueError):
    """A config value is wrong; the message names the key."""


def _with_defaults(validator_class):
    """A validator that fills each property's default before validating it."""
    validate_properties = validator_class.VALIDATORS["properties"]

    def set_defaults(validator, properties, instance, schema):
        if isinstance(instance, dict):
            for name, sub in properties.items():
                if "default" in sub and name not in instance:
                    instance[name] = copy.deepcopy(sub["default"])
        yield from validate_properties(validator, properties, instance, schema)

    return jsonschema.validators.extend(validator_class, {"properties": set_defaults})


_Validator = _with_defaults(jsonschema.Draft202012Validator)


def load_schema() -> dict:
    with open(SCHEMA_PATH) as f:
        return yaml.safe_load(f)


def _key_path(path) -> str:
    out = ""
    for part in path:
        out += f"[{part}]" if isinstance(part, int) else (f".{part}" if out else str(part))
    return out or "(top level)"


def _describe(error: jsonschema.ValidationError) -> str:
    key = _key_path(error.absolute_path)
    if error.validator == "additionalProperties":
        extra = sorted(set(error.instance) - set(error.schema.get("properties", {})))
        names = ", ".join(f"{key}.{e}" if error.absolute_path else e for e in extra)
        return f"unknown key {names}"
    if error.validator == "unevaluatedProperties":
        known = set(error.schema.get("properties", {})) | set(_program_keys())
        extra = sorted(set(error.instance) - known)
        return "unknown key " + ", ".join(f"{key}.{e}" for e in extra)
    if error.validator == "enum":
        return f"{key}: {error.instance!r} is not one of {error.validator_value}"
    return f"{key}: {error.message}"


def _program_keys() -> list[str]:
    return list(load_schema()["$defs"]["program"]["properties"])


def program_defaults() -> dict:
    """A program's settings at their defaults (the schema's `$defs/program`)."""
    props = load_schema()["$defs"]["program"]["properties"]
    return {name: sub["default"] for name, sub in props.items()}


def upgrade(cfg: dict) -> dict:
    """Read older shapes of the config as today's: `monitoring.node_exporter: true|false`
    (before it named its program) is `monitoring.node_exporter.enabled`."""
    monitoring = cfg.get("monitoring")
    if isinstance(monitoring, dict) and isinstance(monitoring.get("node_exporter"), bool):
        monitoring["node_exporter"] = {"enabled": monitoring["node_exporter"]}
    return cfg


def map_recipe(cfg: dict) -> dict:
    """Map the original system's recipe (`job.infrastructure` / `job.service`) onto config."""
    job = cfg.pop("job")
    if not isinstance(job, dict):
        raise ConfigError("job: a recipe's job must be an object")
    unknown = set(job) - {"name", "infrastructure", "service"}
    if unknown:
        raise ConfigError(f"unknown key job.{sorted(unknown)[0]}")
    if "name" in job:
        cfg["run"] = re.sub(r"[^A-Za-z0-9._-]", "-", str(job["name"]))[:64]
    service = job.get("service", {})
    known_service = {"type", "model", "precision", "n_clients", "n_requests_per_client", "prompt"}
    unknown = set(service) - known_service
    if unknown:
        raise ConfigError(f"unknown key job.service.{sorted(unknown)[0]}")
    for ignored in ("type", "precision"):
        if ignored in service:
            warnings.warn(
                f"job.service.{ignored} is not used: the model name selects the weights",
                stacklevel=2,
            )
    if "model" in service:
        cfg["models"] = [service["model"]]
    sweep = cfg.setdefault("sweep", {})
    if "n_clients" in service:
        sweep["clients"] = [service["n_clients"]]
    if "n_requests_per_client" in service:
        sweep["requests_per_client"] = service["n_requests_per_client"]
    if "prompt" in service:
        cfg.setdefault("workload", {})["prompt"] = service["prompt"]
    infra = job.get("infrastructure", {})
    if infra:
        cfg["infrastructure"] = {**cfg.get("infrastructure", {}), **infra}
    return cfg


def prepare(cfg: dict) -> dict:
    """Validate `cfg` in place (mapping a recipe first), fill defaults, return it.

    Raises ConfigError naming the first offending key.
    """
    validate_schema(cfg)
    _check_semantics(cfg)
    return cfg


def validate_schema(cfg: dict) -> dict:
    """Map a recipe, read older shapes, validate against the schema and fill defaults,
    without the checks that look at this machine (files, programs)."""
    if "job" in cfg:
        map_recipe(cfg)
    upgrade(cfg)
    errors = sorted(_Validator(load_schema()).iter_errors(cfg), key=lambda e: list(e.path))
    if errors:
        raise ConfigError("invalid config: " + "; ".join(_describe(e) for e in errors[:5]))
    return cfg


def field_errors(cfg: dict) -> list[dict]:
    """Every problem of `cfg` as {key, message}, key a dotted path without list indices (the
    form field it belongs to); empty when valid, and then `cfg` has its defaults. The same
    checks as prepare()."""

    def split(exc: ConfigError) -> list[dict]:
        text = str(exc).removeprefix("invalid config: ")
        key = text.split(":", 1)[0].removeprefix("unknown key ")
        return [{"key": re.sub(r"\[\d+\]", "", key), "message": text}]

    try:
        if "job" in cfg:
            map_recipe(cfg)
    except ConfigError as exc:
        return split(exc)
    upgrade(cfg)
    errors = sorted(_Validator(load_schema()).iter_errors(cfg), key=lambda e: list(e.path))
    if errors:
        return [
            {"key": re.sub(r"\[\d+\]", "", _key_path(e.absolute_path)), "message": _describe(e)}
            for e in errors
        ]
    try:
        _check_semantics(cfg)
    except ConfigError as exc:
        return split(exc)
    return []


def level_lists() -> list[str]:
    """The sweep keys that list a load pattern's levels (clients, rates): those the schema
    marks with the pattern they belong to (`x-pattern`)."""
    return [
        k
        for k, sub in load_schema()["properties"]["sweep"]["properties"].items()
        if "x-pattern" in sub
    ]


def _check_semantics(cfg: dict) -> None:
    sweep, workload = cfg["sweep"], cfg["workload"]
    lists = level_lists()
    if not any(sweep[k] for k in lists):
        others = ", ".join(f"sweep.{k}" for k in lists[1:])
        raise ConfigError(f"sweep.{lists[0]}: empty, and {others} too: nothing to sweep")
    if workload["prompt_file"]:
        path = Path(workload["prompt_file"])
        if not path.is_file() or not os.access(path, os.R_OK):
            raise ConfigError(f"workload.prompt_file: {path} is not a readable file")
        if path.suffix not in (".jsonl", ".csv"):
            raise ConfigError(f"workload.prompt_file: {path} is neither .jsonl nor .csv")
    _check_monitoring_programs(cfg["monitoring"])
    engine = cfg["engine"]
    if engine == "openai" and not cfg["engines"]["openai"]["base_url"]:
        raise ConfigError("engines.openai.base_url: required when engine is openai")
    if engine == "llama_cpp":
        files = cfg["engines"]["llama_cpp"]["model_files"]
        for model in cfg["models"]:
            if model != DEMO_MODEL and model not in files:
                raise ConfigError(
                    f"engines.llama_cpp.model_files.{model}: no GGUF file given for model {model!r}"
                )
            if model in files and not Path(files[model]).is_file():
                raise ConfigError(
                    f"engines.llama_cpp.model_files.{model}: {files[model]} is not a readable file"
                )


def monitoring_programs(monitoring: dict) -> list[str]:
    """The monitoring programs this config runs (Grafana only when it must run)."""
    if not monitoring["enabled"]:
        return []
    names = ["prometheus", "pushgateway"]
    if monitoring["node_exporter"]["enabled"]:
        names.append("node_exporter")
    if monitoring["grafana"]["enabled"] is True:
        names.append("grafana")
    return names


def _check_monitoring_programs(monitoring: dict) -> None:
    """Every monitoring program is there before any job starts; else name the key."""
    for name in monitoring_programs(monitoring):
        try:
            programs.find(name, monitoring[name])
        except programs.MissingProgram as exc:
            off = (
                ""
                if name == "grafana"
                else "; or run without monitoring: monitoring.enabled: false"
            )
            raise ConfigError(f"{exc}{off}") from None


def defaults_file() -> dict:
    """config/config.yaml as written (not yet validated)."""
    with open(DEFAULT_CONFIG_PATH) as f:
        return yaml.safe_load(f) or {}


def merged(user: dict) -> dict:
    """config/config.yaml with `user` merged over it, as Snakemake's --configfile does."""
    cfg = defaults_file()
    _merge(cfg, copy.deepcopy(user))
    return cfg


def read_file(path: str | Path) -> dict:
    """A config file's contents (YAML or JSON)."""
    with open(path) as f:
        return yaml.safe_load(f) or {}


def load(path: str | Path | None = None, overrides: dict | None = None) -> dict:
    """Read the default config, merge a config file and overrides, validate."""
    cfg = defaults_file()
    if path is not None:
        _merge(cfg, read_file(path))
    if overrides:
        _merge(cfg, overrides)
    return prepare(cfg)


def _merge(base: dict, extra: dict) -> None:
    for key, value in extra.items():
        if isinstance(value, dict) and isinstance(base.get(key), dict):
            _merge(base[key], value)
        else:
            base[key] = value


def dump(cfg: dict) -> str:
    return yaml.safe_dump(cfg, sort_keys=False)


DOCS_HEADER = """# Configuration keys

`config/config.yaml` holds the defaults; `config/schema.yaml` is the authority (types,
ranges, defaults) and is checked before any job starts. Pass another file with
`--configfile`, or single values with `--config key=value`. Resources, partitions and
accounts belong in the profile (`profiles/`), not here. This page is generated from the
schema by `llmsweep config-docs`.

| key | type | default | what it does |
|---|---|---|---|
"""


def _expand_programs(props: dict, program: dict) -> dict:
    """`props` with the shared program shape's keys merged in where it is referenced."""
    out = {}
    for name, sub in props.items():
        if sub.get("$ref") == "#/$defs/program":
            merged = {**sub.get("properties", {}), **program["properties"]}
            sub = {**sub, "type": "object", "properties": merged}
        out[name] = sub
    return out


def docs() -> str:
    """config/README.md, generated from the schema's descriptions."""
    lines = []
    schema = load_schema()

    def walk(props: dict, prefix: str) -> None:
        for name, sub in _expand_programs(props, schema["$defs"]["program"]).items():
            kind = sub.get("type", "")
            kind = " or ".join(kind) if isinstance(kind, list) else kind
            if "enum" in sub:
                kind = " \\| ".join(f"`{v}`" for v in sub["enum"])
            default = ""
            if "default" in sub and "properties" not in sub:
                text = yaml.safe_dump(sub["default"], default_flow_style=True, width=1000)
                default = f"`{text.strip().removesuffix('...').strip()}`"
            lines.append(
                f"| `{prefix}{name}` | {kind} | {default} | {sub.get('description', '')} |"
            )
            walk(sub.get("properties", {}), f"{prefix}{name}.")

    walk(schema["properties"], "")
    return DOCS_HEADER + "\n".join(lines) + "\n"
