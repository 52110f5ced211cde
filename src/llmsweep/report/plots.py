"""Static plots of the report. Each function saves a PNG and returns the values it
plotted, so tests can check them against the tidy table. Latencies are drawn in
milliseconds; the values returned keep the table's seconds (their keys end in _s). Where
a sweep repeats its points, a figure plotted against load is the repeats' mean, with its
95 % confidence interval as error bars (report.confidence) and in the values returned
(<figure>_ci_low, <figure>_ci_high)."""

from __future__ import annotations

import math

import matplotlib

matplotlib.use("Agg")
import matplotlib.pyplot as plt  # noqa: E402
import pandas as pd  # noqa: E402
from matplotlib.lines import Line2D  # noqa: E402
from matplotlib.ticker import FuncFormatter, MaxNLocator  # noqa: E402

from llmsweep.loadgen import patterns  # noqa: E402
from llmsweep.report import confidence  # noqa: E402
from llmsweep.report import pareto as front  # noqa: E402
from llmsweep.report.deployments import settings_text  # noqa: E402
from llmsweep.report.knee import knee  # noqa: E402

MS = 1000.0  # seconds -> milliseconds, for latency axes


# The line style of each latency percentile; a series keeps one color in every panel.
PERCENTILE_STYLES = (("p50", "-"), ("p99", "--"))


def _save(fig, out: str) -> None:
    """Save as PNG; "tight" takes in a legend below the panels."""
    fig.tight_layout()
    fig.savefig(out, dpi=90, bbox_inches="tight")
    plt.close(fig)


def _legend(fig, ax, styles: bool = False) -> None:
    """One legend for the whole figure, below its panels, so that many deployments with
    long names cover no data: the series plotted on `ax` (every panel plots the same),
    and with `styles` the line style of each percentile."""
    handles, names = ax.get_legend_handles_labels()
    if styles:
        handles += [Line2D([], [], color="black", linestyle=ls) for _, ls in PERCENTILE_STYLES]
        names += [stat for stat, _ in PERCENTILE_STYLES]
    if handles:
        ncol = 1 if max(map(len, names)) > 60 else 2 if max(map(len, names)) > 30 else 4
        fig.legend(
            handles,
            names,
            loc="upper center",
            bbox_to_anchor=(0.5, 0.0),
            ncol=min(ncol, len(handles)),
            fontsize="small",
            frameon=False,
        )


def labels(df: pd.DataFrame) -> dict[str, str]:
    """Each deployment's name in legends: its model where every model has one deployment
    (one setting combination each), else the deployment's slug."""
    per_model = df.groupby("model")["deployment"].nunique()
    by_model = bool((per_model <= 1).all())
    pairs = df[["deployment", "model"]].drop_duplicates("deployment")
    return {
        d: (m if by_model else d) for d, m in zip(pairs["deployment"], pairs["model"], strict=True)
    }


def deployments(df: pd.DataFrame) -> dict[str, dict]:
    """What each legend name stands for: deployment, engine, model, GPUs and settings."""
    names = labels(df)
    first = df.drop_duplicates("deployment").set_index("deployment")
    return {
        names[d]: {
            "deployment": d,
            "engine": r["engine"],
            "model": r["model"],
            "gpus": int(r["gpus"]),
            "settings": settings_text(r),
        }
        for d, r in first.iterrows()
    }


def series(df: pd.DataFrame):
    """(name, axis, rows) per deployment and load pattern, repeats averaged, each against
    its pattern's axis (patterns.common.Axis): closed-loop points against clients,
    open-loop points against the request rate. Where a level was repeated, rows also
    hold the half width of each figure's 95 % interval (<figure>_ci_half, NaN for a level
    run once)."""
    names = labels(df)
    for (deployment, name), g in df.groupby(["deployment", "pattern"]):
        axis = patterns.pattern(name).AXIS
        rows = g.groupby(axis.column, as_index=False).mean(numeric_only=True)
        if "search" in g:  # a searched level's part in the search (a search has no repeats)
            rows["search"] = rows[axis.column].map(g.groupby(axis.column)["search"].first())
        if confidence.repeated(g):
            by_level = g.groupby(axis.column)
            for metric in confidence.METRICS:
                half = by_level[metric].agg(lambda v: confidence.interval(v)["half_width"])
                rows[f"{metric}_ci_half"] = rows[axis.column].map(half)
        yield names[deployment] + axis.suffix, axis, rows


