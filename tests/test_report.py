"""The report. Of a real run (e2e): every plot and table, values that match the tidy table,
the page rendered in headless Chromium, snakemake --report, and run comparison. Of a
synthetic run of three deployments (summaries and deployment records written here): the
deployments' GPU time, the Pareto frontier, old summaries, the errors plot without
failures, milliseconds on the page, and the page's tables inside the browser's width. Of
a synthetic run with repeats: each level's mean and 95 % interval in intervals.csv, the
plots and the page; and each point's time slices plot."""

import json
import math
import shutil
import subprocess
import sys

import numpy as np
import pandas as pd
import pytest

from helpers import chromium, collect_errors, snakemake, write_config
from llmsweep.loadgen.stats import summarize
from llmsweep.paths import RunPaths, model_slug
from llmsweep.report import confidence, deployments, metadata, plots
from llmsweep.report.compare import compare
from llmsweep.report.knee import knee
from llmsweep.report.page import PLOTS, build_report
from llmsweep.report.pareto import frontier
from llmsweep.report.table import table, write_table
from llmsweep.util import read_json, write_json_atomic

CLIENTS = (1, 2, 3)
# The run-level plots on the page (throughput, latency, throughput_latency, pareto, errors).
RUN_PLOTS = 5
e2e = pytest.mark.e2e


@pytest.fixture(scope="module")
def run_dir(tmp_path_factory):
    workdir = tmp_path_factory.mktemp("report")
    write_config(workdir, sweep={"clients": list(CLIENTS), "requests_per_client": 2})
    proc = snakemake(workdir)
    assert proc.returncode == 0, proc.stdout + proc.stderr
    return workdir / "results" / "t"


@e2e
def test_every_plot_and_table_for_every_point(run_dir):
    report = run_dir / "report"
    for name in (
        "throughput.png",
        "latency.png",
        "throughput_latency.png",
        "pareto.png",
        "errors.png",
        "index.html",
        "points.csv",
        "points.parquet",
        "deployments.csv",
        "metadata.json",
    ):
        assert (report / name).stat().st_size > 0, name
    for c in CLIENTS:
        assert (report / "points" / "gemma3-270m" / f"c{c}" / "distributions.png").exists()
        assert (report / "points" / "gemma3-270m" / f"c{c}" / "slices.png").exists()
    assert not (report / "intervals.csv").exists()  # no repeats, no intervals
    df = pd.read_csv(report / "points.csv")
    assert sorted(df["clients"]) == list(CLIENTS)
    pq = pd.read_parquet(report / "points.parquet")
    # CSV reads an empty string back as a missing value; Parquet keeps it.
    pd.testing.assert_frame_equal(
        df.astype(object).fillna(""), pq.astype(object).fillna(""), check_dtype=False
    )
    page = (report / "index.html").read_text()
    # Per point: its distributions and its time slices.
    assert page.count("data:image/png;base64,") == RUN_PLOTS + 2 * len(CLIENTS)
    assert "How sure" not in page and "Over time, per point" in page
    assert "Knee" in page and "from=" in page and "No request failed." in page


@e2e
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
    # The config's slice length cuts every summary's window.
    assert summary["slice_s"] == 10 and summary["slices"]
    assert sum(s["requests"] for s in summary["slices"]) == summary["requests"]


@e2e
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
    # One server for the deployment, acquired once for all its points.
    assert llm["instances_started"] == 1 and llm["times_reused"] == 0
    assert meta["started_at"] < meta["finished_at"]
    deployments = pd.read_csv(run_dir / "report" / "deployments.csv")
    assert list(deployments["deployment"]) == ["gemma3-270m"]
    assert deployments.loc[0, "gpus"] == 0 and deployments.loc[0, "gpu_hours"] == 0
    assert 0 < deployments.loc[0, "share_in_points"] <= 1
    assert meta["gpu_time"]["server_hours"] == pytest.approx(deployments["server_hours"].sum())


@e2e
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
    assert len(images) == RUN_PLOTS + 2 * len(CLIENTS)
    assert all(done and width > 100 for done, width, _ in images), images
    assert not errors, errors
    assert shot.stat().st_size > 10000


@e2e
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
        "pareto.png",
        "errors.png",
        "points.csv",
        "deployments.csv",
        "metadata.json",
        "index.html",
    ):
        assert name in listing, name
    assert listing.count("distributions.png") == len(CLIENTS)
    assert listing.count("slices.png") == len(CLIENTS)


