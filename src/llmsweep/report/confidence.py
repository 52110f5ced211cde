"""How sure the figures are: each load level's mean over its repeats (sweep.repeats) and a
95 % confidence interval, Student t with n - 1 degrees of freedom: mean ± t(0.975, n - 1)
· s / √n, s the repeats' sample standard deviation.

The interval says how far the mean of these repeats may be from the mean of many more
repeats of the same point; it assumes repeats are independent and their figures roughly
normal. A level run once has no interval."""

from __future__ import annotations

import math
import re

import pandas as pd

from llmsweep.loadgen.stats import LATENCIES, PERCENTILES

# t(0.975, df) for df 1..30, to 6 decimals (standard tables; scipy is not a dependency).
# tests/test_confidence.py checks them against a numerical integral of the t density.
T_975 = (
    12.706205, 4.302653, 3.182446, 2.776445, 2.570582, 2.446912, 2.364624, 2.306004,
    2.262157, 2.228139, 2.200985, 2.178813, 2.160369, 2.144787, 2.131450, 2.119905,
    2.109816, 2.100922, 2.093024, 2.085963, 2.079614, 2.073873, 2.068658, 2.063899,
    2.059539, 2.055529, 2.051831, 2.048407, 2.045230, 2.042272,
)  # fmt: skip
Z_975 = 1.959963984540054  # the normal quantile, t's limit

# The figures that get an interval: throughput, and every latency percentile.
METRICS = ("request_throughput_rps", "output_token_throughput_tps") + tuple(
    f"{name.removesuffix('_s')}_p{q}_s" for name in LATENCIES for q in PERCENTILES
)
# A load level: its deployment and pattern level (the table's load without _rep<k>).
LEVEL = ["deployment", "model", "pattern", "clients", "rate", "level"]
_REPEAT = re.compile(r"_rep[0-9]+$")


def t_975(df: int) -> float:
    """The 0.975 quantile of Student's t with `df` degrees of freedom: from T_975 up to 30,
    beyond from the Cornish-Fisher expansion around the normal quantile (Abramowitz and
    Stegun 26.7.5; within 1e-6 of the exact value from df 30 on)."""
    if df < 1:
        raise ValueError(f"t quantile of {df} degrees of freedom")
    if df <= len(T_975):
        return T_975[df - 1]
    z = Z_975
    terms = (
        (z**3 + z) / 4,
        (5 * z**5 + 16 * z**3 + 3 * z) / 96,
        (3 * z**7 + 19 * z**5 + 17 * z**3 - 15 * z) / 384,
        (79 * z**9 + 776 * z**7 + 1482 * z**5 - 1920 * z**3 - 945 * z) / 92160,
    )
    return z + sum(term / df**k for k, term in enumerate(terms, start=1))


def interval(values) -> dict:
    """n, mean and the 95 % interval (low, high, half width) of `values`, missing ones
    left out; no interval (NaN) with fewer than two."""
    vals = [float(v) for v in values if v is not None and not pd.isna(v)]
    n = len(vals)
    mean = sum(vals) / n if n else math.nan
    if n < 2:
        return {"n": n, "mean": mean, "half_width": math.nan, "low": math.nan, "high": math.nan}
    sd = math.sqrt(sum((v - mean) ** 2 for v in vals) / (n - 1))
    half = t_975(n - 1) * sd / math.sqrt(n)
    return {"n": n, "mean": mean, "half_width": half, "low": mean - half, "high": mean + half}


def with_levels(points: pd.DataFrame) -> pd.DataFrame:
    """The tidy table with its `level` column: each point's load without its repeat."""
    return points.assign(level=[_REPEAT.sub("", str(load)) for load in points["load"]])


def repeated(points: pd.DataFrame) -> bool:
    """Whether any load level of the tidy table was run more than once."""
    if points.empty:
        return False
    return bool(with_levels(points).groupby(LEVEL, dropna=False).size().max() > 1)


def table(points: pd.DataFrame) -> pd.DataFrame:
    """One row per deployment and load level of the tidy table (points.csv): its repeats,
    then per figure of METRICS its mean, 95 % interval's low and high end and half width
    (<figure>_mean, _ci_low, _ci_high, _ci_half)."""
    rows = []
    for key, g in with_levels(points).groupby(LEVEL, dropna=False, sort=False):
        row = dict(zip(LEVEL, key, strict=True)) | {"repeats": len(g)}
        for metric in METRICS:
            ci = interval(g[metric]) if metric in g else interval([])
            row |= {
                f"{metric}_mean": ci["mean"],
                f"{metric}_ci_low": ci["low"],
                f"{metric}_ci_high": ci["high"],
                f"{metric}_ci_half": ci["half_width"],
            }
        rows.append(row)
    return pd.DataFrame(rows, columns=[*LEVEL, "repeats"] + _columns())


def _columns() -> list[str]:
    return [f"{m}_{s}" for m in METRICS for s in ("mean", "ci_low", "ci_high", "ci_half")]


def write(points: pd.DataFrame, out_csv: str) -> pd.DataFrame:
    """intervals.csv of the tidy table."""
    df = table(points)
    df.to_csv(out_csv, index=False)
    return df
