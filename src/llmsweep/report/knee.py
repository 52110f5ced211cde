"""Where adding clients stops adding throughput."""

from __future__ import annotations


def knee(x: list[float], y: list[float], gain: float = 0.1) -> float | None:
    """The smallest x after which the throughput curve flattens.

    Walking up the curve, the knee is the last point before the first step whose
    throughput gain per added client falls below `gain` times the first step's. None when
    the curve never flattens (or has fewer than three points): the sweep did not reach
    saturation.
    """
    pts = sorted(zip(x, y, strict=True))
    if len(pts) < 3:
        return None
    slopes = [(y2 - y1) / (x2 - x1) for (x1, y1), (x2, y2) in zip(pts, pts[1:], strict=False)]
    first = slopes[0]
    if first <= 0:
        return pts[0][0]
    for i, slope in enumerate(slopes[1:], start=1):
        if slope < gain * first:
            return pts[i][0]
    return None
