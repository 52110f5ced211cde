"""The report page: one self-contained HTML file (images inlined), plus the plotted values.

The page's HTML lives in templates/report.html.j2; this module gathers what it shows."""

from __future__ import annotations

import base64

import pandas as pd
import yaml
from jinja2 import Environment, PackageLoader, StrictUndefined, select_autoescape
from markupsafe import Markup

from llmsweep.loadgen import patterns
from llmsweep.report import confidence, deployments, plots
from llmsweep.util import read_json, write_json_atomic

# The points table on the page: the key figures, latencies in milliseconds (the table's
# columns in seconds, scaled by _points); the full table is points.csv.
COLUMNS = {
    "deployment": "deployment",
    "load": "load",
    "successful": "ok",
    "failed": "failed",
    "output_token_throughput_tps": "output tok/s",
    "request_throughput_rps": "req/s",
    "ttft_p50_s": "TTFT p50 ms",
    "ttft_p99_s": "TTFT p99 ms",
    "itl_p50_s": "ITL p50 ms",
    "itl_p99_s": "ITL p99 ms",
    "tpot_p50_s": "TPOT p50 ms",
    "e2e_p50_s": "E2E p50 ms",
    "e2e_p99_s": "E2E p99 ms",
    "goodput_rps": "goodput req/s",
    "client_saturated": "client saturated",
}
# The intervals table on the page, where points were repeated: intervals.csv's figures and
# their headers, each cell the mean ± the half width of its 95 % interval, latencies in ms.
INTERVALS = {
    "output_token_throughput_tps": "output tok/s",
    "request_throughput_rps": "req/s",
    **{
        f"{m}_p{q}_s": f"{m.upper()} p{q} ms"
        for m in ("ttft", "itl", "tpot", "e2e")
        for q in (50, 90, 99)
    },
}
# The per-turn table of multi-turn points: turns.csv's columns and their headers, latencies
# in milliseconds.
TURNS = {
    "deployment": "deployment",
    "load": "load",
    "turn": "turn",
    "successful": "ok",
    "failed": "failed",
    "ttft_p50_s": "TTFT p50 ms",
    "ttft_mean_s": "TTFT mean ms",
    "ttft_p50_vs_turn1": "TTFT p50 / turn 1",
    "input_tokens_mean": "input tok mean",
    "cached_tokens_mean": "cached tok mean",
    "cached_share": "cached share",
}
# The GPU-time table: deployments.csv's columns and their headers.
GPU_TIME = {
    "deployment": "deployment",
    "gpus": "GPUs",
    "sessions": "server starts",
    "wall_s": "server wall s",
    "startup_s": "start-up s",
    "in_points_s": "in points s",
    "idle_s": "idle s",
    "share_in_points": "share in points",
    "server_hours": "server-hours",
    "gpu_hours": "GPU-hours",
}
# The run-level plots: keys of build_report's `out`, each a PNG file.
PLOTS = ("throughput", "latency", "throughput_latency", "pareto", "errors")
FAILED_COLUMNS = ["deployment", "load", "requests", "failed", "errors"]


def _table(df: pd.DataFrame) -> Markup:
    """A DataFrame as an HTML table, its cells escaped by pandas, in a box that scrolls
    sideways when the table is wider than the page."""
    html = df.to_html(index=False, float_format=lambda v: f"{v:.4g}", na_rep="-", escape=True)
    return Markup('<div class="table-box">') + Markup(html) + Markup("</div>")


_TEMPLATES = Environment(
    loader=PackageLoader("llmsweep.report", "templates"),
    autoescape=select_autoescape(["html.j2"]),
    undefined=StrictUndefined,
    trim_blocks=True,
    lstrip_blocks=True,
    keep_trailing_newline=True,
)
_TEMPLATES.filters["table"] = _table


def _png(path: str) -> str:
    """A PNG file as base64, for a data: URL."""
    with open(path, "rb") as f:
        return base64.b64encode(f.read()).decode()


def _ms(seconds: float) -> int:
    return int(seconds * 1000)