def cli(*args):
    return subprocess.run(
        [sys.executable, "-m", "llmsweep.cli", *args], capture_output=True, text=True
    )


@e2e
def test_compare_with_itself_reports_no_change(run_dir):
    proc = cli("--results", str(run_dir.parent), "compare", "t", "t")
    assert proc.returncode == 0, proc.stderr
    assert "no change in any figure" in proc.stdout and "0 regression(s)" in proc.stdout


@e2e
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


@e2e
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


@e2e
def test_open_loop_points_get_their_own_series_and_knee(run_dir, tmp_path):
    """A sweep of rates beside client counts: the open-loop rows are plotted against their
    rate and the page states their knee in requests/s."""
    df = pd.read_csv(run_dir / "report" / "points.csv")
    rates = df.copy()
    rates["pattern"], rates["rate"], rates["load"] = "open", [1.0, 2.0, 4.0], ["r1", "r2", "r4"]
    rates["output_token_throughput_tps"] = [10.0, 20.0, 20.5]  # flat after 2 requests/s
    table = tmp_path / "points.csv"
    pd.concat([df, rates]).to_csv(table, index=False)
    out = {n: str(tmp_path / f"{n}.png") for n in PLOTS}
    out |= {"data": str(tmp_path / "data.json"), "page": str(tmp_path / "index.html")}
    report = run_dir / "report"
    inputs = {
        "table": str(table),
        "deployments": str(report / "deployments.csv"),
        "metadata": str(report / "metadata.json"),
    }
    data = build_report(inputs, [], out, "t")
    series = data["throughput"]["gemma3-270m (open loop)"]
    assert series["rate"] == [1.0, 2.0, 4.0] and series["knee_rate"] == 2.0
    assert "gemma3-270m (open loop): 2 requests/s" in (tmp_path / "index.html").read_text()


# A synthetic run: three deployments of two points each, every request of a point sent at
# once, 11 output tokens each, TTFT 0.1 s, then one token every `tpot` seconds. So a point's
# window is its E2E (0.1 + 10 tpot), its output tokens/s clients * 11 / E2E, and its output
# tokens/s per user 1 / tpot.
TOKENS, TTFT = 11, 0.1
GEMMA, QWEN = "gemma3-270m", "Qwen/Qwen3-0.6B"
DEPLOYMENTS = {
    "gemma3-270m_parallel-1": {
        "engine": "llama_cpp",
        "model": GEMMA,
        "gpus": 0,
        "settings": {"parallel": 1, "ctx_size": 4096},
        "tpot": {"c1": 0.010, "c2": 0.020},
        # started, ready, stopped; each point's (started, finished)
        "sessions": [((1000, 1010, 1100), {"c1": (1012, 1032), "c2": (1035, 1075)})],
    },
    "gemma3-270m_parallel-4": {
        "engine": "llama_cpp",
        "model": GEMMA,
        "gpus": 0,
        "settings": {"parallel": 4, "ctx_size": 4096},
        "tpot": {"c1": 0.012, "c2": 0.015},
        # resumed: the server was started twice
        "sessions": [
            ((2000, 2020, 2050), {"c1": (2025, 2045)}),
            ((3000, 3010, 3040), {"c2": (3012, 3032)}),
        ],
    },
    "qwen3-0.6b_tp-2": {
        "engine": "vllm",
        "model": QWEN,
        "gpus": 2,
        "settings": {"max_num_seqs": 64, "tensor_parallel_size": 2},
        "tpot": {"c1": 0.005, "c2": 0.008},
        "sessions": [((0, 600, 4200), {"c1": (700, 1600), "c2": (1700, 3400)})],
    },
}
# (per user, per GPU) of each point, by hand: per GPU is per server for the CPU servers.
#   parallel-1 c1 (100, 55)   c2 (50, 73.3)    parallel-4 c1 (83.3, 50)   c2 (66.7, 88)
#   tp-2       c1 (200, 36.7) c2 (125, 61.1)
# parallel-1 c1 is beaten on both by tp-2 c2, parallel-1 c2 by parallel-4 c2, parallel-4 c1
# by parallel-1 c1.
FRONTIER = {("qwen3-0.6b_tp-2", "c1"), ("qwen3-0.6b_tp-2", "c2"), ("gemma3-270m_parallel-4", "c2")}


