"""The point request: one load point as the benchmark rule sends it to the client service
(POST /benchmark) and as the load generator runs it. Its keys are the config's, in the
config's sections:

    {"pattern": "closed",
     "sweep": {"clients": 4, "requests_per_client": 4, "duration_s": null,
               "max_point_duration_s": 3600, "seed": 0},
     "warmup": {"requests": 0, "duration_s": 0},
     "workload": {"prompts": [{"prompt": "Write ...", "max_tokens": 64}],
                  "ignore_eos": true, "api": "chat", "request_timeout_s": 600},
     "client": {"workers": 1, "stall_s": 60, "stop_on_stall": false}}

The rule: request[section][key] is config[section][key], for the keys that shape the
point (its pattern's SETTINGS, warmup, client, and the workload keys in SENT_WORKLOAD),
but for the things a point has where config has something else:
- sweep: the point's one level, named as the sweep point, summary and table name it (the
  pattern's LEVEL_KEY: `clients`, `rate`), where config has the list of levels
  (sweep.clients, sweep.rates);
- sweep.seed: the point's seed, config's sweep.seed plus the repeat;
- workload.prompts: the prompts as built, each with its max_tokens, where config has what
  builds them (prompt, prompt_file, dataset, dataset_samples, input_tokens,
  shared_prefix_tokens, output_tokens, max_tokens, trace). A caller of the API may send
  workload.prompt (and workload.max_tokens) instead;
- a trace's schedule (its pattern's SCHEDULE keys in sweep: arrivals_s, session_ids), one
  value per prompt, where config has the trace file (workload.trace).

One source for the bounds: every key the request shares with config takes its type,
bounds and default from config/schema.yaml, the authority on config keys, so a config
that validates is never refused by the client service later. A request is also held to
config's rules for any value (config.check_values: finite numbers, 64-bit integers, at
most MAX_DEPTH levels, MAX_VALUES values and MAX_TEXT characters), which bounds its prompts
and so its size (MAX_BODY_BYTES). Only what config has no key for is defined here: the
prompts list, a trace's schedule (llmsweep.traces holds a trace to these bounds) and the
pattern's choice.
"""

from __future__ import annotations

import json
from types import ModuleType

import jsonschema

from llmsweep import config, traces
from llmsweep.loadgen import patterns

_NOT_BOUNDS = ("description", "x-pattern")


def _config_key(section: str, *path: str, default: bool = True) -> dict:
    """A key of config/schema.yaml's `section` (path: the key, and keys inside it) as the
    API takes it: its type and bounds, and its default unless `default` is False."""
    spec = config.load_schema()["properties"][section]
    for name in path:
        spec = spec["properties"][name] if name != "[]" else spec["items"]
    drop = _NOT_BOUNDS if default else (*_NOT_BOUNDS, "default")
    return {k: v for k, v in spec.items() if k not in drop}


def _config_section(section: str) -> dict:
    """Every key of config's `section`, as _config_key gives it."""
    names = config.load_schema()["properties"][section]["properties"]
    return {name: _config_key(section, name) for name in names}


# The request's sweep keys that every pattern has.
SWEEP = {k: _config_key("sweep", k) for k in ("duration_s", "max_point_duration_s", "seed")}
WARMUP = _config_section("warmup")
PROMPT = _config_key("workload", "prompt", default=False)
MAX_TOKENS = _config_key("workload", "max_tokens", default=False)
# Config's token lengths (workload.input_tokens, workload.output_tokens: mean ± stdev) make
# a point's prompts and their max_tokens before its request is sent; every drawn length is
# clamped to MAX_TOKENS' bounds (loadgen.workload), so the request never exceeds the API's.
LENGTHS = {
    name: _config_key("workload", name, default=False)["properties"]
    for name in ("input_tokens", "output_tokens")
}
# The workload keys a point's request takes from config as they are.
SENT_WORKLOAD = ("ignore_eos", "api", "request_timeout_s")
WORKLOAD = {
    "prompt": PROMPT,
    **{k: _config_key("workload", k) for k in ("max_tokens", *SENT_WORKLOAD)},
}
CLIENT = _config_section("client")

