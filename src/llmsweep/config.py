"""The one config loader: recipe mapping, JSON Schema validation with defaults, checks."""

from __future__ import annotations

import copy
import functools
import json
import math
import os
import re
import reprlib
import warnings
from pathlib import Path

import jsonschema
import yaml

from llmsweep import datasets, programs, traces
from llmsweep.models import DEMO_MODEL
from llmsweep.util import is_file

SCHEMA_PATH = Path(__file__).resolve().parents[2] / "config" / "schema.yaml"
DEFAULT_CONFIG_PATH = SCHEMA_PATH.with_name("config.yaml")


# What any config may be, checked before its keys are: bounds on the input, so that a bad
# file costs bounded memory and time and its error message stays short.
MAX_FILE_BYTES = 4 * 2**20  # a config file (a prompt may have 1,000,000 characters)
MAX_VALUES = 100_000  # values (mappings, lists, scalars), every alias expanded
MAX_TEXT = 4_000_000  # characters of text, every alias expanded (a prompt may have 1,000,000)
MAX_DEPTH = 32  # levels of nesting (the schema has 5)
MAX_INT = 2**63 - 1  # integers are 64-bit
MAX_MESSAGE = 1000  # characters of an error message
MAX_SHOWN = 60  # characters of a value shown in a message


class ConfigError(ValueError):
    """A config value is wrong; the message names the key (or the file, line and column) and
    is at most MAX_MESSAGE characters long."""

    def __init__(self, message: str):
        super().__init__(_clip(str(message), MAX_MESSAGE))


def _clip(text: str, limit: int) -> str:
    return text if len(text) <= limit else text[: limit - 1] + "…"


class _Repr(reprlib.Repr):
    """A value's repr cut short: a few items, a few levels, the start of long text."""

    def __init__(self):
        super().__init__()
        self.maxlevel, self.maxdict = 3, 4
        self.maxlist = self.maxtuple = self.maxset = self.maxfrozenset = 6
        self.maxstring = self.maxother = self.maxlong = MAX_SHOWN // 2

    def repr_int(self, x, level):
        if abs(x) > MAX_INT:  # repr() of an integer of thousands of digits raises
            return f"<an integer of {x.bit_length()} bits>"
        return super().repr_int(x, level)


def _short(value) -> str:
    """`value` for a message: its repr, never longer than about MAX_SHOWN characters."""
    return _clip(_Repr().repr(value), MAX_SHOWN)


def _is_integer(checker, instance) -> bool:
    """An integer is an int: JSON Schema's integer also takes 1.0, which would make 1.0
    clients (folder c1.0) or 2.0 workers."""
    return isinstance(instance, int) and not isinstance(instance, bool)


def _pattern(validator, pattern, instance, schema):
    """JSON Schema's `pattern` with its own (ECMA-262) `$`, the end of the text: Python's
    `$` also matches before a final newline, which would let `run: "demo\\n"` through.
    """
    if not isinstance(instance, str):
        return
    regex = (
        pattern[:-1] + r"\Z" if pattern.endswith("$") and not pattern.endswith("\\$") else pattern
    )
    if not re.search(regex, instance):
        yield jsonschema.ValidationError(f"{instance!r} does not match {pattern!r}")


def _with_defaults(validator_class):
    """A validator that fills each property's default before validating it, with integers
    that are ints and patterns whose `$` ends the text."""
    validate_properties = validator_class.VALIDATORS["properties"]

    def set_defaults(validator, properties, instance, schema):
        if isinstance(instance, dict):
            for name, sub in properties.items():
                if "default" in sub and name not in instance:
                    instance[name] = copy.deepcopy(sub["default"])
        yield from validate_properties(validator, properties, instance, schema)

    return jsonschema.validators.extend(
        validator_class,
        {"properties": set_defaults, "pattern": _pattern},
        type_checker=validator_class.TYPE_CHECKER.redefine("integer", _is_integer),
    )


_Validator = _with_defaults(jsonschema.Draft202012Validator)


@functools.cache
def _schema_text_parsed() -> dict:
    with open(SCHEMA_PATH) as f:
        return yaml.safe_load(f)