def synthetic_records(clients: int, tpot: float, t0: float = 100.0) -> list[dict]:
    e2e = TTFT + (TOKENS - 1) * tpot
    record = {
        "start": t0,
        "ok": True,
        "error_kind": None,
        "ttft_s": TTFT,
        "tpot_s": tpot,
        "e2e_s": e2e,
        "itl_s": [tpot] * (TOKENS - 1),
        "output_tokens": TOKENS,
        "input_tokens": 20,
        "output_tokens_source": "usage",
    }
    return [dict(record) for _ in range(clients)]


def synthetic_summary(model: str, load: str, tpot: float, **point_fields) -> dict:
    """A summary as the benchmark writes it (stats.summarize of the records, then the
    point section); `point_fields` adds deployment, settings, gpus or server."""
    clients = int(load[1:])
    summary = summarize(synthetic_records(clients, tpot))
    summary["point"] = {
        "run": "syn",
        "model": model,
        "engine": "llama_cpp",
        "load": load,
        "pattern": "closed",
        "clients": clients,
        "rate": None,
        "repeat": 0,
        "requests_per_client": 1,
        "peak_in_flight": clients,
        "client_service": {"url": "http://c", "status": "started", "instance": "i"},
        "llm_server": {"url": "http://s", "status": "started", "instance": "i", "job_id": None},
        "started_at": 100.0,
        "finished_at": 101.0,
        **point_fields,
    }
    summary["client"] = {"cpu_share": 0.1, "loop_lag_p99_s": 0.001, "saturated": False}
    return summary


def deployment_record(slug: str, d: dict) -> dict:
    """The deployment record of one of DEPLOYMENTS, as the workflow writes it."""
    sessions = [
        {
            "server": {
                "key": f"llm_server.{slug}",
                "instance": f"i{i}",
                "job_id": None,
                "started_at": started,
                "ready_at": ready,
                "stopped_at": stopped,
            },
            "points": [
                {"load": load, "started_at": a, "finished_at": b, "ok": True}
                for load, (a, b) in windows.items()
            ],
        }
        for i, ((started, ready, stopped), windows) in enumerate(d["sessions"])
    ]
    keys = ("engine", "model", "gpus", "settings")
    return {
        "slug": slug,
        **{k: d[k] for k in keys},
        "points": list(d["tpot"]),
        "sessions": sessions,
    }


def write_deployment(paths: RunPaths, slug: str, d: dict) -> None:
    """One deployment of a synthetic run: its record and its points' summaries."""
    write_json_atomic(paths.deployment_record(slug), deployment_record(slug, d))
    for load, tpot in d["tpot"].items():
        fields = {"deployment": slug, "settings": d["settings"], "gpus": d["gpus"]}
        summary = synthetic_summary(d["model"], load, tpot, **fields)
        summary["point"]["engine"] = d["engine"]
        write_json_atomic(paths.summary(slug, load), summary)


@pytest.fixture()
def synthetic_run(tmp_path) -> RunPaths:
    """results/syn of DEPLOYMENTS, its report folder's tables written."""
    paths = RunPaths("syn", tmp_path / "results")
    for slug, d in DEPLOYMENTS.items():
        write_deployment(paths, slug, d)
    write_report_tables(paths)
    return paths


def write_report_tables(paths: RunPaths) -> None:
    """What the points_table rule writes, from the run's summaries and records."""
    paths.report.mkdir(parents=True, exist_ok=True)
    summaries = [str(p) for p in paths.summaries()]
    records = [str(paths.deployment_record(p.name)) for p in sorted(paths.bench.iterdir())]
    points = write_table(summaries, str(paths.report_file("points.csv")))
    if confidence.repeated(points):  # the rule declares intervals.csv with repeats only
        confidence.write(points, str(paths.intervals))
    deps = deployments.write(records, str(paths.report_file("deployments.csv")))
    meta = metadata.collect({"run": paths.run}, [read_json(p) for p in summaries], paths.root, deps)
    write_json_atomic(paths.metadata, meta)


