"""Adaptive capacity search (sweep.search): the steps on synthetic servers of known
capacity, the config's checks, and the workflow against the streaming stub with a known
capacity, killed mid-search and resumed."""

import csv
import signal

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from helpers import assert_nothing_alive, env, snakemake, snakemake_cmd, write_stub_config
from llmsweep import config
from llmsweep.loadgen import search
from llmsweep.loadgen.stub_server import StubServer
from llmsweep.loadgen.sweep import search_point, searched_point, sweep_points
from llmsweep.paths import RunPaths
from llmsweep.util import read_json, wait_until


def spec(**changes) -> dict:
    base = {
        "pattern": "open",
        "low": 1,
        "high": 1000,
        "tolerance": 0.1,
        "max_points": 20,
        "goal_share": 0.95,
        "min_gain": 0.5,
    }
    return base | changes


def server_of_capacity(capacity: float, slo: bool = True):
    """summary_of(level) for a server that serves up to `capacity` (requests/s or
    clients): below it every request meets the SLO and throughput follows the load; above
    it half the requests miss the SLO and throughput stays at the capacity's."""

    def summary_of(level):
        good = 1.0 if level <= capacity else 0.5
        summary = {
            "requests": 100,
            "successful": 100,
            "output_token_throughput_tps": 10 * min(level, capacity),
        }
        if slo:
            summary |= {"slo": {"e2e_s": 1}, "slo_share": {"all": good}}
        return summary

    return summary_of


def run_search(search_spec: dict, summary_of) -> tuple[list, dict, list]:
    """The whole search on `summary_of`, as the deployment job runs it: replay, run the
    next level, replay again. Returns (steps, outcome, levels in the order run)."""
    ran = {}
    while True:
        steps, level = search.replay(search_spec, ran.get)
        if level is None:
            return steps, search.outcome(search_spec, steps), list(ran)
        assert level not in ran, f"level {level} asked for twice"
        ran[level] = summary_of(level)


@settings(max_examples=300, deadline=None)
@given(capacity=st.floats(1.5, 900), tolerance=st.sampled_from([0.05, 0.1, 0.25]))
def test_open_loop_search_brackets_a_known_capacity_within_the_tolerance(capacity, tolerance):
    s = spec(tolerance=tolerance)
    steps, found, ran = run_search(s, server_of_capacity(capacity))
    assert found["capacity"] <= capacity < found["failed_above"]
    assert found["failed_above"] / found["capacity"] - 1 <= tolerance
    assert found["why"] == "the bracket is within the tolerance"
    assert len(ran) == found["points"] <= s["max_points"]


@settings(max_examples=300, deadline=None)
@given(capacity=st.floats(1.5, 400), tolerance=st.sampled_from([0.05, 0.1, 0.25]))
def test_without_slos_the_search_stops_where_throughput_stops_growing(capacity, tolerance):
    """Every level up to the capacity doubles its throughput with the load and passes; a
    level above it passes only while its gain over the pass below is at least min_gain of
    the load's, so the capacity found is between the true one over the tolerance and twice
    it, and every failure is above the true capacity."""
    s = spec(tolerance=tolerance, high=1000)
    _, found, _ = run_search(s, server_of_capacity(capacity, slo=False))
    assert capacity / (1 + tolerance) <= found["capacity"] <= 2 * capacity
    assert found["failed_above"] > capacity


@settings(max_examples=200, deadline=None)
@given(capacity=st.integers(1, 300), low=st.integers(1, 4))
def test_closed_loop_search_finds_the_client_count_exactly_when_tolerance_allows(capacity, low):
    s = spec(pattern="closed", low=low, high=512, tolerance=0.0001)
    if capacity < low:
        capacity = low
    _, found, ran = run_search(s, server_of_capacity(capacity))
    assert found["capacity"] == capacity and found["failed_above"] == capacity + 1
    assert all(isinstance(level, int) for level in ran)


def test_a_flat_throughput_fails_the_level_without_slos():
    """Without SLOs, a level whose throughput did not grow with the load fails."""
    steps, found, _ = run_search(spec(low=2, high=64), server_of_capacity(10, slo=False))
    failed = [s for s in steps if not s.passed]
    assert failed and all("min_gain" in s.why for s in failed)
    assert 10 < found["failed_above"]


