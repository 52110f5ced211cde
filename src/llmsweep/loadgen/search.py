"""Adaptive capacity search (sweep.search): the highest load level of one pattern (clients
of the closed loop, rate of the open loop, speed of a trace) at which a deployment meets
the goal, found in few points.

A level passes when at least `goal_share` of its measured requests succeeded (and, with
SLOs set, met every one of them), and its throughput grew with the load: against the
highest passing level below it, throughput rose by at least `min_gain` times the rise of
the level (doubling the load must give 1 + min_gain times the throughput). The search runs
`low`, doubles while levels pass (up to `high`), then halves the bracket between the
highest pass and the lowest failure above it (geometric middle; integers for clients)
until it is within `tolerance` (relative) or `max_points` ran.

The next level is a pure function of the levels run so far and whether each passed, so a
re-run replays the search on the points already finished (their summaries) and continues
where it stopped: a finished point never runs again (tests/test_search.py).
"""

from __future__ import annotations

import math
from typing import NamedTuple

from llmsweep.loadgen import patterns

# Significant digits of a real level (a rate or time scale), so folders read well (r22.6).
DIGITS = 3


class Step(NamedTuple):
    """One level of the search, and its verdict."""

    level: float
    passed: bool
    why: str  # what decided it, in words


def integer_levels(pattern: str) -> bool:
    """Whether the pattern's levels are whole numbers (clients)."""
    return patterns.pattern(pattern).LEVEL_INTEGER


def _round(level: float, integer: bool) -> float:
    if integer:
        return int(round(level))
    return float(f"{level:.{DIGITS}g}")


def next_level(search: dict, steps: list[Step]) -> float | None:
    """The next level to run, or None when the search is done."""
    integer = integer_levels(search["pattern"])
    low, high = _round(search["low"], integer), _round(search["high"], integer)
    if not steps:
        return low
    if len(steps) >= search["max_points"]:
        return None
    passed = [s.level for s in steps if s.passed]
    if not passed:
        return None  # the lowest level failed: the capacity is below it
    best = max(passed)
    above = [s.level for s in steps if not s.passed and s.level > best]
    if not above:  # no failure yet: grow
        if best >= high:
            return None
        grown = _round(best * 2, integer)
        return min(high, grown if grown > best else best + (1 if integer else best))
    worst = min(above)
    if _narrow(best, worst, search["tolerance"], integer):
        return None
    middle = _round(math.sqrt(best * worst), integer)
    if not best < middle < worst:  # rounding met an end: the plain middle, else done
        middle = _round((best + worst) / 2, integer)
        if not best < middle < worst:
            return None
    return middle


def _narrow(best: float, worst: float, tolerance: float, integer: bool) -> bool:
    """Whether the bracket [best, worst) is as narrow as asked."""
    return worst / best - 1 <= tolerance or (integer and worst - best <= 1)


def judge(
    summary: dict, search: dict, level: float, below: tuple[float, dict] | None
) -> tuple[bool, str]:
    """Whether the point at `level` (its summary) passes, and why; `below` is the highest
    passing level under it and its summary, if any."""
    n = summary.get("requests") or 0
    if not n:
        return False, "no measured request"
    goal = search["goal_share"]
    if summary.get("slo"):
        good = (summary.get("slo_share") or {}).get("all", 0) * (summary.get("successful") or 0)
        share, what = good / n, "met every SLO"
    else:
        share, what = (summary.get("successful") or 0) / n, "succeeded"
    if share < goal:
        return False, f"{share:.0%} of requests {what} (goal {goal:.0%})"
    if below is None:
        return True, f"{share:.0%} of requests {what}"
    level_below, summary_below = below
    gain, wanted = _gain(summary, summary_below), search["min_gain"] * (level / level_below - 1)
    if gain is None or gain < wanted:
        shown = "no throughput" if gain is None else f"throughput +{gain:.0%}"
        return False, f"{shown} over {level_below:g}, want +{wanted:.0%} (min_gain)"
    return True, f"{share:.0%} of requests {what}; throughput +{gain:.0%} over {level_below:g}"


def _gain(summary: dict, below: dict) -> float | None:
    """Relative throughput rise from `below` to `summary` (output tokens/s, else requests/s)."""
    for key in ("output_token_throughput_tps", "request_throughput_rps"):
        now, then = summary.get(key), below.get(key)
        if now is not None and then:
            return now / then - 1
    return None


def replay(search: dict, summary_of) -> tuple[list[Step], float | None]:
    """The search's steps over the finished points (`summary_of(level)`: a finished point's
    summary, or None), and the next level to run (None when the search is done). A level
    not finished stops the replay: it is the next to run."""
    steps: list[Step] = []
    kept: dict[float, dict] = {}
    while (level := next_level(search, steps)) is not None:
        summary = summary_of(level)
        if summary is None:
            return steps, level
        steps.append(step(search, level, summary, kept))
    return steps, None


def step(search: dict, level: float, summary: dict, kept: dict[float, dict]) -> Step:
    """Judge `summary` at `level` against the passing levels `kept` so far (added to when
    it passes)."""
    lower = [lv for lv in kept if lv < level]
    below = (max(lower), kept[max(lower)]) if lower else None
    passed, why = judge(summary, search, level, below)
    if passed:
        kept[level] = summary
    return Step(level, passed, why)


def outcome(search: dict, steps: list[Step]) -> dict:
    """What the search found: the capacity (the highest passing level; None when the lowest
    failed), the failing level above it (None when none failed above), why it stopped,
    and every step."""
    passed = [s.level for s in steps if s.passed]
    best = max(passed) if passed else None
    above = [s.level for s in steps if not s.passed and (best is None or s.level > best)]
    worst = min(above) if above else None
    if best is None:
        why = "the lowest level failed: the capacity is below it"
    elif worst is None and best >= _round(search["high"], integer_levels(search["pattern"])):
        why = "the highest level passed: the capacity is at least that"
    elif worst is not None and _narrow(
        best, worst, search["tolerance"], integer_levels(search["pattern"])
    ):
        why = "the bracket is within the tolerance"
    elif len(steps) >= search["max_points"]:
        why = "max_points reached before the bracket was within the tolerance"
    else:
        why = f"no level between {best:g} and {worst:g} at {DIGITS} significant digits"
    module = patterns.pattern(search["pattern"])

    def load(level):
        return (
            None
            if level is None
            else patterns.load_name({"pattern": module.NAME, module.LEVEL_KEY: level})
        )

    return {
        "pattern": module.NAME,
        "level_key": module.LEVEL_KEY,
        "capacity": best,
        "failed_above": worst,
        "capacity_load": load(best),
        "failed_above_load": load(worst),
        "why": why,
        "points": len(steps),
        "steps": [s._asdict() | {"load": load(s.level)} for s in steps],
    }
