"""The report page: one self-contained HTML file (images inlined), plus the plotted values."""

from __future__ import annotations

import base64
import html

import pandas as pd
import yaml

from llmsweep.loadgen import patterns
from llmsweep.report import plots
from llmsweep.util import read_json, write_json_atomic

COLUMNS = {
    "model": "model",
    "load": "load",
    "successful": "ok",
    "failed": "failed",
    "output_token_throughput_tps": "output tok/s",
    "request_throughput_rps": "req/s",
    "ttft_p50_s": "TTFT p50 s",
    "ttft_p90_s": "TTFT p90 s",
    "ttft_p99_s": "TTFT p99 s",
    "itl_p50_s": "ITL p50 s",
    "itl_p99_s": "ITL p99 s",
    "tpot_p50_s": "TPOT p50 s",
    "e2e_p50_s": "E2E p50 s",
    "e2e_p90_s": "E2E p90 s",
    "e2e_p99_s": "E2E p99 s",
    "goodput_rps": "goodput req/s",
    "client_cpu_share": "client CPU",
    "client_saturated": "client saturated",
}


def _img(path: str, alt: str) -> str:
    with open(path, "rb") as f:
        data = base64.b64encode(f.read()).decode()
    return f'<img alt="{html.escape(alt)}" src="data:image/png;base64,{data}">'


def _table(df: pd.DataFrame) -> str:
    return df.to_html(index=False, float_format=lambda v: f"{v:.4g}", na_rep="-", escape=True)


def _ms(seconds: float) -> int:
    return int(seconds * 1000)


def _knee_text(name: str, d: dict) -> str:
    """'model: N clients' (closed loop) or 'model (open loop): R requests/s', for a series
    of plots.throughput's values; the knee is where more load stops adding throughput."""
    axis = next(m.AXIS for m in patterns.PATTERNS.values() if m.AXIS.knee_key in d)
    k = d[axis.knee_key]
    text = f"{k:g} {axis.knee_unit}" if k else "not reached in this sweep"
    return f"{html.escape(name)}: {text}"


def build_report(
    table_csv: str, metadata_json: str, point_plots: list[str], out: dict, run: str
) -> dict:
    """Write the run-level plots, the page and the plotted values; return those values."""
    df = pd.read_csv(table_csv, keep_default_na=True)
    df["errors"] = df["errors"].fillna("")
    meta = read_json(metadata_json)
    data = {
        "throughput": plots.throughput(df, out["throughput"]),
        "latency": plots.latency(df, out["latency"]),
        "throughput_latency": plots.throughput_latency(df, out["throughput_latency"]),
        "errors": plots.errors(df, out["errors"]),
    }
    write_json_atomic(out["data"], data)
    knees = "; ".join(_knee_text(m, d) for m, d in data["throughput"].items())
    windows = df[["model", "load", "window_start", "window_end"]].copy()
    windows["grafana range"] = [
        f"from={_ms(a)}&to={_ms(b)}"
        for a, b in zip(df["window_start"], df["window_end"], strict=True)
    ]
    windows["window_start"] = pd.to_datetime(windows["window_start"], unit="s").dt.strftime("%F %T")
    windows["window_end"] = pd.to_datetime(windows["window_end"], unit="s").dt.strftime("%F %T")
    failed = df[df["failed"] > 0][["model", "load", "requests", "failed", "errors"]]
    saturated = df[df["client_saturated"].fillna(False).astype(bool)]
    servers = pd.DataFrame([{"model": m, **(s or {})} for m, s in meta["servers"].items()])
    services = pd.DataFrame(meta["services"])
    per_point = "".join(
        f"<figure>{_img(p, 'TTFT and ITL distributions')}</figure>" for p in point_plots
    )
    body = f"""<!doctype html>
<html lang="en"><head><meta charset="utf-8"><title>llmsweep: {html.escape(run)}</title>
<style>body{{font-family:sans-serif;margin:2em;max-width:1400px}}
table{{border-collapse:collapse;margin:1em 0}} td,th{{border:1px solid #ccc;padding:3px 7px;
text-align:right}} img{{max-width:100%}} figure{{display:inline-block;margin:0.5em}}
.fail{{color:#b00}} pre{{background:#f6f6f6;padding:1em;overflow:auto}}</style>
</head><body>
<h1>llmsweep run {html.escape(run)}</h1>
<p>{len(df)} points, {int(df["requests"].sum())} requests, {int(df["failed"].sum())} failed.
Throughput is over each point's measurement window (first request sent to last finished);
latencies are measured by the client (TTFT: request sent to first generated token).</p>
<h2>Throughput</h2>{_img(out["throughput"], "throughput against concurrency")}
<p>Knee (adding clients stops adding throughput): {knees}.</p>
<h2>Latency</h2>{_img(out["latency"], "latency percentiles against concurrency")}
<h2>Throughput against latency</h2>{_img(out["throughput_latency"], "throughput vs latency")}
<h2>Points</h2>{_table(df[list(COLUMNS)].rename(columns=COLUMNS))}
{
        ""
        if saturated.empty
        else '<p class="fail">The load generator was saturated at '
        + html.escape(", ".join(saturated["load"]))
        + ": those latencies include client-side delay.</p>"
    }
<h2>Errors</h2>{_img(out["errors"], "errors per point")}
{"<p>No request failed.</p>" if failed.empty else '<div class="fail">' + _table(failed) + "</div>"}
<h2>Distributions per point</h2>{per_point}
<h2>Time windows</h2><p>Each point's window, for Grafana (append the range to a dashboard
URL) or Prometheus queries.</p>{_table(windows)}
<h2>What ran</h2>
<h3>Servers</h3>{_table(servers)}
<h3>Services</h3>{_table(services)}
<h3>Config</h3><pre>{html.escape(yaml.safe_dump(meta["config"], sort_keys=False))}</pre>
<p>The full table: points.csv and points.parquet beside this page; plotted values in
plot-data.json; metadata in metadata.json.</p>
</body></html>
"""
    with open(out["page"], "w") as f:
        f.write(body)
    return data
