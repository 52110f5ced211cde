"""The sweep's points from a validated config: model x pattern level x repeat."""

from __future__ import annotations

from llmsweep.loadgen import patterns


def sweep_points(cfg: dict) -> list[dict]:
    """Every point of the sweep, in order: model x (each pattern's levels, in the order of
    patterns.PATTERNS: clients, then rates) x repeat.

    A point has its model, pattern, every pattern's level key (None but its own's), its
    repeat and `load`, its folder name: c<clients> or r<rate>, with _rep<k> when repeated.
    """
    sweep = cfg["sweep"]
    loads = [(m, level) for m in patterns.PATTERNS.values() for level in sweep[m.SWEEP_KEY]]
    points = []
    for model in cfg["models"]:
        for module, level in loads:
            point = {"model": model, "pattern": module.NAME, **dict.fromkeys(patterns.LEVEL_KEYS)}
            point[module.LEVEL_KEY] = level
            name = patterns.load_name(point)
            for repeat in range(sweep["repeats"]):
                load = name if sweep["repeats"] == 1 else f"{name}_rep{repeat}"
                points.append(point | {"repeat": repeat, "load": load})
    return points


def point_settings(cfg: dict, point: dict) -> dict:
    """The sweep keys that shape `point` (its pattern's), not the lists of levels."""
    return {k: cfg["sweep"][k] for k in patterns.of(point).SETTINGS}


def describe_load(point: dict) -> str:
    """'with 4 clients' or 'at 2.5 requests/s', and the repeat when not the first."""
    module = patterns.of(point)
    text = module.describe(point[module.LEVEL_KEY])
    return text + (f" (repeat {point['repeat']})" if point["repeat"] else "")
