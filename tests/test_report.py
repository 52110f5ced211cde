"""The report of a real run: every plot and table, values that match the tidy table,
the page rendered in headless Chromium, snakemake --report, and run comparison."""

import json
import shutil
import subprocess
import sys

import pandas as pd
import pytest

from helpers import chromium, collect_errors, snakemake, write_config
from llmsweep.report.knee import knee
from llmsweep.util import read_json

pytestmark = pytest.mark.e2e
CLIENTS = (1, 2, 3)


@pytest.fixture(scope="module")
def run_dir(tmp_path_factory):
    workdir = tmp_path_factory.mktemp("report")
    write_config(workdir, sweep={"clients": list(CLIENTS), "requests_per_client": 2})
    proc = snakemake(workdir)
    assert proc.returncode == 0, proc.stdout + proc.stderr
    return workdir / "results" / "t"


def test_every_plot_and_table_for_every_point(run_dir):
    report = run_dir / "report"
    for name in (
        "throughput.png",
        "latency.png",
        "throughput_latency.png",
        "errors.png",
        "index.html",
        "points.csv",
        "points.parquet",
        "metadata.json",
    ):
        assert (report / name).stat().st_size > 0, name
    for c in CLIENTS:
        assert (report / "points" / "gemma3-270m" / f"c{c}" / "distributions.png").exists()
    df = pd.read_csv(report / "points.csv")
    assert sorted(df["clients"]) == list(CLIENTS)
    pq = pd.read_parquet(report / "points.parquet")
    # CSV reads an empty string back as a missing value; Parquet keeps it.
    pd.testing.assert_frame_equal(
        df.astype(object).fillna(""), pq.astype(object).fillna(""), check_dtype=False
    )
    page = (report / "index.html").read_text()
    assert page.count("data:image/png;base64,") == 4 + len(CLIENTS)
    assert "Knee" in page and "from=" in page and "No request failed." in page


def test_plotted_values_equal_the_tidy_table(run_dir):
    df = pd.read_csv(run_dir / "report" / "points.csv").set_index("clients")
    data = read_json(run_dir / "report" / "plot-data.json")
    thr = data["throughput"]["gemma3-270m"]
    for c, tok in zip(thr["clients"], thr["output_token_throughput_tps"], strict=True):
        assert tok == pytest.approx(df.loc[c, "output_token_throughput_tps"])
    assert thr["knee_clients"] == knee(thr["clients"], thr["output_token_throughput_tps"])
    lat = data["latency"]["gemma3-270m"]
    for c, ttft in zip(lat["clients"], lat["ttft_p99_s"], strict=True):
        assert ttft == pytest.approx(df.loc[c, "ttft_p99_s"])
    # The table itself comes from summary.json.
    summary = read_json(run_dir / "bench" / "gemma3-270m" / "c2" / "summary.json")
    assert df.loc[2, "e2e_p50_s"] == pytest.approx(summary["e2e_s"]["p50"])


def test_metadata_says_what_ran(run_dir):
    meta = read_json(run_dir / "report" / "metadata.json")
    assert meta["config"]["sweep"]["clients"] == list(CLIENTS)
    server = meta["servers"]["gemma3-270m"]
    assert server["engine_version"]  # llama.cpp's build, from /props
    # From the GPU exporter beside the server: none on this machine, and why.
    assert server["gpu"]["gpus"] == 0 and server["gpu"]["error"].startswith("NVML")
    roles = {s["role"]: s for s in meta["services"]}
    assert set(roles) == {"pushgateway", "prometheus", "llm_server", "client"}
    llm = roles["llm_server"]
    assert llm["instances_started"] == 1 and llm["times_reused"] == len(CLIENTS) - 1
    assert meta["started_at"] < meta["finished_at"]


def test_page_renders_in_headless_chromium(run_dir, artifacts):
    from playwright.sync_api import sync_playwright

    errors = []
    with sync_playwright() as p:
        browser = chromium(p)
        page = browser.new_page(viewport={"width": 1400, "height": 1000})
        collect_errors(page, errors)
        page.goto((run_dir / "report" / "index.html").as_uri())
        images = page.evaluate(
            "Array.from(document.images).map(i => [i.complete, i.naturalWidth, i.alt])"
        )
        shot = artifacts / "report-page.png"
        page.screenshot(path=str(shot), full_page=True)
        browser.close()
    assert len(images) == 4 + len(CLIENTS)
    assert all(done and width > 100 for done, width, _ in images), images
    assert not errors, errors
    assert shot.stat().st_size > 10000


