"""The load patterns, one module each. Callers ask a point's pattern module; none tests a
pattern's name.

Each module provides:
    NAME                the pattern's name in sweep points, requests and summaries
    SWEEP_KEY           config's list of its levels: sweep.<SWEEP_KEY> (clients, rates)
    LEVEL_KEY           one point's level, as the sweep point, the request's sweep
                        section, the summary and the table name it (clients, rate)
    PREFIX, LEVEL_REGEX the point's folder, PREFIX + level_text(level) (c4, r2.5), and
                        the regular expression of the level part
    LEVEL_INTEGER       whether levels are whole numbers (clients), for a capacity
                        search's steps (loadgen.search)
    SETTINGS            the sweep keys, in config and request, that shape a point besides
                        its level
    SCHEDULE            the request's sweep keys config has no key for, one value per
                        prompt of the request (a trace's arrivals); their bounds are
                        point_request.SCHEDULE_KEYS
    REQUIRED            the request's sweep keys a request must give (every key's
                        bounds are config/schema.yaml's: loadgen.point_request)
    AXIS                how the report plots its points (common.Axis)
    level_text(level)   the level in a folder name and a metric label
    describe(level)     "with 4 clients", "at 2.5 requests/s", for messages
    total(sweep)        measured requests a point sends at most
    warmup_width(sweep) concurrent warm-up clients
    split(sweep, k, n)  worker k's share (of n processes) of the request's sweep section
    run(send, sweep)    the point's measured load, a coroutine; send(**extra) sends one
                        request with the request's next prompt and records it with
                        `extra`; send(prompt_index=i, **extra) sends prompt i;
                        send(history=messages, ...) sends it after a conversation's
                        messages and returns them with the prompt and the answer added
                        (None when the request failed)
    figures(measured)   the pattern's own summary figures from the measured records

A new pattern is a module here, listed in PATTERNS, and its keys in config/schema.yaml's
sweep, its list of levels marked `x-pattern: <name>`.
"""

from __future__ import annotations

from types import ModuleType

from llmsweep.loadgen.patterns import closed, multiturn, open, trace

PATTERNS: dict[str, ModuleType] = {m.NAME: m for m in (closed, open, trace, multiturn)}
# The pattern of a request that names none, and of summaries written before there were two.
DEFAULT = closed.NAME
LEVEL_KEYS = tuple(m.LEVEL_KEY for m in PATTERNS.values())
# A point's folder name: a pattern's level, then _rep<k> when the sweep repeats points.
LOAD_REGEX = "(" + "|".join(m.PREFIX + m.LEVEL_REGEX for m in PATTERNS.values()) + ")(_rep[0-9]+)?"


def pattern(name: str) -> ModuleType:
    """The module of the pattern called `name`."""
    try:
        return PATTERNS[name]
    except KeyError:
        raise ValueError(f"no load pattern {name!r}: one of {', '.join(PATTERNS)}") from None


def of(point: dict) -> ModuleType:
    """The module of a sweep point's or summary's pattern."""
    return pattern(point.get("pattern", DEFAULT))


def load_name(point: dict) -> str:
    """A sweep point's folder name, its repeat aside: c4, r2.5."""
    module = of(point)
    return module.PREFIX + module.level_text(point[module.LEVEL_KEY])


def levels(point: dict) -> dict:
    """Every pattern's level key with the point's value (None but for its own pattern)."""
    return {key: point.get(key) for key in LEVEL_KEYS}


def metric_labels(request: dict) -> dict:
    """The live metrics' level labels of a point request: its level under its pattern's
    key, empty under the others'."""
    module = pattern(request["pattern"])
    labels = dict.fromkeys(LEVEL_KEYS, "")
    labels[module.LEVEL_KEY] = module.level_text(request["sweep"][module.LEVEL_KEY])
    return labels