def build_synthetic_report(paths: RunPaths, slice_plots: list[str] = ()) -> dict:
    """The report rule on a synthetic run: its plotted values."""
    out = {n: str(paths.report_file(f"{n}.png")) for n in PLOTS}
    out |= {"data": str(paths.report_file("plot-data.json")), "page": str(paths.report_page)}
    inputs = {
        "table": str(paths.report_file("points.csv")),
        "deployments": str(paths.report_file("deployments.csv")),
        "metadata": str(paths.metadata),
    }
    return build_report(inputs, [], out, paths.run, slice_plots)


def test_deployments_table_accounts_each_servers_time(synthetic_run):
    df = pd.read_csv(synthetic_run.report_file("deployments.csv")).set_index("deployment")
    assert list(df.index) == sorted(DEPLOYMENTS)
    one, four, tp2 = (df.loc[s] for s in sorted(DEPLOYMENTS))
    # parallel-1: one session of 100 s, 10 s start-up, points 20 s + 40 s.
    assert (one["sessions"], one["wall_s"], one["startup_s"]) == (1, 100, 10)
    assert one["in_points_s"] == 60 and one["idle_s"] == 30
    assert one["share_in_points"] == pytest.approx(60 / 90)
    assert one["gpu_hours"] == 0 and one["server_hours"] == pytest.approx(100 / 3600)
    # parallel-4, resumed: two sessions (50 s + 40 s wall, 20 s + 10 s start-up, 20 s +
    # 20 s in points).
    assert (four["sessions"], four["wall_s"], four["startup_s"]) == (2, 90, 30)
    assert four["share_in_points"] == pytest.approx(40 / 60)
    # tp-2 on 2 GPUs for 4200 s.
    assert tp2["gpu_hours"] == pytest.approx(4200 * 2 / 3600)
    assert tp2["share_in_points"] == pytest.approx(2600 / 3600)
    assert tp2["setting_max_num_seqs"] == 64 and pd.isna(one["setting_max_num_seqs"])
    assert one["setting_parallel"] == 1 and four["points"] == 2 and four["loads"] == "c1;c2"
    gpu_time = read_json(synthetic_run.metadata)["gpu_time"]
    assert gpu_time["gpu_hours"] == pytest.approx(4200 * 2 / 3600)
    assert gpu_time["server_hours"] == pytest.approx((100 + 90 + 4200) / 3600)
    assert gpu_time["deployments"] == 3 and gpu_time["sessions"] == 4


def test_a_server_that_never_became_ready_or_never_ran_costs_what_it_held():
    accounting = deployments.accounting
    never_ready = {
        "gpus": 1,
        "sessions": [{"server": {"started_at": 0, "ready_at": None, "stopped_at": 360}}],
    }
    held = accounting(never_ready)
    assert held["startup_s"] == 360 and held["gpu_hours"] == pytest.approx(0.1)
    assert pd.isna(held["share_in_points"])
    idle = accounting({"gpus": 4, "sessions": []})  # its points were finished before
    assert idle["wall_s"] == 0 and idle["gpu_hours"] == 0 and idle["sessions"] == 0


def test_points_table_groups_by_deployment_with_its_settings(synthetic_run):
    df = pd.read_csv(synthetic_run.report_file("points.csv"))
    assert list(zip(df["deployment"], df["load"], strict=True)) == [
        (s, load) for s in sorted(DEPLOYMENTS) for load in ("c1", "c2")
    ]
    tp2 = df[df["deployment"] == "qwen3-0.6b_tp-2"]
    assert set(tp2["gpus"]) == {2} and set(tp2["setting_tensor_parallel_size"]) == {2}
    assert set(df[df["model"] == GEMMA]["setting_parallel"]) == {1, 4}
    row = df.iloc[0]  # parallel-1 c1: 11 tokens in 0.2 s
    assert row["output_token_throughput_tps"] == pytest.approx(TOKENS / (TTFT + 10 * 0.01))
    assert row["tpot_mean_s"] == pytest.approx(0.01)