def test_snakemake_report_registers_every_item(run_dir, tmp_path):
    workdir = run_dir.parent.parent
    out = workdir / "snakemake-report.zip"
    proc = snakemake(workdir, "--report", str(out))
    assert proc.returncode == 0, proc.stdout + proc.stderr
    listing = subprocess.run(
        ["python3", "-m", "zipfile", "-l", str(out)], capture_output=True, text=True, check=True
    ).stdout
    for name in (
        "throughput.png",
        "latency.png",
        "throughput_latency.png",
        "errors.png",
        "points.csv",
        "metadata.json",
        "index.html",
    ):
        assert name in listing, name
    assert listing.count("distributions.png") == len(CLIENTS)


def cli(*args):
    return subprocess.run(
        [sys.executable, "-m", "llmsweep.cli", *args], capture_output=True, text=True
    )


def test_compare_with_itself_reports_no_change(run_dir):
    proc = cli("--results", str(run_dir.parent), "compare", "t", "t")
    assert proc.returncode == 0, proc.stderr
    assert "no change in any figure" in proc.stdout and "0 regression(s)" in proc.stdout


def test_compare_reports_exactly_the_altered_figures(run_dir, tmp_path):
    other = tmp_path / "results"
    shutil.copytree(run_dir, other / "slower", ignore=shutil.ignore_patterns("prometheus-data"))
    shutil.copytree(run_dir / "bench", other / "t" / "bench")
    path = other / "slower" / "bench" / "gemma3-270m" / "c2" / "summary.json"
    summary = json.loads(path.read_text())
    before_tps = summary["output_token_throughput_tps"]
    before_ttft = summary["ttft_s"]["p99"]
    summary["output_token_throughput_tps"] = before_tps * 0.7  # 30 % slower
    summary["ttft_s"]["p99"] = before_ttft * 1.05  # 5 % worse: under the 10 % threshold
    path.write_text(json.dumps(summary))
    proc = cli("--results", str(other), "compare", "t", "slower")
    assert proc.returncode == 1, proc.stdout + proc.stderr
    changes = [line for line in proc.stdout.splitlines() if line.startswith("gemma3-270m")]
    assert len(changes) == 2, proc.stdout
    assert any(
        c.startswith("gemma3-270m c2 output_token_throughput_tps")
        and c.endswith("(-30.0%)  REGRESSION")
        for c in changes
    ), changes
    assert any(
        c.startswith("gemma3-270m c2 ttft_p99_s") and c.endswith("(+5.0%)") for c in changes
    ), changes
    assert "1 regression(s)" in proc.stdout
    assert (other / "slower" / "report" / "compare" / "t-vs-slower.html").exists()


def test_a_run_with_failed_requests_still_reports_them(tmp_path):
    # A 50 ms limit per request: the server stays healthy, requests time out.
    write_config(
        tmp_path,
        sweep={"clients": [2], "requests_per_client": 2},
        workload={"max_tokens": 200, "request_timeout_s": 0.05},
    )
    proc = snakemake(tmp_path)
    assert proc.returncode == 0, proc.stdout + proc.stderr
    report = tmp_path / "results" / "t" / "report"
    df = pd.read_csv(report / "points.csv")
    assert df.loc[0, "failed"] == 4 and "timeout=4" in df.loc[0, "errors"]
    page = (report / "index.html").read_text()
    assert "timeout=4" in page and 'class="fail"' in page
    data = read_json(report / "plot-data.json")
    assert data["errors"]["by_kind"] == {"timeout": [4]}


def test_open_loop_points_get_their_own_series_and_knee(run_dir, tmp_path):
    """A sweep of rates beside client counts: the open-loop rows are plotted against their
    rate and the page states their knee in requests/s."""
    from llmsweep.report.page import build_report

    df = pd.read_csv(run_dir / "report" / "points.csv")
    rates = df.copy()
    rates["pattern"], rates["rate"], rates["load"] = "open", [1.0, 2.0, 4.0], ["r1", "r2", "r4"]
    rates["output_token_throughput_tps"] = [10.0, 20.0, 20.5]  # flat after 2 requests/s
    table = tmp_path / "points.csv"
    pd.concat([df, rates]).to_csv(table, index=False)
    names = ("throughput", "latency", "throughput_latency", "errors")
    out = {n: str(tmp_path / f"{n}.png") for n in names}
    out |= {"data": str(tmp_path / "data.json"), "page": str(tmp_path / "index.html")}
    data = build_report(str(table), str(run_dir / "report" / "metadata.json"), [], out, "t")
    series = data["throughput"]["gemma3-270m (open loop)"]
    assert series["rate"] == [1.0, 2.0, 4.0] and series["knee_rate"] == 2.0
    assert "gemma3-270m (open loop): 2 requests/s" in (tmp_path / "index.html").read_text()
