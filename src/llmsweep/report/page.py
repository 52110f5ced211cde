"""Plots against concurrency and a self-contained HTML page (images inlined)."""

from __future__ import annotations

import base64
import html

import matplotlib

matplotlib.use("Agg")
import matplotlib.pyplot as plt  # noqa: E402
import pandas as pd  # noqa: E402


def plot_throughput(df: pd.DataFrame, out: str) -> None:
    fig, (ax_tok, ax_req) = plt.subplots(1, 2, figsize=(10, 4))
    for model, g in df.groupby("model"):
        ax_tok.plot(g["clients"], g["output_token_throughput_tps"], marker="o", label=model)
        ax_req.plot(g["clients"], g["request_throughput_rps"], marker="o", label=model)
    ax_tok.set(xlabel="concurrent clients", ylabel="output tokens/s (all clients)")
    ax_req.set(xlabel="concurrent clients", ylabel="requests/s")
    for ax in (ax_tok, ax_req):
        ax.set_xscale("log", base=2)
        ax.grid(True, alpha=0.3)
        ax.legend()
    fig.tight_layout()
    fig.savefig(out, dpi=100)
    plt.close(fig)


def plot_latency(df: pd.DataFrame, out: str) -> None:
    fig, axes = plt.subplots(1, 3, figsize=(14, 4))
    panels = (("ttft", "TTFT"), ("itl", "ITL"), ("e2e", "E2E latency"))
    for ax, (name, title) in zip(axes, panels, strict=True):
        for model, g in df.groupby("model"):
            for stat, style in (("p50", "-"), ("p99", "--")):
                ax.plot(g["clients"], g[f"{name}_{stat}_s"], style, marker="o",
                        label=f"{model} {stat}")  # fmt: skip
        ax.set(xlabel="concurrent clients", ylabel="seconds", title=title)
        ax.set_xscale("log", base=2)
        ax.grid(True, alpha=0.3)
        ax.legend(fontsize="small")
    fig.tight_layout()
    fig.savefig(out, dpi=100)
    plt.close(fig)


def _img(path: str, alt: str) -> str:
    with open(path, "rb") as f:
        data = base64.b64encode(f.read()).decode()
    return f'<img alt="{html.escape(alt)}" src="data:image/png;base64,{data}">'


COLUMNS = {
    "model": "model",
    "clients": "clients",
    "successful": "ok",
    "failed": "failed",
    "output_token_throughput_tps": "output tok/s",
    "request_throughput_rps": "req/s",
    "ttft_p50_s": "TTFT p50 s",
    "ttft_p99_s": "TTFT p99 s",
    "itl_p50_s": "ITL p50 s",
    "itl_p99_s": "ITL p99 s",
    "tpot_p50_s": "TPOT p50 s",
    "e2e_p50_s": "E2E p50 s",
    "e2e_p90_s": "E2E p90 s",
    "e2e_p99_s": "E2E p99 s",
}


def build_report(
    table_csv: str, throughput_png: str, latency_png: str, page: str, run: str
) -> None:
    df = pd.read_csv(table_csv)
    plot_throughput(df, throughput_png)
    plot_latency(df, latency_png)
    shown = df[list(COLUMNS)].rename(columns=COLUMNS)
    table_html = shown.to_html(index=False, float_format=lambda v: f"{v:.4g}", na_rep="-")
    body = f"""<!doctype html>
<html><head><meta charset="utf-8"><title>llmsweep: {html.escape(run)}</title>
<style>body{{font-family:sans-serif;margin:2em}} table{{border-collapse:collapse}}
td,th{{border:1px solid #ccc;padding:4px 8px;text-align:right}} img{{max-width:100%}}</style>
</head><body>
<h1>llmsweep run {html.escape(run)}</h1>
<p>{len(df)} points. Throughput is over each point's measurement window; latencies are
client-measured (TTFT: request sent to first generated token).</p>
<h2>Throughput</h2>{_img(throughput_png, "throughput against concurrency")}
<h2>Latency</h2>{_img(latency_png, "latency percentiles against concurrency")}
<h2>Points</h2>{table_html}
<p>The full table: points.csv beside this page.</p>
</body></html>
"""
    with open(page, "w") as f:
        f.write(body)
