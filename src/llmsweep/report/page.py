"""The report page: one self-contained HTML file (images inlined), plus the plotted values.

The page's HTML lives in templates/report.html.j2; this module gathers what it shows."""

from __future__ import annotations

import base64

import pandas as pd
import yaml
from jinja2 import Environment, PackageLoader, StrictUndefined, select_autoescape
from markupsafe import Markup

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
# The run-level plots: keys of build_report's `out`, each a PNG file.
PLOTS = ("throughput", "latency", "throughput_latency", "errors")
FAILED_COLUMNS = ["model", "load", "requests", "failed", "errors"]


def _table(df: pd.DataFrame) -> Markup:
    """A DataFrame as an HTML table, its cells escaped by pandas."""
    html = df.to_html(index=False, float_format=lambda v: f"{v:.4g}", na_rep="-", escape=True)
    return Markup(html)


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


def _windows(df: pd.DataFrame) -> pd.DataFrame:
    """Each point's measurement window, as dates and as a Grafana time range."""
    windows = df[["model", "load", "window_start", "window_end"]].copy()
    windows["grafana range"] = [
        f"from={_ms(a)}&to={_ms(b)}"
        for a, b in zip(df["window_start"], df["window_end"], strict=True)
    ]
    for col in ("window_start", "window_end"):
        windows[col] = pd.to_datetime(windows[col], unit="s").dt.strftime("%F %T")
    return windows


def _load(table_csv: str, metadata_json: str) -> tuple[pd.DataFrame, dict]:
    """The tidy table of points (no errors: an empty string) and the run's metadata."""
    df = pd.read_csv(table_csv, keep_default_na=True)
    df["errors"] = df["errors"].fillna("")
    return df, read_json(metadata_json)


def _plot(df: pd.DataFrame, out: dict) -> dict:
    """Save the run-level plots to their paths in `out`; return the values each plots."""
    return {name: getattr(plots, name)(df, out[name]) for name in PLOTS}


def _page_values(
    df: pd.DataFrame, meta: dict, data: dict, out: dict, point_plots: list[str], run: str
) -> dict:
    """What the page template shows: figures, tables, plots and what ran."""
    saturated = df[df["client_saturated"].fillna(False).astype(bool)]
    servers = [{"model": m, **(s or {})} for m, s in meta["servers"].items()]
    return {
        "run": run,
        "totals": {
            "points": len(df),
            "requests": int(df["requests"].sum()),
            "failed": int(df["failed"].sum()),
        },
        "knees": [_knee_text(m, d) for m, d in data["throughput"].items()],
        "plots": {name: _png(out[name]) for name in PLOTS},
        "point_plots": [_png(p) for p in point_plots],
        "points": df[list(COLUMNS)].rename(columns=COLUMNS),
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
    table_csv: str, metadata_json: str, point_plots: list[str], out: dict, run: str
) -> dict:
    """Write the run-level plots, the page and the plotted values; return those values."""
    df, meta = _load(table_csv, metadata_json)
    data = _plot(df, out)
    write_json_atomic(out["data"], data)
    _write(out["page"], _render(_page_values(df, meta, data, out, point_plots, run)))
    return data
