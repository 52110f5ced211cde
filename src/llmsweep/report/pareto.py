"""The trade-off across deployments: what one user gets against what the hardware yields.

Per user: output tokens/s one request receives while it decodes, 1 / mean TPOT (TPOT =
(E2E - TTFT) / (output tokens - 1), from the summary's tpot_s). Per GPU: the point's
aggregate output tokens/s over its window divided by the server's GPUs; a CPU server (0
GPUs) counts as one unit, so its figure is per server. A point is on the frontier when no
other point is at least as good on both and better on one."""

from __future__ import annotations

import math

import pandas as pd

COLUMNS = ["deployment", "load", "gpus", "per_user_tps", "per_gpu_tps"]


def per_user_tps(tpot_mean_s: float | None) -> float:
    """Output tokens/s per user from the mean TPOT; NaN when there is none (no request
    produced two tokens)."""
    if tpot_mean_s is None or pd.isna(tpot_mean_s) or tpot_mean_s <= 0:
        return math.nan
    return 1.0 / tpot_mean_s


def per_gpu_tps(output_tps: float | None, gpus: int) -> float:
    """Output tokens/s per GPU; per server for a CPU server (0 GPUs)."""
    if output_tps is None or pd.isna(output_tps):
        return math.nan
    return output_tps / gpus if gpus > 0 else output_tps


def points(df: pd.DataFrame) -> pd.DataFrame:
    """Each point of the tidy table with both figures (points without either left out)."""
    out = pd.DataFrame(
        {
            "deployment": df["deployment"],
            "load": df["load"],
            "gpus": df["gpus"].fillna(0).astype(int),
            "per_user_tps": [per_user_tps(t) for t in df["tpot_mean_s"]],
        }
    )
    out["per_gpu_tps"] = [
        per_gpu_tps(t, g)
        for t, g in zip(df["output_token_throughput_tps"], out["gpus"], strict=True)
    ]
    return out.dropna(subset=["per_user_tps", "per_gpu_tps"]).reset_index(drop=True)[COLUMNS]


def dominated(x: list[float], y: list[float], i: int) -> bool:
    """Whether another point is at least as good as point i on both figures, better on one."""
    return any(
        x[j] >= x[i] and y[j] >= y[i] and (x[j] > x[i] or y[j] > y[i])
        for j in range(len(x))
        if j != i
    )


def frontier(x: list[float], y: list[float]) -> list[bool]:
    """For each point, whether it is on the Pareto frontier (higher is better on both)."""
    return [not dominated(x, y, i) for i in range(len(x))]


def y_label(gpus: pd.Series) -> str:
    """The per-GPU axis label, saying where a figure is per (CPU) server instead."""
    if (gpus > 0).all():
        return "output tokens/s per GPU"
    if (gpus <= 0).all():
        return "output tokens/s per server (CPU servers, no GPU)"
    return "output tokens/s per GPU (per server for CPU servers)"