def test_pareto_marks_the_frontier_and_not_a_dominated_point(synthetic_run):
    data = build_synthetic_report(synthetic_run)
    assert data == read_json(synthetic_run.report_file("plot-data.json"))
    pareto = data["pareto"]
    points = {(p["deployment"], p["load"]): p for p in pareto["points"]}
    assert len(points) == 6
    assert {k for k, p in points.items() if p["frontier"]} == FRONTIER
    dominated = points[("gemma3-270m_parallel-1", "c1")]  # beaten by tp-2 c2 on both
    assert not dominated["frontier"]
    assert dominated["per_user_tps"] == pytest.approx(100)
    assert dominated["per_gpu_tps"] == pytest.approx(55)  # CPU: per server
    tp2 = points[("qwen3-0.6b_tp-2", "c2")]
    assert tp2["per_gpu_tps"] == pytest.approx(2 * TOKENS / (TTFT + 10 * 0.008) / 2)
    assert tp2["per_user_tps"] == pytest.approx(125)
    assert pareto["y"] == "output tokens/s per GPU (per server for CPU servers)"
    assert synthetic_run.report_file("pareto.png").stat().st_size > 0


def test_frontier_keeps_ties_and_drops_points_beaten_on_both():
    x, y = [1, 2, 3, 2, 3], [3, 2, 1, 1, 1]
    # (2, 1) is beaten by (2, 2); the two (3, 1) tie and neither is beaten.
    assert frontier(x, y) == [True, True, True, False, True]


def test_plots_name_deployments_and_give_their_settings(synthetic_run):
    data = build_synthetic_report(synthetic_run)
    # gemma3-270m has two deployments: series are named by deployment.
    assert set(data["throughput"]) == set(DEPLOYMENTS)
    assert data["deployments"]["gemma3-270m_parallel-4"]["settings"] == "ctx_size=4096, parallel=4"
    assert data["deployments"]["qwen3-0.6b_tp-2"]["gpus"] == 2
    tp2 = data["latency"]["qwen3-0.6b_tp-2"]
    assert tp2["ttft_p50_s"] == pytest.approx([TTFT, TTFT])  # values in the table's seconds


def test_one_deployment_per_model_names_series_by_model(tmp_path):
    paths = RunPaths("syn", tmp_path / "results")
    for slug in ("gemma3-270m_parallel-1", "qwen3-0.6b_tp-2"):
        write_deployment(paths, slug, DEPLOYMENTS[slug])
    df = table([str(p) for p in paths.summaries()])
    assert plots.labels(df) == {"gemma3-270m_parallel-1": GEMMA, "qwen3-0.6b_tp-2": QWEN}


def test_old_summaries_without_deployments_still_give_a_table(tmp_path):
    paths = RunPaths("old", tmp_path / "results")
    on_gpu = {"gpu": {"gpus": 1, "models": ["H100"]}}
    for model, server in (("llama3.2:1b", on_gpu), (GEMMA, {})):
        for load in ("c1", "c2"):
            summary = synthetic_summary(model, load, 0.01, server=server)
            write_json_atomic(paths.summary(model_slug(model), load), summary)
    df = table([str(p) for p in paths.summaries()])
    old_slug = model_slug("llama3.2:1b")
    assert list(df["deployment"]) == [GEMMA, GEMMA, old_slug, old_slug]
    assert list(df["gpus"]) == [0, 0, 1, 1]
    assert not [c for c in df.columns if c.startswith("setting_")]
    # A table from before the deployment column matches a new one by model and load.
    older = df.drop(columns=["deployment"])
    slower = df.assign(output_token_throughput_tps=df["output_token_throughput_tps"] / 2)
    diff = compare(older, slower, 0.1)
    assert list(diff.columns[:2]) == ["model", "load"]
    assert len(diff[diff["metric"] == "output_token_throughput_tps"]) == 4


def test_compare_matches_points_by_deployment(synthetic_run):
    df = table([str(p) for p in synthetic_run.summaries()])
    # Two deployments of one model: matching by model would pair the wrong points.
    other = df.copy()
    faster = other["deployment"] == "gemma3-270m_parallel-4"
    other.loc[faster, "output_token_throughput_tps"] *= 2
    diff = compare(df, other, 0.1)
    assert list(diff.columns[:2]) == ["deployment", "load"]
    assert set(diff["deployment"]) == {"gemma3-270m_parallel-4"} and len(diff) == 2
    assert set(diff["verdict"]) == {"improvement"}


def test_errors_plot_is_drawn_with_no_failed_request(synthetic_run):
    data = build_synthetic_report(synthetic_run)["errors"]
    assert data["note"] == "no failed requests" and data["by_kind"] == {}
    assert data["failed"] == [0] * 6 and len(data["points"]) == 6
    assert data["points"][0] == "gemma3-270m_parallel-1 c1"
    assert synthetic_run.report_file("errors.png").stat().st_size > 5000


