"""The sweep's points from a validated config: deployment x pattern level x repeat."""

from __future__ import annotations

from llmsweep import deployments
from llmsweep.loadgen import patterns


def sweep_points(cfg: dict, of: list[dict] | None = None) -> list[dict]:
    """Every listed point of the sweep, in order: deployment (those `of`, else every one of
    the config) x (each pattern's levels, in the order of patterns.PATTERNS: clients, rates,
    then trace time scales) x repeat. A capacity search's pattern (sweep.search) has no
    listed points: the search picks them (search_point).

    A point has its deployment's slug, model and engine, its pattern, every pattern's level
    key (None but its own's), its repeat and `load`, its folder name: c<clients>,
    r<rate> or t<time scale>, with _rep<k> when repeated.
    """
    sweep = cfg["sweep"]
    searched = (sweep["search"] or {}).get("pattern")
    loads = [
        (m, level)
        for m in patterns.PATTERNS.values()
        if m.NAME != searched
        for level in sweep[m.SWEEP_KEY]
    ]
    return [
        _point(dep, module, level, repeat, sweep["repeats"])
        for dep in (deployments.expand(cfg) if of is None else of)
        for module, level in loads
        for repeat in range(sweep["repeats"])
    ]


def search_point(cfg: dict, dep: dict, level: float) -> dict:
    """The point a capacity search (sweep.search) runs at `level` for deployment `dep`."""
    return _point(dep, patterns.pattern(cfg["sweep"]["search"]["pattern"]), level, 0, 1)


def searched_point(cfg: dict, dep: dict, load: str) -> dict:
    """The point of a capacity search whose folder is `load` (c12, r22.6)."""
    module = patterns.pattern(cfg["sweep"]["search"]["pattern"])
    text = load.removeprefix(module.PREFIX)
    return search_point(cfg, dep, int(text) if module.LEVEL_INTEGER else float(text))


def _point(dep: dict, module, level, repeat: int, repeats: int) -> dict:
    point = {
        "deployment": dep["slug"],
        "model": dep["model"],
        "engine": dep["engine"],
        "pattern": module.NAME,
        **dict.fromkeys(patterns.LEVEL_KEYS),
    }
    point[module.LEVEL_KEY] = level
    name = patterns.load_name(point)
    load = name if repeats == 1 else f"{name}_rep{repeat}"
    return point | {"repeat": repeat, "load": load}


def point_settings(cfg: dict, point: dict) -> dict:
    """The sweep keys that shape `point` (its pattern's), not the lists of levels."""
    return {k: cfg["sweep"][k] for k in patterns.of(point).SETTINGS}


def describe_load(point: dict) -> str:
    """'with 4 clients', 'at 2.5 requests/s' or 'at 2x the trace's speed', and the repeat
    when not the first."""
    module = patterns.of(point)
    text = module.describe(point[module.LEVEL_KEY])
    return text + (f" (repeat {point['repeat']})" if point["repeat"] else "")