def load_schema() -> dict:
    """config/schema.yaml, read once per process; each caller gets its own copy."""
    return copy.deepcopy(_schema_text_parsed())


def _key_path(path) -> str:
    out = ""
    for part in path:
        if isinstance(part, int):
            out += f"[{part}]"
        else:
            part = _clip(str(part), MAX_SHOWN)
            out += f".{part}" if out else part
    return out or "(top level)"


def _names(keys, limit: int = 5) -> str:
    """Key names for a message: the first `limit`, then how many more."""
    keys = list(keys)
    more = f" and {len(keys) - limit} more" if len(keys) > limit else ""
    return ", ".join(keys[:limit]) + more


def _message(error: jsonschema.ValidationError) -> str:
    """jsonschema's message, the value it starts with cut short."""
    text = error.message
    if len(text) > 2 * MAX_SHOWN:
        shown = repr(error.instance)
        if text.startswith(shown):
            text = _short(error.instance) + text[len(shown) :]
    return _clip(text, 4 * MAX_SHOWN)


def _describe(error: jsonschema.ValidationError) -> str:
    key = _key_path(error.absolute_path)
    if error.validator == "additionalProperties":
        extra = sorted(set(error.instance) - set(error.schema.get("properties", {})))
        return "unknown key " + _names(_key_path([*error.absolute_path, e]) for e in extra)
    if error.validator == "unevaluatedProperties":
        known = set(error.schema.get("properties", {})) | set(_program_keys())
        extra = sorted(set(error.instance) - known)
        return "unknown key " + _names(_key_path([*error.absolute_path, e]) for e in extra)
    if error.validator == "enum":
        return f"{key}: {_short(error.instance)} is not one of {error.validator_value}"
    return f"{key}: {_message(error)}"


def check_values(cfg) -> None:
    """One rule for every value, before the schema looks at keys: a mapping at the top,
    keys that are text, numbers that are finite (no NaN, no infinities) and integers of 64
    bits, text without NUL characters, at most MAX_DEPTH levels, MAX_VALUES values and
    MAX_TEXT characters (a value shared, as YAML aliases are, counted where it appears).
    ConfigError names the key."""
    if not isinstance(cfg, dict):
        raise ConfigError(f"(top level): the config must be a mapping of keys, not {_kind(cfg)}")
    values = text = 0
    stack = [(cfg, ())]
    while stack:
        value, path = stack.pop()
        values += 1
        if len(path) > MAX_DEPTH:
            raise ConfigError(
                f"{_key_path(path[:MAX_DEPTH])}: nested more than {MAX_DEPTH} levels deep"
            )
        if isinstance(value, str):
            text += len(value)
            if "\0" in value:
                raise ConfigError(f"{_key_path(path)}: text with a NUL character")
        elif isinstance(value, float) and not math.isfinite(value):
            raise ConfigError(
                f"{_key_path(path)}: {value} is not a finite number (no NaN or infinity)"
            )
        elif isinstance(value, int) and not isinstance(value, bool) and abs(value) > MAX_INT:
            raise ConfigError(
                f"{_key_path(path)}: {_short(value)} is out of range (64-bit integers)"
            )
        elif isinstance(value, (dict, list, tuple)):
            if values + len(stack) + len(value) > MAX_VALUES:
                raise ConfigError(f"(top level): {_too_large(values + len(stack) + len(value), 0)}")
            if isinstance(value, dict):
                for name in value:
                    if not isinstance(name, str):
                        raise ConfigError(
                            f"{_key_path(path)}: the key {_short(name)} is not text; quote it"
                        )
                    if "\0" in name:
                        raise ConfigError(f"{_key_path(path)}: a key with a NUL character")
                stack.extend((value[name], (*path, name)) for name in reversed(list(value)))
            else:
                stack.extend((value[i], (*path, i)) for i in reversed(range(len(value))))
        elif isinstance(value, (bytes, set, frozenset)):
            text += len(value)
        if text > MAX_TEXT:
            raise ConfigError(f"(top level): {_too_large(values, text)}")


def _too_large(values: int, text: int) -> str:
    what = f"{MAX_VALUES:,} values" if values > MAX_VALUES else f"{MAX_TEXT:,} characters"
    return f"too large: more than {what} with every alias expanded"


