"""Static plots of the report. Each function saves a PNG and returns the values it
plotted, so tests can check them against the tidy table."""

from __future__ import annotations

import matplotlib

matplotlib.use("Agg")
import matplotlib.pyplot as plt  # noqa: E402
import pandas as pd  # noqa: E402

from llmsweep.loadgen import patterns  # noqa: E402
from llmsweep.report.knee import knee  # noqa: E402


def _save(fig, out: str) -> None:
    fig.tight_layout()
    fig.savefig(out, dpi=90)
    plt.close(fig)


def series(df: pd.DataFrame):
    """(name, axis, rows) per model and load pattern, repeats averaged, each against its
    pattern's axis (patterns.common.Axis): closed-loop points against clients, open-loop
    points against the request rate."""
    for (model, name), g in df.groupby(["model", "pattern"]):
        axis = patterns.pattern(name).AXIS
        rows = g.groupby(axis.column, as_index=False).mean(numeric_only=True)
        yield model + axis.suffix, axis, rows


def _xlabel(df: pd.DataFrame) -> str:
    """The axis labels of the patterns plotted, in the order of patterns.PATTERNS."""
    shown = set(df["pattern"])
    return " / ".join(m.AXIS.label for m in patterns.PATTERNS.values() if m.NAME in shown)


def _log2(ax) -> None:
    ax.set_xscale("log", base=2)
    ax.grid(True, alpha=0.3)
    ax.legend(fontsize="small")


def throughput(df: pd.DataFrame, out: str) -> dict:
    """Output tokens/s and requests/s against load (clients or rate), per model, knee marked."""
    data: dict = {}
    fig, (ax_tok, ax_req) = plt.subplots(1, 2, figsize=(10, 4))
    for model, axis, g in series(df):
        x, tok = g[axis.column].tolist(), g["output_token_throughput_tps"].tolist()
        req = g["request_throughput_rps"].tolist()
        k = knee(x, tok)
        data[model] = {
            axis.column: x,
            "output_token_throughput_tps": tok,
            "request_throughput_rps": req,
            axis.knee_key: k,
        }
        ax_tok.plot(x, tok, marker="o", label=model)
        ax_req.plot(x, req, marker="o", label=model)
        if k is not None:
            ax_tok.axvline(k, linestyle=":", color="grey")
            ax_tok.annotate(f"knee: {k:g} {axis.column}", (k, max(tok)), fontsize="small")
    ax_tok.set(xlabel=_xlabel(df), ylabel="output tokens/s (all clients)")
    ax_req.set(xlabel=_xlabel(df), ylabel="requests/s")
    _log2(ax_tok)
    _log2(ax_req)
    _save(fig, out)
    return data


def latency(df: pd.DataFrame, out: str) -> dict:
    """p50 and p99 of TTFT, ITL and E2E against clients, per model."""
    data: dict = {}
    fig, axes = plt.subplots(1, 3, figsize=(14, 4))
    panels = (("ttft", "TTFT"), ("itl", "ITL"), ("e2e", "E2E latency"))
    for ax, (name, title) in zip(axes, panels, strict=True):
        for model, axis, g in series(df):
            x = axis.column
            for stat, style in (("p50", "-"), ("p99", "--")):
                col = f"{name}_{stat}_s"
                data.setdefault(model, {x: g[x].tolist()})[col] = g[col].tolist()
                ax.plot(g[x], g[col], style, marker="o", label=f"{model} {stat}")
        ax.set(xlabel=_xlabel(df), ylabel="seconds", title=title)
        _log2(ax)
    _save(fig, out)
    return data


def throughput_latency(df: pd.DataFrame, out: str) -> dict:
    """The trade-off: output tokens/s against p50/p99 TTFT and E2E, one point per load."""
    data: dict = {}
    fig, axes = plt.subplots(1, 2, figsize=(10, 4))
    for ax, name in zip(axes, ("ttft", "e2e"), strict=True):
        for model, _, g in series(df):
            tok = g["output_token_throughput_tps"]
            for stat, style in (("p50", "-"), ("p99", "--")):
                col = f"{name}_{stat}_s"
                ax.plot(g[col], tok, style, marker="o", label=f"{model} {stat}")
                values = data.setdefault(model, {"output_token_throughput_tps": tok.tolist()})
                values[col] = g[col].tolist()
        ax.set(xlabel=f"{name.upper()} seconds", ylabel="output tokens/s")
        ax.grid(True, alpha=0.3)
        ax.legend(fontsize="small")
    _save(fig, out)
    return data


def errors(df: pd.DataFrame, out: str) -> dict:
    """Failed requests per point, stacked by error kind."""
    kinds: dict[str, list[int]] = {}
    labels = [f"{m} {load}" for m, load in zip(df["model"], df["load"], strict=True)]
    for i, text in enumerate(df["errors"].fillna("")):
        for part in filter(None, str(text).split(";")):
            kind, count = part.split("=")
            kinds.setdefault(kind, [0] * len(df))[i] = int(count)
    fig, ax = plt.subplots(figsize=(max(6, len(df) * 0.6), 4))
    bottom = [0] * len(df)
    for kind, counts in sorted(kinds.items()):
        ax.bar(labels, counts, bottom=bottom, label=kind)
        bottom = [b + c for b, c in zip(bottom, counts, strict=True)]
    ax.set(ylabel="failed requests", title="errors per point" + ("" if kinds else ": none"))
    ax.tick_params(axis="x", rotation=45)
    if kinds:
        ax.legend(fontsize="small")
    _save(fig, out)
    return {"points": labels, "failed": df["failed"].tolist(), "by_kind": kinds}


def distributions(records: list[dict], out: str, title: str) -> dict:
    """TTFT and ITL distributions (CDFs) of one point, warm-up excluded."""
    measured = [r for r in records if r["ok"] and not r.get("warmup")]
    series = {
        "ttft_s": sorted(r["ttft_s"] for r in measured),
        "itl_s": sorted(g for r in measured for g in r["itl_s"]),
    }
    fig, axes = plt.subplots(1, 2, figsize=(9, 3.5))
    for ax, (name, values) in zip(axes, series.items(), strict=True):
        share = [(i + 1) / len(values) for i in range(len(values))]
        ax.step(values, share, where="post")
        ax.set(xlabel=f"{name[:-2].upper()} seconds", ylabel="share", ylim=(0, 1.02))
        ax.grid(True, alpha=0.3)
    fig.suptitle(title)
    _save(fig, out)
    return series
