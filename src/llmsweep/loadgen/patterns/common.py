"""What the load pattern modules share: the shape of a plot axis and the split of a count."""

from __future__ import annotations

from typing import NamedTuple


class Axis(NamedTuple):
    """How the report plots a pattern's points."""

    column: str  # the table column on the x axis, the pattern's level ("clients")
    label: str  # the x axis label ("concurrent clients")
    suffix: str  # added to the model name to name the series ("" or " (open loop)")
    knee_key: str  # the knee's key among the plotted values ("knee_clients")
    knee_unit: str  # the unit the page states the knee in ("clients")


def share(total: int, k: int, n: int) -> int:
    """Worker k's part of `total` split as evenly as possible over n workers."""
    return total // n + (1 if k < total % n else 0)