def _kind(value) -> str:
    return {list: "a list", str: "text", type(None): "nothing"}.get(type(value), _short(value))


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
    service = _section(job, "service", "job.service")
    infra = _section(job, "infrastructure", "job.infrastructure")
    known_service = {
        "type",
        "model",
        "precision",
        "n_clients",
        "n_requests_per_client",
        "prompt",
    }
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
    sweep = _section(cfg, "sweep", "sweep")
    if "n_clients" in service:
        sweep["clients"] = [service["n_clients"]]
    if "n_requests_per_client" in service:
        sweep["requests_per_client"] = service["n_requests_per_client"]
    if "prompt" in service:
        _section(cfg, "workload", "workload")["prompt"] = service["prompt"]
    if infra:
        cfg["infrastructure"] = {
            **_section(cfg, "infrastructure", "infrastructure"),
            **infra,
        }
    return cfg


def _section(cfg: dict, name: str, key: str) -> dict:
    """cfg[name], a mapping (set to {} when missing); else ConfigError naming `key`."""
    value = cfg.setdefault(name, {})
    if not isinstance(value, dict):
        raise ConfigError(f"{key}: {_short(value)} is not of type 'object'")
    return value


def prepare(cfg: dict) -> dict:
    """Validate `cfg` in place (mapping a recipe first), fill defaults, return it.

    Raises ConfigError naming the first offending key, and no other exception whatever
    `cfg` holds.
    """
    validate_schema(cfg)
    _check_semantics(cfg)
    return cfg


def validate_schema(cfg: dict) -> dict:
    """Map a recipe, read older shapes, validate against the schema and fill defaults,
    without the checks that look at this machine (files, programs)."""
    try:
        check_values(cfg)
    except ConfigError as exc:
        raise ConfigError(f"invalid config: {exc}") from None
    if "job" in cfg:
        map_recipe(cfg)
    upgrade(cfg)
    errors = _schema_errors(cfg)
    if errors:
        raise ConfigError("invalid config: " + "; ".join(_describe(e) for e in errors[:5]))
    return cfg


def _engine_schemas() -> dict:
    """Each engine's settings schema (engines.<name>), by engine name."""
    return load_schema()["properties"]["engines"]["properties"]


def _is_array(sub: dict) -> bool:
    kinds = sub.get("type", [])
    return "array" in (kinds if isinstance(kinds, list) else [kinds])


def is_dimension(sub: dict, value) -> bool:
    """Whether `value` of an engine setting whose schema is `sub` lists several values to
    sweep: a list where the setting takes no list, or a list of lists where it does."""
    if not isinstance(value, list):
        return False
    if _is_array(sub):
        return bool(value) and all(isinstance(v, list) for v in value)
    return True


def _take_dimensions(cfg: dict) -> dict:
    """Replace each engine setting that lists values to sweep by its first value (so the
    schema checks it and fills the defaults around it); return the lists by (engine, key).
    """
    engines = cfg.get("engines")
    schemas = _engine_schemas()
    taken = {}
    if not isinstance(engines, dict):
        return taken
    for name, section in engines.items():
        props = schemas.get(name, {}).get("properties", {})
        if not isinstance(section, dict):
            continue
        for key, value in section.items():
            if key in props and is_dimension(props[key], value):
                taken[(name, key)] = value
                section[key] = value[0] if value else props[key].get("default")
    return taken


def _dimension_errors(taken: dict) -> list[jsonschema.ValidationError]:
    """Each listed value of a swept engine setting checked against the setting's schema."""
    schemas = _engine_schemas()
    errors = []
    for (name, key), values in taken.items():
        sub = schemas[name]["properties"][key]
        if not values:
            errors.append(
                jsonschema.ValidationError(
                    "an empty list sweeps nothing",
                    path=["engines", name, key],
                    instance=values,
                )
            )
        for i, value in enumerate(values):
            for error in _Validator(sub).iter_errors(copy.deepcopy(value)):
                error.path.extendleft(reversed(["engines", name, key, i]))
                errors.append(error)
        if len({json.dumps(v, sort_keys=True) for v in values}) < len(values):
            errors.append(
                jsonschema.ValidationError(
                    "lists a value twice", path=["engines", name, key], instance=values
                )
            )
    return errors