def _interval(
    ax, rows: pd.DataFrame, x: str, col: str, values: dict, scale: float = 1.0, **style
) -> None:
    """Error bars of `col`'s 95 % interval on `ax` (its values times `scale`), and its
    ends in `values` (None where a level has no interval); nothing where no level was
    repeated."""
    half_col = f"{col}_ci_half"
    if half_col not in rows:
        return
    mean, half = rows[col], rows[half_col]
    values[f"{col}_ci_low"] = _plain_list(mean - half)
    values[f"{col}_ci_high"] = _plain_list(mean + half)
    shown = half.notna()
    ax.errorbar(
        rows.loc[shown, x],
        mean[shown] * scale,
        yerr=half[shown] * scale,
        fmt="none",
        capsize=3,
        **style,
    )


def _plain_list(values: pd.Series) -> list:
    """A column as a JSON-ready list: None for NaN."""
    return [None if pd.isna(v) else float(v) for v in values]


def _xlabel(df: pd.DataFrame) -> str:
    """The axis labels of the patterns plotted, in the order of patterns.PATTERNS."""
    shown = set(df["pattern"])
    return " / ".join(m.AXIS.label for m in patterns.PATTERNS.values() if m.NAME in shown)


def _log2(ax) -> None:
    ax.set_xscale("log", base=2)
    ax.xaxis.set_major_formatter(FuncFormatter(lambda v, _: f"{v:g}"))  # 4, not 2^2
    ax.grid(True, alpha=0.3)


def throughput(df: pd.DataFrame, out: str) -> dict:
    """Output tokens/s and requests/s against load (clients or rate), per deployment, knee
    marked."""
    data: dict = {}
    fig, (ax_tok, ax_req) = plt.subplots(1, 2, figsize=(10, 4))
    for label, axis, g in series(df):
        x, tok = g[axis.column].tolist(), g["output_token_throughput_tps"].tolist()
        req = g["request_throughput_rps"].tolist()
        k = knee(x, tok)
        data[label] = {
            axis.column: x,
            "output_token_throughput_tps": tok,
            "request_throughput_rps": req,
            axis.knee_key: k,
        }
        (line,) = ax_tok.plot(x, tok, marker="o", label=label)
        ax_req.plot(x, req, marker="o", label=label, color=line.get_color())
        for ax, col in (
            (ax_tok, "output_token_throughput_tps"),
            (ax_req, "request_throughput_rps"),
        ):
            _interval(ax, g, axis.column, col, data[label], ecolor=line.get_color())
        if k is not None:
            ax_tok.axvline(k, linestyle=":", color="grey")
            ax_tok.annotate(f"knee: {k:g} {axis.column}", (k, max(tok)), fontsize="small")
        data[label] |= _mark_search(ax_tok, g, axis.column, line.get_color())
    ax_tok.set(xlabel=_xlabel(df), ylabel="output tokens/s (all clients)")
    ax_req.set(xlabel=_xlabel(df), ylabel="requests/s")
    _log2(ax_tok)
    _log2(ax_req)
    _legend(fig, ax_tok)
    _save(fig, out)
    return data


def _mark_search(ax, g: pd.DataFrame, column: str, color) -> dict:
    """Mark a capacity search's result on the throughput axes: the capacity found (a star)
    and the failing level above it (a cross); their levels, for plot-data.json."""
    if "search" not in g:
        return {}
    marked = {}
    for role, marker, key in (("capacity", "*", "capacity"), ("failed above", "X", "failed_above")):
        rows = g[g["search"] == role]
        if rows.empty:
            continue
        x, y = rows[column].iloc[0], rows["output_token_throughput_tps"].iloc[0]
        ax.plot([x], [y], marker=marker, markersize=14, color=color, linestyle="none")
        if role == "capacity":
            ax.annotate(f"capacity: {x:g} {column}", (x, y), fontsize="small")
        marked[key] = float(x)
    return marked


