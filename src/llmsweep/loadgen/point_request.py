"""The point request: one load point as the benchmark rule sends it to the client service
(POST /benchmark) and as the load generator runs it. Its keys are the config's, in the
config's sections:

    {"pattern": "closed",
     "sweep": {"clients": 4, "requests_per_client": 4, "duration_s": null,
               "max_point_duration_s": 3600, "seed": 0},
     "warmup": {"requests": 0, "duration_s": 0},
     "workload": {"prompts": [{"prompt": "Write ...", "max_tokens": 64}],
                  "ignore_eos": true, "api": "chat", "request_timeout_s": 600},
     "client": {"workers": 1}}

The rule: request[section][key] is config[section][key], for the keys that shape the
point (its pattern's SETTINGS, warmup, client, and the workload keys in SENT_WORKLOAD),
but for three things a point has where config has something else:
- sweep: the point's one level, named as the sweep point, summary and table name it (the
  pattern's LEVEL_KEY: `clients`, `rate`), where config has the list of levels
  (sweep.clients, sweep.rates);
- sweep.seed: the point's seed, config's sweep.seed plus the repeat;
- workload.prompts: the prompts as built, each with its max_tokens, where config has what
  builds them (prompt, prompt_file, input_tokens, output_tokens, max_tokens). A caller of
  the API may send workload.prompt (and workload.max_tokens) instead.

Every key is defined once here or in its pattern's module (REQUEST_KEYS), with its bounds;
the API's schema is built from these definitions, and config/schema.yaml has the same
bounds (tests/test_config.py holds them together), so a config that validates is never
refused by the client service. The defaults here are the API's, for callers that leave a
key out.
"""

from __future__ import annotations

from types import ModuleType

from llmsweep.loadgen import patterns

# The request's sweep keys that every pattern has.
SWEEP = {
    "duration_s": {
        "type": ["number", "null"],
        "exclusiveMinimum": 0,
        "maximum": 604800,
        "default": None,
    },
    "max_point_duration_s": {
        "type": "number",
        "exclusiveMinimum": 0,
        "maximum": 604800,
        "default": 86400,
    },
    "seed": {"type": "integer", "default": 0},
}
WARMUP = {
    "requests": {"type": "integer", "minimum": 0, "maximum": 1000000, "default": 0},
    "duration_s": {"type": "number", "minimum": 0, "maximum": 86400, "default": 0},
}
PROMPT = {"type": "string", "minLength": 1, "maxLength": 1000000}
MAX_TOKENS = {"type": "integer", "minimum": 1, "maximum": 131072}
# Config's token lengths (workload.input_tokens, workload.output_tokens: mean ± stdev) make
# a point's prompts and their max_tokens before its request is sent. Every drawn length is
# clamped to MAX_TOKENS' bounds, so the request never exceeds the API's: an output length
# is a prompt's max_tokens, and 131072 tokens of the synthetic prompts' text are about
# 600,000 characters, within PROMPT's maxLength (and 256 prompts of them fit in memory).
LENGTH = {
    "mean": MAX_TOKENS,
    "stdev": {"type": "number", "minimum": 0, "maximum": MAX_TOKENS["maximum"]},
}
LENGTHS = {"input_tokens": LENGTH, "output_tokens": LENGTH}
WORKLOAD = {
    "prompt": PROMPT,
    "max_tokens": {**MAX_TOKENS, "default": 64},
    "ignore_eos": {"type": "boolean", "default": True},
    "api": {"enum": ["chat", "completions"], "default": "chat"},
    "request_timeout_s": {
        "type": "number",
        "exclusiveMinimum": 0,
        "maximum": 86400,
        "default": 600,
    },
}
PROMPTS = {
    "type": "array",
    "minItems": 1,
    "maxItems": 100000,
    "items": {
        "type": "object",
        "additionalProperties": False,
        "required": ["prompt"],
        "properties": {"prompt": PROMPT, "max_tokens": MAX_TOKENS},
    },
}
# The workload keys a point's request takes from config as they are.
SENT_WORKLOAD = ("ignore_eos", "api", "request_timeout_s")
CLIENT = {"workers": {"type": "integer", "minimum": 1, "maximum": 64, "default": 1}}


def sweep_keys(module: ModuleType) -> dict:
    """A pattern's request sweep keys with their schemas: its level, then its SETTINGS."""
    defined = {**module.REQUEST_KEYS, **SWEEP}
    keys = [module.LEVEL_KEY, *module.SETTINGS]
    return {k: defined[k] for k in keys}


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
    sweep = _object(sweep_keys(module), module.REQUIRED)
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
        "sweep": sweep_keys(module),
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


def build(point: dict, settings: dict, prompts: list[dict]) -> dict:
    """The request of a sweep point. `settings` holds the config's sweep (at least the
    point's pattern's SETTINGS), warmup, workload and client sections; `prompts` the
    point's built prompts, each with its max_tokens."""
    module = patterns.of(point)
    sweep = {module.LEVEL_KEY: point[module.LEVEL_KEY]}
    sweep |= {k: settings["sweep"][k] for k in module.SETTINGS}
    sweep["seed"] = seed(settings["sweep"], point)
    workload = {"prompts": prompts} | {k: settings["workload"][k] for k in SENT_WORKLOAD}
    return {
        "pattern": module.NAME,
        "sweep": sweep,
        "warmup": {k: settings["warmup"][k] for k in WARMUP},
        "workload": workload,
        "client": {k: settings["client"][k] for k in CLIENT},
    }