def _deployment_errors(cfg: dict) -> list[jsonschema.ValidationError]:
    """Each explicit deployment's engine and settings checked against that engine's
    settings schema (the one of engines.<engine>), naming deployments[i].settings.<key>.
    """
    names = load_schema()["properties"]["engine"]["enum"]
    schemas = _engine_schemas()
    errors = []
    for i, entry in enumerate(cfg["deployments"]):
        engine = entry["engine"] or cfg["engine"]
        if engine not in names:
            errors.append(
                jsonschema.ValidationError(
                    f"{engine!r} is not one of {names}",
                    path=["deployments", i, "engine"],
                    instance=engine,
                    validator="none",
                )
            )
            continue
        sub = copy.deepcopy(schemas[engine])
        sub.pop("default", None)
        for error in jsonschema.Draft202012Validator(sub).iter_errors(entry["settings"]):
            error.path.extendleft(reversed(["deployments", i, "settings"]))
            errors.append(error)
    return errors


def _schema_errors(cfg: dict) -> list[jsonschema.ValidationError]:
    """The schema's errors, in the order of their keys (filling defaults on the way). An
    engine setting that lists values to sweep is checked value by value, and each explicit
    deployment's settings against its engine's schema."""
    taken = _take_dimensions(cfg)
    errors = list(_Validator(load_schema()).iter_errors(cfg))
    for (name, key), values in taken.items():
        cfg["engines"][name][key] = values
    errors += _dimension_errors(taken)
    if not errors:
        errors += _deployment_errors(cfg)
    return sorted(errors, key=lambda e: [(isinstance(p, str), p) for p in e.path])


