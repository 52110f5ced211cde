"""Compare two runs point by point: what got faster or slower, and by how much.

Points match by deployment and load; a table from before deployments (no deployment
column) matches by model and load. Summaries without a deployment name their model's slug
as one (report.deployments), so an old run still matches a new run of a plain model list."""

from __future__ import annotations

import html
from pathlib import Path

import pandas as pd

from llmsweep.paths import RunPaths
from llmsweep.report.table import table

# Figure -> whether higher is better.
METRICS = {
    "output_token_throughput_tps": True,
    "request_throughput_rps": True,
    "ttft_p50_s": False,
    "ttft_p99_s": False,
    "itl_p50_s": False,
    "itl_p99_s": False,
    "tpot_p50_s": False,
    "e2e_p50_s": False,
    "e2e_p99_s": False,
    "failed": False,
}
KEYS = ["deployment", "load"]
OLD_KEYS = ["model", "load"]


def keys(a: pd.DataFrame, b: pd.DataFrame) -> list[str]:
    """The columns that identify a point in both tables."""
    named = all("deployment" in t.columns and t["deployment"].notna().all() for t in (a, b))
    return KEYS if named else OLD_KEYS


def load_run(run_dir: Path) -> pd.DataFrame:
    paths = [str(p) for p in RunPaths.of_run_dir(run_dir).summaries()]
    if not paths:
        raise FileNotFoundError(f"no finished points under {run_dir}")
    return table(paths)


def compare(a: pd.DataFrame, b: pd.DataFrame, threshold: float) -> pd.DataFrame:
    """One row per point and figure that changed; `verdict` flags changes beyond threshold.
    The first two columns name the point (keys())."""
    on = keys(a, b)
    joined = a.merge(b, on=on, suffixes=("_a", "_b"))
    rows = []
    for _, r in joined.iterrows():
        for metric, higher_better in METRICS.items():
            va, vb = r[f"{metric}_a"], r[f"{metric}_b"]
            if pd.isna(va) or pd.isna(vb) or va == vb:
                continue
            change = (vb - va) / abs(va) if va else float("inf")
            worse = (vb < va) if higher_better else (vb > va)
            verdict = ""
            if abs(change) > threshold:
                verdict = "REGRESSION" if worse else "improvement"
            point = {k: r[k] for k in on}
            rows.append(
                {**point, "metric": metric, "a": va, "b": vb, "change": change, "verdict": verdict}
            )
    return pd.DataFrame(rows, columns=on + ["metric", "a", "b", "change", "verdict"])


def unmatched(a: pd.DataFrame, b: pd.DataFrame) -> tuple[list, list]:
    on = keys(a, b)
    ka = set(map(tuple, a[on].values.tolist()))
    kb = set(map(tuple, b[on].values.tolist()))
    return sorted(ka - kb), sorted(kb - ka)


def text_summary(
    name_a: str, name_b: str, diff: pd.DataFrame, only: tuple, threshold: float
) -> str:
    lines = [f"llmsweep compare {name_a} -> {name_b} (flag beyond {threshold:.0%})"]
    if diff.empty:
        lines.append("no change in any figure of any common point")
    for _, r in diff.iterrows():
        flag = f"  {r['verdict']}" if r["verdict"] else ""
        lines.append(
            f"{r.iloc[0]} {r['load']} {r['metric']}: "
            f"{r['a']:.6g} -> {r['b']:.6g} ({r['change']:+.1%}){flag}"
        )
    for label, keys in (("only in " + name_a, only[0]), ("only in " + name_b, only[1])):
        for k in keys:
            lines.append(f"{label}: {k[0]} {k[1]}")
    regressions = int((diff["verdict"] == "REGRESSION").sum()) if not diff.empty else 0
    lines.append(f"{regressions} regression(s)")
    return "\n".join(lines) + "\n"


def html_summary(name_a: str, name_b: str, diff: pd.DataFrame, text: str) -> str:
    styled = diff.copy()
    styled["change"] = styled["change"].map(lambda c: f"{c:+.1%}")
    table_html = styled.to_html(index=False, float_format=lambda v: f"{v:.6g}", escape=True)
    table_html = table_html.replace("<td>REGRESSION</td>", '<td class="bad">REGRESSION</td>')
    return f"""<!doctype html><html lang="en"><head><meta charset="utf-8">
<title>llmsweep compare {html.escape(name_a)} -> {html.escape(name_b)}</title>
<style>body{{font-family:sans-serif;margin:2em}} table{{border-collapse:collapse}}
td,th{{border:1px solid #ccc;padding:3px 7px}} .bad{{color:#fff;background:#b00}}</style>
</head><body><h1>{html.escape(name_a)} &rarr; {html.escape(name_b)}</h1>
{table_html}<pre>{html.escape(text)}</pre></body></html>
"""


def run_compare(
    run_a: Path, run_b: Path, threshold: float, out_txt: Path, out_html: Path
) -> tuple[str, int]:
    """Write the text and HTML summaries; return the text and the number of regressions."""
    a, b = load_run(run_a), load_run(run_b)
    diff = compare(a, b, threshold)
    text = text_summary(run_a.name, run_b.name, diff, unmatched(a, b), threshold)
    out_txt.parent.mkdir(parents=True, exist_ok=True)
    out_txt.write_text(text)
    out_html.write_text(html_summary(run_a.name, run_b.name, diff, text))
    regressions = int((diff["verdict"] == "REGRESSION").sum()) if not diff.empty else 0
    return text, regressions