def test_the_ends_of_the_range():
    _, below, _ = run_search(spec(low=5), server_of_capacity(2))
    assert below["capacity"] is None and below["failed_above"] == 5 and below["points"] == 1
    assert "below" in below["why"]
    _, above, ran = run_search(spec(low=1, high=10), server_of_capacity(50))
    assert above["capacity"] == 10 and above["failed_above"] is None
    assert ran == [1, 2, 4, 8, 10] and "at least" in above["why"]


def test_max_points_ends_the_search_and_says_so():
    _, found, ran = run_search(spec(max_points=4, tolerance=0.01), server_of_capacity(100))
    assert len(ran) == 4 and found["why"].startswith("max_points")
    assert found["capacity"] == 8


@settings(max_examples=100, deadline=None)
@given(capacity=st.floats(1.5, 500), cut=st.integers(0, 12))
def test_a_search_cut_off_continues_where_it_stopped(capacity, cut):
    """Replayed on the first `cut` points, the search asks for the level the whole search
    ran next, and finishes as the uncut one did."""
    s = spec()
    summary_of = server_of_capacity(capacity)
    _, whole, ran = run_search(s, summary_of)
    done = {level: summary_of(level) for level in ran[:cut]}
    steps, level = search.replay(s, done.get)
    assert level == (ran[cut] if cut < len(ran) else None)
    assert [st.level for st in steps] == ran[:cut]


def test_failed_requests_fail_a_level():
    summary = {"requests": 10, "successful": 9, "output_token_throughput_tps": 5.0}
    passed, why = search.judge(summary, spec(goal_share=0.95), 4, None)
    assert not passed and "90% of requests succeeded" in why
    assert search.judge(summary, spec(goal_share=0.9), 4, None)[0]


# -- config and points -----------------------------------------------------------------------


@pytest.mark.parametrize(
    ("search_cfg", "extra", "message"),
    [
        ({"pattern": "open", "low": 4, "high": 2}, {}, "sweep.search.high: 2 is below low (4)"),
        (
            {"pattern": "closed", "low": 1.5, "high": 8},
            {},
            "sweep.search.low: 1.5 is not of type 'integer'",
        ),
        ({"pattern": "trace", "low": 1, "high": 8}, {}, "sweep.search.pattern: trace needs"),
        ({"pattern": "open", "low": 1, "high": 8}, {"repeats": 2}, "sweep.repeats: 2 with"),
        ({"pattern": "open", "low": 1}, {}, "sweep.search"),
        ({"pattern": "open", "low": 1, "high": 8, "tolerance": 0}, {}, "sweep.search.tolerance"),
        ({"pattern": "bursty", "low": 1, "high": 8}, {}, "sweep.search.pattern"),
        ({"pattern": "open", "low": 1, "high": 8, "step": 2}, {}, "sweep.search"),
    ],
)
def test_a_bad_search_is_refused_naming_the_key(search_cfg, extra, message):
    with pytest.raises(config.ConfigError, match=message.replace("(", r"\(").replace(")", r"\)")):
        config.load(overrides={"sweep": {"search": search_cfg, **extra}})


def test_the_searched_patterns_list_is_not_run_the_others_are():
    cfg = config.load(
        overrides={"sweep": {"clients": [1, 2], "rates": [5], "search": spec(high=8)}}
    )
    assert [p["load"] for p in sweep_points(cfg)] == ["c1", "c2"]
    alone = config.load(overrides={"sweep": {"clients": [], "search": spec(high=8)}})
    assert sweep_points(alone) == []
    dep = {"slug": "m", "model": "m", "engine": "llama_cpp"}
    point = search_point(cfg, dep, 22.6)
    assert point["load"] == "r22.6" and point["rate"] == 22.6 and point["pattern"] == "open"
    assert searched_point(cfg, dep, "r22.6") == point


# -- the workflow against a stub of known capacity --------------------------------------------

# The stub streams 8 tokens 50 ms apart (0.4 s a request) on 4 slots: 10 requests/s at
# most. Constant arrivals below that never queue (every request meets e2e 0.6 s); above
# it the queue grows with every request, and most of a 30-request point misses.
CAPACITY = 10.0
STUB = {"gap_s": 0.05, "slots": 4}
SEARCH = {
    "pattern": "open",
    "low": 4,
    "high": 64,
    "tolerance": 0.25,
    "max_points": 6,
    "min_gain": 0.5,
}