def field_errors(cfg: dict) -> list[dict]:
    """Every problem of `cfg` as {key, message}, key a dotted path without list indices (the
    form field it belongs to); empty when valid, and then `cfg` has its defaults. The same
    checks as prepare()."""

    def split(exc: ConfigError) -> list[dict]:
        text = str(exc).removeprefix("invalid config: ")
        key = text.split(":", 1)[0].removeprefix("unknown key ")
        return [{"key": re.sub(r"\[\d+\]", "", key), "message": text}]

    try:
        check_values(cfg)
        if "job" in cfg:
            map_recipe(cfg)
    except ConfigError as exc:
        return split(exc)
    upgrade(cfg)
    errors = _schema_errors(cfg)
    if errors:
        return [
            {
                "key": re.sub(r"\[\d+\]", "", _key_path(e.absolute_path)),
                "message": _describe(e),
            }
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
    if not any(sweep[k] for k in lists) and not sweep["search"]:
        others = ", ".join(f"sweep.{k}" for k in lists[1:])
        raise ConfigError(f"sweep.{lists[0]}: empty, and {others} too: nothing to sweep")
    _check_search(sweep)
    if workload["prompt_file"]:
        path = Path(workload["prompt_file"])
        if not is_file(path) or not os.access(path, os.R_OK):
            raise ConfigError(f"workload.prompt_file: {path} is not a readable file")
        if path.suffix not in (".jsonl", ".csv"):
            raise ConfigError(f"workload.prompt_file: {path} is neither .jsonl nor .csv")
    _check_trace(sweep, workload)
    _check_dataset(workload)
    _check_shared_prefix(workload)
    _check_monitoring_programs(cfg["monitoring"])
    if not cfg["models"] and not cfg["deployments"]:
        raise ConfigError("models: empty, and deployments too: nothing to run")
    served = served_models(cfg)
    if served.get("openai") and not cfg["engines"]["openai"]["base_url"]:
        raise ConfigError("engines.openai.base_url: required when engine is openai")
    files = cfg["engines"]["llama_cpp"]["model_files"]
    for model in served.get("llama_cpp", []):
        if model != DEMO_MODEL and model not in files:
            raise ConfigError(
                f"engines.llama_cpp.model_files.{model}: no GGUF file given for model {model!r}"
                " (give its path there, or, for an Ollama model name, set engine: ollama)"
            )
        if model in files and not is_file(files[model]):
            raise ConfigError(
                f"engines.llama_cpp.model_files.{model}: {files[model]} is not a readable file"
            )


def _searched_list(sweep: dict) -> str | None:
    """The sweep key of the levels a capacity search raises (the list of its pattern, which
    the schema marks with `x-pattern`); None without a search."""
    if not sweep["search"]:
        return None
    lists = load_schema()["properties"]["sweep"]["properties"]
    return next(k for k, sub in lists.items() if sub.get("x-pattern") == sweep["search"]["pattern"])


def _check_search(sweep: dict) -> None:
    """A capacity search's bounds (whole clients: the schema) and its single runs."""
    search = sweep["search"]
    if not search:
        return
    if search["high"] < search["low"]:
        raise ConfigError(f"sweep.search.high: {search['high']:g} is below low ({search['low']:g})")
    if sweep["repeats"] != 1:
        raise ConfigError(
            f"sweep.repeats: {sweep['repeats']} with sweep.search: a search runs each level once"
        )


def _check_trace(sweep: dict, workload: dict) -> None:
    """A trace goes with its time scales (or a search over them), and is read whole: a bad
    row or column fails the config, not a point."""
    searched = _searched_list(sweep) == "trace_scales"
    if searched and not workload["trace"]:
        raise ConfigError("sweep.search.pattern: trace needs workload.trace, the trace to replay")
    if sweep["trace_scales"] and not workload["trace"]:
        raise ConfigError("sweep.trace_scales: needs workload.trace, the trace to replay")
    if workload["trace"] and not sweep["trace_scales"] and not searched:
        raise ConfigError(
            "workload.trace: given, but sweep.trace_scales is empty: list the time scales "
            "to replay it at (1 is as recorded)"
        )
    if workload["trace"]:
        try:
            traces.read(workload["trace"])
        except traces.TraceError as exc:
            raise ConfigError(f"workload.trace: {exc}") from None


def _check_dataset(workload: dict) -> None:
    """A dataset is one source of prompts, and is read whole: a bad entry fails the config,
    not a point."""
    if not workload["dataset"]:
        return
    others = [k for k in ("prompt_file", "input_tokens") if workload[k]]
    if others:
        raise ConfigError(
            f"workload.dataset: given with workload.{others[0]}; choose one source of prompts"
        )
    try:
        datasets.read(workload["dataset"])
    except datasets.DatasetError as exc:
        raise ConfigError(f"workload.dataset: {exc}") from None


def _check_shared_prefix(workload: dict) -> None:
    """A shared prefix is of synthetic prompts, and counts within their lengths: below
    input_tokens.mean, so a prompt of the mean length has a part of its own."""
    prefix = workload["shared_prefix_tokens"]
    if not prefix:
        return
    if not workload["input_tokens"] or workload["prompt_file"] or workload["dataset"]:
        raise ConfigError(
            "workload.shared_prefix_tokens: needs synthetic prompts (workload.input_tokens, "
            "without prompt_file or dataset)"
        )
    mean = workload["input_tokens"]["mean"]
    if prefix >= mean:
        raise ConfigError(
            f"workload.shared_prefix_tokens: {prefix} is not below workload.input_tokens.mean "
            f"({mean}); the prefix counts within each prompt's length, which needs a part of "
            "its own"
        )


def served_models(cfg: dict) -> dict[str, list[str]]:
    """The models each engine serves in this run: `models` with the run's engine, and each
    explicit deployment's with its own."""
    out = {cfg["engine"]: list(cfg["models"])} if cfg["models"] else {}
    for entry in cfg["deployments"]:
        models = out.setdefault(entry["engine"] or cfg["engine"], [])
        if entry["model"] not in models:
            models.append(entry["model"])
    return out


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
    return read_file(DEFAULT_CONFIG_PATH)


def merged(user: dict) -> dict:
    """config/config.yaml with `user` merged over it, as Snakemake's --configfile does."""
    cfg = defaults_file()
    _merge(cfg, copy.deepcopy(user))
    return cfg


def read_file(path: str | Path) -> dict:
    """A config file's contents (YAML or JSON), {} for an empty file. ConfigError, its
    message starting with the file's name, when it is not a mapping in UTF-8 YAML: the line
    and column of a YAML error, too large, a list or text at the top."""
    try:
        return _read_mapping(path)
    except ConfigError as exc:
        raise ConfigError(f"{path}: {exc}") from None


def _read_mapping(path: str | Path) -> dict:
    try:
        with open(path, "rb") as f:
            data = f.read(MAX_FILE_BYTES + 1)
    except OSError as exc:
        raise ConfigError(exc.strerror or str(exc)) from None
    if len(data) > MAX_FILE_BYTES:
        raise ConfigError(f"larger than {MAX_FILE_BYTES >> 20} MiB")
    try:
        text = data.decode("utf-8")
    except UnicodeDecodeError as exc:
        line = data.count(b"\n", 0, exc.start) + 1
        column = exc.start - (data.rfind(b"\n", 0, exc.start) + 1) + 1
        raise ConfigError(
            f"line {line}, column {column}: not UTF-8 text (byte 0x{data[exc.start]:02x})"
        ) from None
    cfg = parse_yaml(text)
    if cfg is None:
        return {}
    if not isinstance(cfg, dict):
        raise ConfigError(f"the top level must be a mapping of keys, not {_kind(cfg)}")
    return cfg


class _Loader(yaml.SafeLoader):
    """PyYAML's safe loader that measures the document while composing it, before any value
    is made: more than MAX_DEPTH levels, or more than MAX_VALUES values or MAX_TEXT
    characters with every alias expanded (a billion laughs: a few lines whose aliases
    expand to gigabytes), is refused where it happens. A value its constructors cannot make
    (a date with month 13, an integer of 5000 digits) is an error at its line and column.
    """

    def __init__(self, stream):
        super().__init__(stream)
        self.depth = 0
        self.total = [0, 0]  # values and characters so far, every alias expanded
        self.sizes = {}  # id(node): (values, characters) of each node composed, expanded

    def compose_node(self, parent, index):
        mark = self.peek_event().start_mark
        if self.check_event(yaml.AliasEvent):
            node = super().compose_node(parent, index)
            if id(node) not in self.sizes:
                self.refuse("an alias inside its own anchor", mark)
            self.count(self.sizes[id(node)], mark)
            return node
        self.depth += 1
        if self.depth > MAX_DEPTH:
            self.refuse(f"nested more than {MAX_DEPTH} levels deep", mark)
        node = super().compose_node(parent, index)
        self.depth -= 1
        if isinstance(node, yaml.ScalarNode):
            own = size = (1, len(node.value))
        else:
            if isinstance(node, yaml.SequenceNode):
                children = node.value
            else:
                children = [child for pair in node.value for child in pair]
            sizes = [self.sizes[id(child)] for child in children]
            own = (1, 0)
            size = (1 + sum(v for v, _ in sizes), sum(t for _, t in sizes))
        self.sizes[id(node)] = size
        self.count(own, mark)
        return node

    def count(self, size, mark) -> None:
        self.total[0] += size[0]
        self.total[1] += size[1]
        if self.total[0] > MAX_VALUES or self.total[1] > MAX_TEXT:
            self.refuse(_too_large(*self.total), mark)

    @staticmethod
    def refuse(problem: str, mark) -> None:
        raise yaml.composer.ComposerError(None, None, problem, mark)

    def construct_object(self, node, deep=False):
        try:
            return super().construct_object(node, deep=deep)
        except (
            ArithmeticError,
            AttributeError,
            LookupError,
            TypeError,
            ValueError,
        ) as exc:
            # PyYAML's constructors fail so on some values: `!!float ''`, `!!bool x`
            what = _short(node.value) if isinstance(node, yaml.ScalarNode) else "this value"
            tag = node.tag.replace("tag:yaml.org,2002:", "!!")
            why = f" ({exc})" if type(exc) is ValueError else ""
            raise yaml.constructor.ConstructorError(
                None,
                None,
                f"cannot read {what} as {_clip(tag, MAX_SHOWN)}{why}",
                node.start_mark,
            ) from None


def parse_yaml(text: str):
    """The value YAML (or JSON) `text` holds, None when it holds none. ConfigError, with
    the line and column, for text that is not YAML, has a tag other than YAML's own
    (!!python/object), or is too deep or too large with its aliases expanded (_Loader).
    """
    loader = None
    try:
        loader = _Loader(text)
        return loader.get_single_data()
    except yaml.reader.ReaderError as exc:
        raise ConfigError(
            f"{_position(text, exc.position)}: unacceptable character #x{exc.character:04x}"
        ) from None
    except yaml.MarkedYAMLError as exc:
        raise ConfigError(_yaml_problem(exc)) from None
    except yaml.YAMLError as exc:
        raise ConfigError(f"not YAML: {_clip(str(exc), 4 * MAX_SHOWN)}") from None
    except RecursionError:  # merge keys (<<) chained very deep: flattened recursively
        raise ConfigError("nested too deeply") from None
    finally:
        if loader is not None:
            loader.dispose()


def _position(text: str, index: int) -> str:
    line = text.count("\n", 0, index) + 1
    column = index - (text.rfind("\n", 0, index) + 1) + 1
    return f"line {line}, column {column}"


def _mark(mark) -> str:
    return f"line {mark.line + 1}, column {mark.column + 1}"


def _yaml_problem(exc: yaml.MarkedYAMLError) -> str:
    """`line L, column C: what is wrong` of a YAML error."""
    problem = exc.problem or exc.context or "not YAML"
    tag = re.fullmatch(r"could not determine a constructor for the tag '(.*)'", problem, re.S)
    if tag:
        name = tag[1].replace("tag:yaml.org,2002:", "!!")
        problem = f"the tag {_clip(name, MAX_SHOWN)} is not allowed: plain YAML values only"
    elif exc.context and exc.context_mark and exc.problem:
        problem += f" ({exc.context} at {_mark(exc.context_mark)})"
    mark = exc.problem_mark or exc.context_mark
    where = f"{_mark(mark)}: " if mark else ""
    return where + _clip(problem, 4 * MAX_SHOWN)


RECIPE_ENGINE = "ollama"  # the original system served its recipes' models with Ollama


def recipe_engine(cfg: dict, user: list) -> None:
    """A recipe in the original system's format names Ollama models (`llama2`): it means
    `engine: ollama` unless one of the user's own config mappings (`user`: the files and
    --config values, not config/config.yaml) sets the engine."""
    if "job" in cfg and not any(isinstance(u, dict) and "engine" in u for u in user):
        cfg["engine"] = RECIPE_ENGINE


def load(path: str | Path | None = None, overrides: dict | None = None) -> dict:
    """Read the default config, merge a config file and overrides, validate. A ConfigError's
    message starts with the file's name (config/config.yaml's without a file)."""
    cfg = defaults_file()
    user = [read_file(path)] if path is not None else []
    user += [overrides] if overrides else []
    for mapping in user:
        _merge(cfg, copy.deepcopy(mapping))
    recipe_engine(cfg, user)
    try:
        return prepare(cfg)
    except ConfigError as exc:
        raise ConfigError(f"{DEFAULT_CONFIG_PATH if path is None else path}: {exc}") from None


def read_config_args(cfg: dict, config_args) -> None:
    """Read Snakemake's `--config key=value` values again as YAML. Snakemake reads a value
    that is a mapping or a list with YAML's base loader, which leaves every number in it as
    text (`sweep={clients: [1]}` gives clients ['1']); such a value is read again as YAML
    and merged over `cfg` as Snakemake merged it. Scalars (`run=x`) are left as they are.
    """
    for arg in config_args or ():
        key, sep, text = str(arg).partition("=")
        if not sep or not isinstance(cfg.get(key), (dict, list)):
            continue
        try:
            value = parse_yaml(text)
        except ConfigError as exc:
            raise ConfigError(f"--config {_clip(key, MAX_SHOWN)}: {exc}") from None
        if isinstance(value, (dict, list)):
            _merge(cfg, {key: value})


def source(configfiles=(), config_args=()) -> str:
    """Where a workflow's config came from, for a message: its config files (else
    config/config.yaml) and --config."""
    names = [str(f) for f in configfiles or ()] or [str(DEFAULT_CONFIG_PATH)]
    return ", ".join(names + (["--config"] if config_args else []))


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