def test_page_shows_latencies_in_ms_and_the_gpu_time(synthetic_run):
    build_synthetic_report(synthetic_run)
    page = synthetic_run.report_page.read_text()
    for header in ("TTFT p50 ms", "ITL p50 ms", "E2E p99 ms"):
        assert f"<th>{header}</th>" in page, header
    assert "TTFT p50 s" not in page and "E2E p99 s" not in page
    assert "<td>100</td>" in page  # TTFT p50 of every point: 0.1 s
    assert "<th>GPU-hours</th>" in page and "2.333 GPU-hours" in page
    assert "ctx_size=4096, parallel=4" in page
    assert page.count("data:image/png;base64,") == RUN_PLOTS


def test_page_tables_fit_the_browser_width(synthetic_run, tmp_path, artifacts):
    """Many deployments with long names: the page itself never scrolls sideways; a table
    wider than the page scrolls inside its own box."""
    pytest.importorskip("playwright.sync_api")
    if not shutil.which("chromium"):
        pytest.skip("Debian's chromium is not installed (bin/install --test)")
    from playwright.sync_api import sync_playwright

    for i in range(6):  # long slugs make wide tables
        slug = f"gemma3-270m_parallel-{i}_ctx-size-4096_batch-size-2048_flash-attn-on"
        d = DEPLOYMENTS["gemma3-270m_parallel-1"]
        write_deployment(synthetic_run, slug, d | {"settings": {"parallel": i, "x" * 40: 1}})
    write_report_tables(synthetic_run)
    build_synthetic_report(synthetic_run)
    width = 1024
    errors = []
    with sync_playwright() as p:
        browser = chromium(p)
        page = browser.new_page(viewport={"width": width, "height": 800})
        collect_errors(page, errors)
        page.goto(synthetic_run.report_page.as_uri())
        page_width = page.evaluate("document.documentElement.scrollWidth")
        boxes = page.evaluate(
            "Array.from(document.querySelectorAll('.table-box')).map(b => {"
            " const r = b.getBoundingClientRect();"
            " return [r.right, b.scrollWidth, b.clientWidth]; })"
        )
        page.screenshot(path=str(artifacts / "report-page-synthetic.png"), full_page=True)
        browser.close()
    assert not errors, errors
    assert page_width <= width, page_width
    assert boxes and all(right <= width for right, _, _ in boxes), boxes
    # The points table is wider than the page here: it scrolls inside its box.
    assert any(scroll > client for _, scroll, client in boxes), boxes


# A synthetic run with repeats: one deployment, two levels of three repeats each, the
# repeats differing in TPOT, so in throughput and E2E; TTFT is the same in every one.
SLUG = "gemma3-270m_parallel-1"
REPEAT_TPOT = {"c1": (0.010, 0.012, 0.014), "c2": (0.020, 0.020, 0.026)}
T_975_2 = 4.302653  # t(0.975, 2 degrees of freedom), from tables


def write_repeated_run(paths: RunPaths) -> None:
    d = DEPLOYMENTS[SLUG]
    loads = []
    for level, tpots in REPEAT_TPOT.items():
        for k, tpot in enumerate(tpots):
            fields = {"deployment": SLUG, "settings": d["settings"], "gpus": d["gpus"]}
            summary = synthetic_summary(d["model"], level, tpot, **fields)
            summary["point"].update(load=f"{level}_rep{k}", repeat=k)
            write_json_atomic(paths.summary(SLUG, f"{level}_rep{k}"), summary)
            loads.append(f"{level}_rep{k}")
    write_json_atomic(paths.deployment_record(SLUG), deployment_record(SLUG, d) | {"points": loads})
    write_report_tables(paths)


def by_hand(values) -> tuple[float, float]:
    """Mean and half width of the 95 % interval of three values, with numpy."""
    values = np.asarray(values)
    return values.mean(), T_975_2 * values.std(ddof=1) / math.sqrt(len(values))