# A prompt of the list takes three of config.MAX_VALUES (its object, text and max_tokens);
# the request's other keys take fewer than OTHER_VALUES values and OTHER_TEXT characters,
# so the prompts have the rest: MAX_PROMPTS prompts of MAX_PROMPTS_TEXT characters in all.
OTHER_VALUES, OTHER_TEXT = 100, 1000
MAX_PROMPTS = (config.MAX_VALUES - OTHER_VALUES) // 3
MAX_PROMPTS_TEXT = config.MAX_TEXT - OTHER_TEXT
PROMPTS = {
    "type": "array",
    "minItems": 1,
    "maxItems": MAX_PROMPTS,
    "items": {
        "type": "object",
        "additionalProperties": False,
        "required": ["prompt"],
        "properties": {"prompt": PROMPT, "max_tokens": MAX_TOKENS},
    },
}
# A trace's schedule: one value per row, as many as the request's prompts (a trace's rows
# are its prompts). Five values a row in all, so fewer rows than prompts (traces.MAX_ROWS).
SCHEDULE_KEYS = {
    "arrivals_s": {
        "type": "array",
        "minItems": 1,
        "maxItems": traces.MAX_ROWS,
        "items": {"type": "number", "minimum": 0, "maximum": traces.MAX_ARRIVAL_S},
        "description": "Each row's arrival, seconds from the replay's start at time scale 1.",
    },
    "session_ids": {
        "type": "array",
        "maxItems": traces.MAX_ROWS,
        "items": {"type": ["string", "null"], "maxLength": traces.MAX_SESSION_CHARS},
        "description": "Each row's session id (null for none), copied to its record.",
    },
}
# The longest body of a request the API takes, as json.dumps writes it (the benchmark
# rule's client, util.http_json): each character of text at most 12 bytes (one beyond the
# Basic Multilingual Plane as a \u surrogate pair), each prompt's object around its text
# (with a trace, each row's arrival and session id besides), and the rest of the request
# within ENVELOPE_BYTES (tests/test_client_service.py checks it with every other key at its
# longest). About 49 MB.
ESCAPED_CHAR_BYTES = 12
PROMPT_FRAME_BYTES = len(json.dumps({"prompt": "", "max_tokens": MAX_TOKENS["maximum"]}) + ", ")
LONGEST_NUMBER = -2.2250738585072014e-308  # as long as json.dumps writes a float
TRACE_ROW_BYTES = PROMPT_FRAME_BYTES + len(json.dumps([LONGEST_NUMBER, None]))
ENVELOPE_BYTES = 64 * 1024
MAX_BODY_BYTES = (
    ESCAPED_CHAR_BYTES * config.MAX_TEXT
    + max(PROMPT_FRAME_BYTES * MAX_PROMPTS, TRACE_ROW_BYTES * traces.MAX_ROWS)
    + ENVELOPE_BYTES
)
MAX_MESSAGE = 300  # characters of a refusal's reason


def _is_integer(checker, instance) -> bool:
    """An integer is an int, as in config: JSON Schema's integer also takes 1.0."""
    return isinstance(instance, int) and not isinstance(instance, bool)


_Validator = jsonschema.validators.extend(
    jsonschema.Draft202012Validator,
    type_checker=jsonschema.Draft202012Validator.TYPE_CHECKER.redefine("integer", _is_integer),
)


def sweep_keys(module: ModuleType) -> dict:
    """A pattern's request sweep keys that config has, with their schemas from
    config/schema.yaml: its level (an item of config's list of levels), then its SETTINGS."""
    level = _config_key("sweep", module.SWEEP_KEY, "[]", default=False)
    return {module.LEVEL_KEY: level} | {k: _config_key("sweep", k) for k in module.SETTINGS}


def request_sweep_keys(module: ModuleType) -> dict:
    """Every request sweep key of a pattern: sweep_keys, then its SCHEDULE."""
    return sweep_keys(module) | {k: SCHEDULE_KEYS[k] for k in module.SCHEDULE}


def _object(properties: dict, required=()) -> dict:
    return {
        "type": "object",
        "additionalProperties": False,
        "required": list(required),
        "properties": properties,
    }


def _sweep_when(module: ModuleType) -> dict:
    """The sweep section's schema when the request's pattern is `module` (the default
    pattern's when the request names none)."""
    named = {"properties": {"pattern": {"const": module.NAME}}}
    if module.NAME != patterns.DEFAULT:
        named["required"] = ["pattern"]
    sweep = _object(request_sweep_keys(module), module.REQUIRED)
    return {"if": named, "then": {"properties": {"sweep": sweep}}}


def schema() -> dict:
    """The JSON Schema of POST /benchmark."""
    workload = _object({**WORKLOAD, "prompts": PROMPTS})
    workload["oneOf"] = [{"required": ["prompt"]}, {"required": ["prompts"]}]
    return {
        "type": "object",
        "additionalProperties": False,
        "required": ["sweep", "workload"],
        "properties": {
            "pattern": {"enum": list(patterns.PATTERNS), "default": patterns.DEFAULT},
            "sweep": {"type": "object"},
            "warmup": _object(WARMUP),
            "workload": workload,
            "client": _object(CLIENT),
        },
        "allOf": [_sweep_when(m) for m in patterns.PATTERNS.values()],
    }