def _knee_text(name: str, d: dict) -> str:
    """'model: N clients' (closed loop) or 'model (open loop): R requests/s', for a series
    of plots.throughput's values; the knee is where more load stops adding throughput."""
    axis = next(m.AXIS for m in patterns.PATTERNS.values() if m.AXIS.knee_key in d)
    k = d[axis.knee_key]
    text = f"{k:g} {axis.knee_unit}" if k else "not reached in this sweep"
    return f"{name}: {text}"


def _points(df: pd.DataFrame) -> pd.DataFrame:
    """The page's points table: COLUMNS, latencies in milliseconds."""
    shown = df[list(COLUMNS)].copy()
    for col in (c for c in COLUMNS if c.endswith("_s")):
        shown[col] = shown[col] * 1000
    if "lateness_p99_s" in df and df["lateness_p99_s"].notna().any():  # trace replays
        shown["send lateness p99 ms"] = df["lateness_p99_s"] * 1000
    if "search" in df and (df["search"] != "").any():  # a point's part in a capacity search
        shown.insert(shown.columns.get_loc("load") + 1, "search", df["search"])
    return shown.rename(columns=COLUMNS)


def _plus_minus(mean: float, half: float) -> str:
    """'12.3 ± 0.45'; the mean alone where there is no interval."""
    if pd.isna(mean):
        return "-"
    return f"{mean:.4g}" if pd.isna(half) else f"{mean:.4g} ± {half:.2g}"


def _intervals(df: pd.DataFrame) -> pd.DataFrame | None:
    """The page's intervals table: each load level's repeats, and INTERVALS as mean ± half
    width; None where no level was repeated (intervals.csv has every figure)."""
    if not confidence.repeated(df):
        return None
    levels = confidence.table(df)
    shown = levels[["deployment", "level", "repeats"]].copy()
    for col, header in INTERVALS.items():
        scale = 1000 if col.endswith("_s") else 1
        means, halves = levels[f"{col}_mean"] * scale, levels[f"{col}_ci_half"] * scale
        shown[header] = [_plus_minus(m, h) for m, h in zip(means, halves, strict=True)]
    return shown


def _turns(path: str | None) -> pd.DataFrame | None:
    """The page's per-turn table of multi-turn points (TURNS, from turns.csv); None where
    the run has none."""
    if path is None:
        return None
    turns = pd.read_csv(path)
    if turns.empty:
        return None
    turns["failed"] = turns["requests"] - turns["successful"]
    shown = turns[list(TURNS)].copy()
    for col in (c for c in TURNS if c.endswith("_s")):
        shown[col] = shown[col] * 1000
    return shown.rename(columns=TURNS)


def _deployments(deps: pd.DataFrame, table: pd.DataFrame) -> pd.DataFrame:
    """What each deployment is: engine, model, GPUs, settings, points, and its name in the
    plots where that is not its slug (its model)."""
    names = plots.labels(table)
    shown = pd.DataFrame(
        {
            "deployment": deps["deployment"],
            "in plots": [names.get(d, d) for d in deps["deployment"]],
            "engine": deps["engine"],
            "model": deps["model"],
            "GPUs": deps["gpus"],
            "settings": [deployments.settings_text(r) for _, r in deps.iterrows()],
            "points": deps["loads"],
        }
    )
    if (shown["in plots"] == shown["deployment"]).all():
        shown = shown.drop(columns=["in plots"])
    return shown


def _searches(deps: pd.DataFrame) -> pd.DataFrame | None:
    """The page's capacity search table: per searched deployment, what was raised, the
    capacity found, the failing level above it, the points run and why it stopped; None
    when no deployment searched."""
    if "search_level" not in deps or deps["search_level"].isna().all():
        return None
    done = deps[deps["search_level"].notna()]
    return pd.DataFrame(
        {
            "deployment": done["deployment"],
            "load raised": done["search_level"],
            "capacity": done["search_capacity"],
            "failed above": done["search_failed_above"],
            "points": done["search_points"],
            "why it stopped": done["search_why"],
        }
    )


