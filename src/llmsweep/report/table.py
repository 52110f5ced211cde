"""The tidy table: one row per point (and repeat), every figure and the run's metadata,
grouped by deployment."""

from __future__ import annotations

import pandas as pd

from llmsweep.loadgen import patterns
from llmsweep.loadgen.stats import LATENCIES, PERCENTILES
from llmsweep.report import deployments
from llmsweep.util import read_json

STATS = tuple(f"p{q}" for q in PERCENTILES) + ("mean", "min", "max")


def row(summary: dict) -> dict:
    point = summary["point"]
    server = point.get("server") or {}
    client = summary.get("client") or {}
    out = {
        "run": point["run"],
        "deployment": deployments.deployment_of(point),
        "model": point["model"],
        "engine": point.get("engine"),
        "engine_version": server.get("engine_version"),
        "gpus": deployments.gpus_of(point),
        "gpu_models": ";".join(m for m in (server.get("gpu") or {}).get("models", []) if m),
        "load": point.get("load") or patterns.load_name(point),
        "pattern": patterns.of(point).NAME,  # closed in a summary from before open loops
        **patterns.levels(point),
        "repeat": point.get("repeat", 0),
        "requests_per_client": point["requests_per_client"],
        "requests": summary["requests"],
        "successful": summary["successful"],
        "failed": summary["failed"],
        "errors": ";".join(f"{k}={v}" for k, v in sorted(summary["errors"].items())),
        "stalls": summary.get("stalls"),  # requests that waited through a hung server
        "window_start": summary["window"]["start"],
        "window_end": summary["window"]["end"],
        "duration_s": summary["window"]["duration_s"],
        "request_throughput_rps": summary["request_throughput_rps"],
        "output_token_throughput_tps": summary["output_token_throughput_tps"],
        "output_tokens": summary["output_tokens"],
        "input_tokens": summary["input_tokens"],
        "goodput_rps": summary.get("goodput_rps"),
        "slo_share_all": (summary.get("slo_share") or {}).get("all"),
        "output_tokens_mean": (summary.get("output_tokens_dist") or {}).get("mean"),
        "input_tokens_mean": (summary.get("input_tokens_dist") or {}).get("mean"),
        "warmup_requests": summary.get("warmup_requests", 0),
        "peak_in_flight": point.get("peak_in_flight"),
        "client_cpu_share": client.get("cpu_share"),
        "client_loop_lag_p99_s": client.get("loop_lag_p99_s"),
        "client_saturated": client.get("saturated"),
        "llm_server_url": point["llm_server"]["url"],
        "llm_server_status": point["llm_server"]["status"],
        "llm_server_job_id": point["llm_server"].get("job_id"),
        "client_service_status": point["client_service"]["status"],
    }
    for name in LATENCIES:
        for stat in STATS:
            out[f"{name.removesuffix('_s')}_{stat}_s"] = summary[name][stat]
    # A trace replay's send lateness (sent minus scheduled): a late generator delays the
    # load, not the server. Empty for the other patterns.
    lateness = summary.get("lateness_s") or {}
    for stat in ("p50", "p99", "max"):
        out[f"lateness_{stat}_s"] = lateness.get(stat)
    return out | deployments.setting_columns(deployments.settings_of(point))


def table(summary_paths: list[str], roles: dict | None = None) -> pd.DataFrame:
    """Every point's row, grouped by deployment, then by load (pattern, level, repeat); the
    settings' columns last, by name. `roles` gives searched points their part in the
    capacity search (deployments.search_roles), in the search column."""
    rows = [row(read_json(p)) for p in summary_paths]
    for r in rows:
        r["search"] = (roles or {}).get((r["deployment"], r["load"]), "")
    df = pd.DataFrame(rows)
    settings = sorted(c for c in df.columns if c.startswith(deployments.SETTING_PREFIX))
    df = df[[c for c in df.columns if c not in settings] + settings]
    order = ["deployment", "pattern", *patterns.LEVEL_KEYS, "repeat"]
    return df.sort_values(order, ignore_index=True)


def write_table(summary_paths: list[str], out_csv: str, out_parquet: str | None = None, roles=None):
    df = table(summary_paths, roles)
    df.to_csv(out_csv, index=False)
    if out_parquet:
        df.to_parquet(out_parquet, index=False)
    return df