def latency(df: pd.DataFrame, out: str) -> dict:
    """p50 and p99 of TTFT, ITL and E2E (ms) against load, per deployment."""
    data: dict = {}
    fig, axes = plt.subplots(1, 3, figsize=(14, 4))
    panels = (("ttft", "TTFT"), ("itl", "ITL"), ("e2e", "E2E latency"))
    for ax, (metric, title) in zip(axes, panels, strict=True):
        for i, (label, axis, g) in enumerate(series(df)):
            x = axis.column
            for stat, style in PERCENTILE_STYLES:
                col = f"{metric}_{stat}_s"
                data.setdefault(label, {x: g[x].tolist()})[col] = g[col].tolist()
                name = label if stat == "p50" else "_nolegend_"  # each series named once
                ax.plot(g[x], g[col] * MS, style, color=f"C{i}", marker="o", label=name)
                _interval(ax, g, x, col, data[label], scale=MS, ecolor=f"C{i}")
        ax.set(xlabel=_xlabel(df), ylabel="milliseconds", title=title)
        _log2(ax)
    _legend(fig, axes[0], styles=True)
    _save(fig, out)
    return data


def throughput_latency(df: pd.DataFrame, out: str) -> dict:
    """The trade-off: output tokens/s against p50/p99 TTFT and E2E (ms), one point per load,
    per deployment."""
    data: dict = {}
    fig, axes = plt.subplots(1, 2, figsize=(10, 4))
    for ax, metric in zip(axes, ("ttft", "e2e"), strict=True):
        for i, (label, _, g) in enumerate(series(df)):
            tok = g["output_token_throughput_tps"]
            for stat, style in PERCENTILE_STYLES:
                col = f"{metric}_{stat}_s"
                name = label if stat == "p50" else "_nolegend_"  # each series named once
                ax.plot(g[col] * MS, tok, style, color=f"C{i}", marker="o", label=name)
                values = data.setdefault(label, {"output_token_throughput_tps": tok.tolist()})
                values[col] = g[col].tolist()
        ax.set(xlabel=f"{metric.upper()} ms", ylabel="output tokens/s")
        ax.grid(True, alpha=0.3)
    _legend(fig, axes[0], styles=True)
    _save(fig, out)
    return data


def _error_kinds(df: pd.DataFrame) -> dict[str, list[int]]:
    """Failed requests per error kind, one count per point, from the table's errors cells
    ('timeout=2;http_500=1')."""
    kinds: dict[str, list[int]] = {}
    for i, text in enumerate(df["errors"].fillna("")):
        for part in filter(None, str(text).split(";")):
            kind, count = part.split("=")
            kinds.setdefault(kind, [0] * len(df))[i] = int(count)
    return kinds


def errors(df: pd.DataFrame, out: str) -> dict:
    """Failed requests per point (one bar each, long names readable), stacked by error
    kind; with none, the points at zero and a note."""
    names = labels(df)
    points = [f"{names[d]} {load}" for d, load in zip(df["deployment"], df["load"], strict=True)]
    kinds = _error_kinds(df)
    fig, ax = plt.subplots(figsize=(8, max(3.0, 1.5 + 0.3 * len(df))))
    left = [0] * len(df)
    for kind, counts in sorted(kinds.items()):
        ax.barh(points, counts, left=left, label=kind)
        left = [b + c for b, c in zip(left, counts, strict=True)]
    note = None
    if kinds:
        ax.legend(fontsize="small")
    else:
        note = "no failed requests"
        ax.barh(points, left, edgecolor="grey")  # every point, at zero
        ax.set_xlim(0, 1)
        ax.text(0.5, 0.5, note, transform=ax.transAxes, ha="center", va="center")
    ax.invert_yaxis()  # the table's order, top down
    ax.xaxis.set_major_locator(MaxNLocator(integer=True))
    ax.set(xlabel="failed requests", title="failed requests per point")
    _save(fig, out)
    return {"points": points, "failed": df["failed"].tolist(), "by_kind": kinds, "note": note}