def test_repeats_give_each_level_its_mean_and_interval(tmp_path):
    paths = RunPaths("rep", tmp_path / "results")
    write_repeated_run(paths)
    levels = pd.read_csv(paths.intervals).set_index("level")
    assert list(levels.index) == ["c1", "c2"] and set(levels["repeats"]) == {3}
    for level, tpots in REPEAT_TPOT.items():
        tok = [c * TOKENS / (TTFT + 10 * t) for c, t in [(int(level[1:]), t) for t in tpots]]
        mean, half = by_hand(tok)
        row = levels.loc[level]
        assert row["output_token_throughput_tps_mean"] == pytest.approx(mean)
        assert row["output_token_throughput_tps_ci_low"] == pytest.approx(mean - half)
        assert row["output_token_throughput_tps_ci_high"] == pytest.approx(mean + half)
        e2e_mean, e2e_half = by_hand([TTFT + 10 * t for t in tpots])
        assert row["e2e_p99_s_ci_half"] == pytest.approx(e2e_half)
        assert row["e2e_p50_s_mean"] == pytest.approx(e2e_mean)
        assert row["ttft_p90_s_ci_low"] == pytest.approx(TTFT)  # the same in every repeat
    assert levels.loc["c2", "tpot_p50_s_ci_half"] > 0 and levels.loc["c1", "itl_p99_s_mean"] > 0


def test_plots_draw_the_intervals_of_intervals_csv(tmp_path):
    paths = RunPaths("rep", tmp_path / "results")
    write_repeated_run(paths)
    data = build_synthetic_report(paths)
    levels = pd.read_csv(paths.intervals)
    thr, lat = data["throughput"][GEMMA], data["latency"][GEMMA]
    assert thr["clients"] == [1, 2]
    for figure, plotted in (("output_token_throughput_tps", thr), ("e2e_p99_s", lat)):
        assert plotted[figure] == pytest.approx(list(levels[f"{figure}_mean"]))
        assert plotted[f"{figure}_ci_low"] == pytest.approx(list(levels[f"{figure}_ci_low"]))
        assert plotted[f"{figure}_ci_high"] == pytest.approx(list(levels[f"{figure}_ci_high"]))
    for figure in ("request_throughput_rps", "ttft_p50_s", "itl_p99_s"):
        assert f"{figure}_ci_low" in thr or f"{figure}_ci_low" in lat
    assert lat["e2e_p50_s_ci_high"][0] > lat["e2e_p50_s"][0] > lat["e2e_p50_s_ci_low"][0]


def test_page_shows_each_levels_interval(tmp_path):
    paths = RunPaths("rep", tmp_path / "results")
    write_repeated_run(paths)
    build_synthetic_report(paths)
    page = paths.report_page.read_text()
    assert "How sure: repeats" in page
    for header in ("TTFT p90 ms", "TPOT p99 ms", "E2E p50 ms", "output tok/s"):
        assert page.count(f"<th>{header}</th>") >= 1, header
    # c1's output tokens/s: 55, 50 and 45.83 over the repeats; E2E p50 200, 220, 240 ms.
    assert "<td>50.28 ± 11</td>" in page
    assert "<td>220 ± 50</td>" in page


def test_without_repeats_no_interval_anywhere(synthetic_run):
    data = build_synthetic_report(synthetic_run)
    page = synthetic_run.report_page.read_text()
    assert "How sure" not in page and " ± " not in page
    assert not synthetic_run.intervals.exists()
    for figure in ("throughput", "latency"):
        keys = {k for series in data[figure].values() for k in series}
        assert not [k for k in keys if "_ci_" in k], figure


def staggered_records(count: int, every_s: float, tpot: float) -> list[dict]:
    """`count` requests as synthetic_records makes them, one every `every_s` seconds."""
    return [
        r | {"start": 100.0 + i * every_s} for i, r in enumerate(synthetic_records(count, tpot))
    ]


def test_each_point_gets_a_plot_of_its_time_slices(synthetic_run):
    records = staggered_records(30, 1.0, 0.01)  # 30 s, one request/s, each 0.2 s
    summary = summarize(records, slice_s=10)
    slices = summary["slices"]
    assert [s["requests"] for s in slices] == [10, 10, 10]
    outs = []
    for slug, load in (("gemma3-270m_parallel-1", "c1"), ("qwen3-0.6b_tp-2", "c2")):
        out = synthetic_run.point_slices_plot(slug, load)
        out.parent.mkdir(parents=True, exist_ok=True)
        data = plots.time_slices(slices, str(out), f"{slug} {load}")
        assert out.stat().st_size > 5000
        outs.append(str(out))
    # The plotted values are the summary's.
    assert data["start_s"] == [0, 10, 20] and data["end_s"] == pytest.approx([10, 20, 29.2])
    for key in ("output_token_throughput_tps", "request_throughput_rps", "ttft_p99_s"):
        assert data[key] == [s[key] for s in slices], key
    assert data["request_throughput_rps"][:2] == pytest.approx([1.0, 1.0])
    build_synthetic_report(synthetic_run, outs)
    page = synthetic_run.report_page.read_text()
    assert "Over time, per point" in page
    assert page.count("data:image/png;base64,") == RUN_PLOTS + len(outs)