def search_config(tmp_path, stub):
    write_stub_config(
        tmp_path,
        stub,
        sweep={"clients": [], "requests": 30, "arrival": "constant", "search": SEARCH},
        workload={"max_tokens": 8},
        slo={"e2e_s": 0.6},
        monitoring={"enabled": False},
    )


def searched(tmp_path) -> set[str]:
    bench = tmp_path / "results" / "t" / "bench" / "stub-model"
    return {p.parent.name for p in bench.glob("r*/summary.json")}


@pytest.mark.e2e
def test_the_workflow_finds_the_stubs_capacity_and_resumes_a_killed_search(tmp_path):
    import subprocess

    with StubServer(**STUB) as stub:
        search_config(tmp_path, stub)
        log = open(tmp_path / "driver.log", "w")
        driver = subprocess.Popen(
            snakemake_cmd(tmp_path), stdout=log, stderr=subprocess.STDOUT, env=env(), cwd=tmp_path
        )
        try:
            wait_until(lambda: len(searched(tmp_path)) >= 2, 300, "two searched points")
        finally:
            driver.send_signal(signal.SIGKILL)
            driver.wait()
        assert_nothing_alive(tmp_path, timeout=30)
        bench = tmp_path / "results" / "t" / "bench" / "stub-model"
        before = {p: (bench / p / "summary.json").stat().st_mtime_ns for p in searched(tmp_path)}

        proc = snakemake(tmp_path)
    assert proc.returncode == 0, proc.stdout + proc.stderr
    for load, mtime in before.items():  # finished points were judged, not run again
        assert (bench / load / "summary.json").stat().st_mtime_ns == mtime
    log_text = (tmp_path / "results/t/logs/deployment/stub-model.log").read_text()
    for load in before:
        assert f"point {load} " not in log_text.split("points finished before")[-1]

    found = read_json(bench / "deployment.json")["search"]
    assert found["capacity"] <= CAPACITY * 1.15 and found["failed_above"] >= CAPACITY
    assert found["failed_above"] / found["capacity"] - 1 <= SEARCH["tolerance"]
    assert found["points"] <= SEARCH["max_points"]
    ran = {f"r{s['level']:g}" for s in found["steps"]}
    assert ran == searched(tmp_path)

    paths = RunPaths("t", tmp_path / "results")
    with open(paths.report_file("points.csv"), newline="") as f:
        roles = {row["load"]: row["search"] for row in csv.DictReader(f)}
    assert roles.pop(found["capacity_load"]) == "capacity"
    assert roles.pop(found["failed_above_load"]) == "failed above"
    assert set(roles.values()) == {"searched"} and len(roles) == found["points"] - 2
    page = paths.report_page.read_text()
    assert "Capacity search" in page and f"{found['capacity']:g}" in page
    (marks,) = read_json(paths.report_file("plot-data.json"))["throughput"].values()
    assert (marks["capacity"], marks["failed_above"]) == (found["capacity"], found["failed_above"])
    for load in ran:  # the report learns the searched points from the checkpoint's record
        assert paths.point_plot("stub-model", load).stat().st_size > 0
        assert paths.point_slices_plot("stub-model", load).stat().st_size > 0
    assert_nothing_alive(tmp_path)


def test_check_config_says_what_each_deployment_runs(tmp_path, capsys):
    from llmsweep import cli

    path = tmp_path / "c.yaml"
    path.write_text(
        "sweep: {clients: [1, 2], search: {pattern: open, low: 0.5, high: 64, max_points: 7}}\n"
    )
    assert cli.main(["check-config", "--configfile", str(path)]) == 0
    out = capsys.readouterr().out
    assert "# points of each: c1, c2\n" in out
    assert "# and a capacity search of each: rate from 0.5 to 64, at most 7 points\n" in out


def test_a_bracket_too_narrow_to_split_ends_the_search_and_says_so():
    """Levels have 3 significant digits: a tolerance finer than that ends the search where
    no level is left between the two ends."""
    _, found, ran = run_search(spec(low=100, high=200, tolerance=0.0001), server_of_capacity(100.4))
    assert (found["capacity"], found["failed_above"]) == (100, 101)
    assert found["why"] == "no level between 100 and 101 at 3 significant digits"
    assert len(ran) < 20