def _windows(df: pd.DataFrame) -> pd.DataFrame:
    """Each point's measurement window, as dates and as a Grafana time range."""
    windows = df[["deployment", "load", "window_start", "window_end"]].copy()
    windows["grafana range"] = [
        f"from={_ms(a)}&to={_ms(b)}"
        for a, b in zip(df["window_start"], df["window_end"], strict=True)
    ]
    for col in ("window_start", "window_end"):
        windows[col] = pd.to_datetime(windows[col], unit="s").dt.strftime("%F %T")
    return windows


def _load(table_csv: str, deployments_csv: str, metadata_json: str):
    """The tidy table of points (no errors: an empty string), the deployments' table and the
    run's metadata."""
    df = pd.read_csv(table_csv, keep_default_na=True, dtype={"errors": str, "search": str})
    df["errors"] = df["errors"].fillna("")
    if "search" in df:  # tables from before capacity searches have none
        df["search"] = df["search"].fillna("")
    return df, pd.read_csv(deployments_csv), read_json(metadata_json)


def _plot(df: pd.DataFrame, out: dict) -> dict:
    """Save the run-level plots to their paths in `out`; return the values each plots, and
    what each series' name stands for."""
    data = {name: getattr(plots, name)(df, out[name]) for name in PLOTS}
    return data | {"deployments": plots.deployments(df)}


def _page_values(
    tables: tuple[pd.DataFrame, pd.DataFrame],
    meta: dict,
    data: dict,
    out: dict,
    point_plots: tuple[list[str], list[str]],
    run: str,
    turns: pd.DataFrame | None = None,
) -> dict:
    """What the page template shows: figures, tables, plots and what ran. `point_plots`:
    the points' distributions plots and their time slices plots; `turns` the per-turn
    table of multi-turn points (_turns)."""
    df, deps = tables
    distributions, slices = point_plots
    saturated = df[df["client_saturated"].fillna(False).astype(bool)]
    servers = [{"deployment": d, **(s or {})} for d, s in meta["servers"].items()]
    return {
        "run": run,
        "totals": {
            "points": len(df),
            "deployments": len(deps),
            "requests": int(df["requests"].sum()),
            "failed": int(df["failed"].sum()),
        },
        "gpu_time": meta["gpu_time"],
        "deployments": _deployments(deps, df),
        "gpu_table": deps[list(GPU_TIME)].rename(columns=GPU_TIME),
        "knees": [_knee_text(m, d) for m, d in data["throughput"].items()],
        "plots": {name: _png(out[name]) for name in PLOTS},
        "point_plots": [_png(p) for p in distributions],
        "slice_plots": [_png(p) for p in slices],
        "points": _points(df),
        "intervals": _intervals(df),
        "searches": _searches(deps),
        "turns": turns,
        "saturated": list(saturated["load"]),
        "failed": df[df["failed"] > 0][FAILED_COLUMNS],
        "windows": _windows(df),
        "servers": pd.DataFrame(servers),
        "services": pd.DataFrame(meta["services"]),
        "config": yaml.safe_dump(meta["config"], sort_keys=False),
        "monitoring": meta.get("monitoring", "on"),
    }


def _render(values: dict) -> str:
    """The page's HTML from its template."""
    return _TEMPLATES.get_template("report.html.j2").render(values)


def _write(path: str, page: str) -> None:
    """Write the page to its file."""
    with open(path, "w") as f:
        f.write(page)


def build_report(
    inputs: dict, point_plots: list[str], out: dict, run: str, slice_plots: list[str] = ()
) -> dict:
    """Write the run-level plots, the page and the plotted values; return those values.

    `inputs` names the points_table rule's files: table (points.csv), deployments
    (deployments.csv), metadata (metadata.json) and, with multi-turn points, turns
    (turns.csv). `point_plots` and `slice_plots` are the point_plot rule's distributions
    and time slices plots, shown as they are."""
    df, deps, meta = _load(inputs["table"], inputs["deployments"], inputs["metadata"])
    data = _plot(df, out)
    write_json_atomic(out["data"], data)
    plots_of_points = (list(point_plots), list(slice_plots))
    turns = _turns(inputs.get("turns"))
    values = _page_values((df, deps), meta, data, out, plots_of_points, run, turns)
    _write(out["page"], _render(values))
    return data