def query_schema() -> dict:
    """The JSON Schema of POST /query: one request, the workload keys at the top."""
    return _object(WORKLOAD, ["prompt"])


def _clip(text: str) -> str:
    if len(text) <= MAX_MESSAGE:
        return text
    half = MAX_MESSAGE // 2 - 2
    return f"{text[:half]} … {text[-half:]}"


def refusal(body, schema: dict) -> str | None:
    """Why the API refuses `body` (a parsed JSON value) under `schema`, naming the key; None
    when it takes it. Config's rules for any value come first (NaN, infinities, integers
    beyond 64 bits, deep nesting), so the schema never sees what it cannot judge."""
    if not isinstance(body, dict):
        return "the body must be a JSON object"
    try:
        config.check_values(body)
    except config.ConfigError as exc:
        return _clip(str(exc))
    errors = list(_Validator(schema).iter_errors(body))
    if not errors:
        return _schedule_refusal(body) if "sweep" in body else None
    first = min(errors, key=lambda e: ([str(p) for p in e.absolute_path], e.message[:200]))
    where = ".".join(str(p) for p in first.absolute_path) or "body"
    return f"{where}: {_clip(first.message)}"


def _schedule_refusal(body: dict) -> str | None:
    """Why a valid point request's schedule does not fit its prompts: a trace's rows are its
    prompts, one value of each SCHEDULE key per prompt."""
    module = patterns.pattern(body.get("pattern", patterns.DEFAULT))
    workload = body["workload"]
    prompts = len(workload["prompts"]) if "prompts" in workload else 1
    for key in module.SCHEDULE:
        values = body["sweep"].get(key)
        if values is not None and len(values) != prompts:
            return (
                f"sweep.{key}: {len(values):,} values for {prompts:,} prompts; a trace's "
                "request has one prompt per row"
            )
    return None


def _with_defaults(values: dict, keys: dict) -> dict:
    return {k: spec["default"] for k, spec in keys.items() if "default" in spec} | values


def complete_query(body: dict) -> dict:
    """A valid /query body with the defaults filled in."""
    return _with_defaults(body, WORKLOAD)


def complete(body: dict) -> dict:
    """A valid request (`body` is left as it is) with every default filled in and its
    prompts as a list, each with its max_tokens: what the load generator runs."""
    module = patterns.pattern(body.get("pattern", patterns.DEFAULT))
    sections = {
        "sweep": request_sweep_keys(module),
        "warmup": WARMUP,
        "workload": WORKLOAD,
        "client": CLIENT,
    }
    request = {"pattern": module.NAME}
    for name, keys in sections.items():
        request[name] = _with_defaults(body.get(name, {}), keys)
    workload = request["workload"]
    given = workload.pop("prompts", None) or [{"prompt": workload.pop("prompt")}]
    workload["prompts"] = [
        p | {"max_tokens": p.get("max_tokens", workload["max_tokens"])} for p in given
    ]
    return request


def seed(sweep: dict, point: dict) -> int:
    """A point's seed, of its arrivals and synthetic prompts: config's plus its repeat."""
    return sweep["seed"] + point["repeat"]


def build(point: dict, settings: dict, prompts: list[dict], schedule: dict | None = None) -> dict:
    """The request of a sweep point. `settings` holds the config's sweep (at least the
    point's pattern's SETTINGS), warmup, workload and client sections; `prompts` the
    point's built prompts, each with its max_tokens; `schedule` its pattern's SCHEDULE keys
    (a trace's, loadgen.workload.build_trace)."""
    module = patterns.of(point)
    sweep = {module.LEVEL_KEY: point[module.LEVEL_KEY]}
    sweep |= {k: settings["sweep"][k] for k in module.SETTINGS}
    sweep["seed"] = seed(settings["sweep"], point)
    sweep |= {k: v for k, v in (schedule or {}).items() if k in module.SCHEDULE}
    workload = {"prompts": prompts} | {k: settings["workload"][k] for k in SENT_WORKLOAD}
    return {
        "pattern": module.NAME,
        "sweep": sweep,
        "warmup": {k: settings["warmup"][k] for k in WARMUP},
        "workload": workload,
        "client": {k: settings["client"][k] for k in CLIENT},
    }
