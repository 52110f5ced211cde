"""The per-turn table of a run's multi-turn points (turns.csv): one row per point and turn,
from each summary's per_turn figures (loadgen.patterns.multiturn.figures)."""

from __future__ import annotations

import pandas as pd

from llmsweep.loadgen.patterns import multiturn
from llmsweep.report import deployments
from llmsweep.util import read_json

# Each row's point, then its turn's figures as the summary names them.
POINT = ["deployment", "load", multiturn.LEVEL_KEY, "repeat"]
FIGURES = [
    "turn",
    "requests",
    "successful",
    "ttft_p50_s",
    "ttft_mean_s",
    "input_tokens_mean",
    "cached_tokens_mean",
    "cached_tokens_requests",
    "cached_share",
    "ttft_p50_vs_turn1",
]


def rows(summary: dict) -> list[dict]:
    """A summary's rows: none for a point without per-turn figures."""
    point = summary["point"]
    where = {
        "deployment": deployments.deployment_of(point),
        "load": point["load"],
        multiturn.LEVEL_KEY: point.get(multiturn.LEVEL_KEY),
        "repeat": point.get("repeat", 0),
    }
    return [where | {k: turn.get(k) for k in FIGURES} for turn in summary.get("per_turn") or []]


def table(summary_paths: list[str]) -> pd.DataFrame:
    """Every multi-turn point's turns, by deployment, load level, repeat and turn."""
    found = [r for p in summary_paths for r in rows(read_json(p))]
    df = pd.DataFrame(found, columns=POINT + FIGURES)
    return df.sort_values(["deployment", multiturn.LEVEL_KEY, "repeat", "turn"], ignore_index=True)


def write(summary_paths: list[str], out_csv: str) -> pd.DataFrame:
    df = table(summary_paths)
    df.to_csv(out_csv, index=False)
    return df