def test_a_point_without_measured_requests_still_gets_its_slices_plot(tmp_path):
    data = plots.time_slices([], str(tmp_path / "slices.png"), "empty")
    assert data["requests"] == [] and (tmp_path / "slices.png").stat().st_size > 0


def test_a_trace_replays_send_lateness_is_in_the_table_and_on_the_page(synthetic_run):
    """points.csv has each trace point's send lateness; the page shows its p99 in ms once a
    point has one, and no such column otherwise."""
    build_synthetic_report(synthetic_run)
    assert "send lateness p99 ms" not in synthetic_run.report_page.read_text()
    slug = "gemma3-270m_parallel-1"
    summary = read_json(synthetic_run.summary(slug, "c1"))
    summary["lateness_s"] = {"count": 1, "p50": 0.002, "p99": 0.0375, "max": 0.05}
    write_json_atomic(synthetic_run.summary(slug, "c1"), summary)
    write_report_tables(synthetic_run)
    df = pd.read_csv(synthetic_run.report_file("points.csv"))
    row = df[(df["deployment"] == slug) & (df["load"] == "c1")].iloc[0]
    assert (row["lateness_p50_s"], row["lateness_p99_s"], row["lateness_max_s"]) == (
        0.002,
        0.0375,
        0.05,
    )
    assert df["lateness_p99_s"].isna().sum() == len(df) - 1
    build_synthetic_report(synthetic_run)
    text = synthetic_run.report_page.read_text()
    assert "send lateness p99 ms" in text and "37.5" in text


def test_a_capacity_search_is_named_in_the_table_plot_and_page(synthetic_run):
    """A deployment record with a search: points.csv names each point's part, the throughput
    plot's values mark the capacity and the failure above it, the page has the table."""
    slug = "qwen3-0.6b_tp-2"
    record = read_json(synthetic_run.deployment_record(slug))
    steps = [
        {"level": 1, "load": "c1", "passed": True, "why": "ok"},
        {"level": 2, "load": "c2", "passed": False, "why": "60% of requests met every SLO"},
    ]
    record["search"] = {
        "pattern": "closed",
        "level_key": "clients",
        "capacity": 1,
        "failed_above": 2,
        "capacity_load": "c1",
        "failed_above_load": "c2",
        "why": "the bracket is within the tolerance",
        "points": 2,
        "steps": steps,
    }
    write_json_atomic(synthetic_run.deployment_record(slug), record)
    records = [str(synthetic_run.deployment_record(s)) for s in DEPLOYMENTS]
    summaries = [str(p) for p in synthetic_run.summaries()]
    roles = deployments.search_roles(records)
    write_table(summaries, str(synthetic_run.report_file("points.csv")), roles=roles)
    deployments.write(records, str(synthetic_run.report_file("deployments.csv")))
    df = pd.read_csv(synthetic_run.report_file("points.csv"), dtype={"search": str})
    parts = df[df["deployment"] == slug].set_index("load")["search"].to_dict()
    assert parts == {"c1": "capacity", "c2": "failed above"}
    assert df[df["deployment"] != slug]["search"].isna().all()
    deps = pd.read_csv(synthetic_run.report_file("deployments.csv")).set_index("deployment")
    assert deps.loc[slug, "search_capacity"] == 1 and deps.loc[slug, "search_failed_above"] == 2
    assert deps.drop(index=slug)["search_capacity"].isna().all()
    data = build_synthetic_report(synthetic_run)
    (values,) = [v for v in data["throughput"].values() if "capacity" in v]
    assert (values["capacity"], values["failed_above"]) == (1.0, 2.0)
    text = synthetic_run.report_page.read_text()
    assert "Capacity search" in text and "the bracket is within the tolerance" in text