def pareto(df: pd.DataFrame, out: str) -> dict:
    """Output tokens/s per GPU against output tokens/s per user, every point of every
    deployment; the frontier (points no other beats on both) marked, joined and named."""
    names = labels(df)
    pts = front.points(df)
    x, y = pts["per_user_tps"].tolist(), pts["per_gpu_tps"].tolist()
    pts["frontier"] = pd.Series(front.frontier(x, y), index=pts.index, dtype=bool)
    pts["label"] = [names[d] for d in pts["deployment"]]
    fig, ax = plt.subplots(figsize=(8, 5))
    for label, g in pts.groupby("label", sort=False):
        ax.scatter(g["per_user_tps"], g["per_gpu_tps"], label=label, alpha=0.7)
    edge = pts[pts["frontier"]].sort_values("per_user_tps")
    ax.plot(edge["per_user_tps"], edge["per_gpu_tps"], "k--", linewidth=1, label="frontier")
    ax.scatter(edge["per_user_tps"], edge["per_gpu_tps"], s=90, facecolors="none", edgecolors="k")
    for _, r in edge.iterrows():
        ax.annotate(
            f"{r['label']} {r['load']}",
            (r["per_user_tps"], r["per_gpu_tps"]),
            textcoords="offset points",
            xytext=(5, 5),
            fontsize="small",
        )
    ylabel = front.y_label(pts["gpus"])
    ax.set(xlabel="output tokens/s per user (1 / mean TPOT)", ylabel=ylabel)
    ax.margins(0.15)  # room for the frontier's names
    ax.grid(True, alpha=0.3)
    if len(pts):
        _legend(fig, ax)
    else:
        ax.text(0.5, 0.5, "no point with a TPOT", transform=ax.transAxes, ha="center")
    _save(fig, out)
    return {
        "x": "output tokens/s per user (1 / mean TPOT)",
        "y": ylabel,
        "points": pts.to_dict(orient="records"),
    }


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
        ax.step([v * MS for v in values], share, where="post")
        ax.set(xlabel=f"{name[:-2].upper()} ms", ylabel="share", ylim=(0, 1.02))
        ax.grid(True, alpha=0.3)
    fig.suptitle(title)
    _save(fig, out)
    return series


# The panels of a point's time slices: (title, y label, [(slice key, line style, legend)]);
# keys ending in _s are seconds, drawn in milliseconds.
SLICE_PANELS = (
    ("output tokens/s", "tokens/s", [("output_token_throughput_tps", "-", None)]),
    ("requests/s", "successful requests/s", [("request_throughput_rps", "-", None)]),
    ("TTFT", "milliseconds", [("ttft_p50_s", "-", "p50"), ("ttft_p99_s", "--", "p99")]),
    ("E2E latency", "milliseconds", [("e2e_p50_s", "-", "p50"), ("e2e_p99_s", "--", "p99")]),
)


def time_slices(slices: list[dict], out: str, title: str) -> dict:
    """One point over its measurement window (summary.json's slices, loadgen.stats): output
    tokens/s, requests/s, TTFT and E2E p50 and p99 (ms) per slice, each drawn as a step
    across its slice, so warm-up and degradation show; a slice without a finished request
    leaves a gap in the latencies."""
    edges = [s["start_s"] for s in slices] + [slices[-1]["end_s"]] if slices else []
    data: dict = {"start_s": edges[:-1], "end_s": edges[1:]}
    data["requests"] = [s["requests"] for s in slices]
    fig, axes = plt.subplots(1, len(SLICE_PANELS), figsize=(15, 3.5))
    for ax, (panel, ylabel, keys) in zip(axes, SLICE_PANELS, strict=True):
        for key, style, label in keys:
            values = [s[key] for s in slices]
            data[key] = values
            scale = MS if key.endswith("_s") else 1.0
            shown = [math.nan if v is None else v * scale for v in values]
            if shown:  # each value held across its slice: the last one repeated at the end
                ax.step(edges, shown + shown[-1:], style, where="post", color="C0", label=label)
        ax.set(xlabel="seconds into the window", ylabel=ylabel, title=panel)
        ax.set_ylim(bottom=0)
        ax.grid(True, alpha=0.3)
        if len(keys) > 1 and slices:
            ax.legend(fontsize="small")
    if not slices:
        axes[0].text(0.5, 0.5, "no measured request", transform=axes[0].transAxes, ha="center")
    fig.suptitle(title)
    _save(fig, out)
    return data
