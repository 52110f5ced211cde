"""The metric math of DESIGN.md, checked against independent computations."""

import numpy as np
import pytest

from llmsweep.loadgen.stats import MAX_SLICES, percentile, slices_of, summarize


def rec(start, ttft, e2e, out_tokens, itl, ok=True, warmup=False, error_kind=None):
    return {
        "start": start,
        "ttft_s": ttft,
        "e2e_s": e2e,
        "itl_s": itl,
        "tpot_s": (e2e - ttft) / (out_tokens - 1) if ok else None,
        "output_tokens": out_tokens,
        "output_tokens_source": "usage",
        "input_tokens": 5,
        "ok": ok,
        "warmup": warmup,
        "error_kind": error_kind,
    }


@pytest.mark.parametrize("q", [0, 50, 90, 95, 99, 100])
def test_percentile_matches_numpy(q):
    values = sorted(np.random.default_rng(q).exponential(size=37).tolist())
    assert percentile(values, q) == pytest.approx(np.percentile(values, q))


def test_summary_throughput_and_latency():
    records = [
        rec(100.0, 0.1, 1.0, 10, [0.1] * 9),
        rec(100.5, 0.2, 2.0, 20, [0.09] * 19),
        rec(101.0, 0.3, 0.5, 5, [0.05] * 4, ok=False, error_kind="disconnect"),
        rec(90.0, 5.0, 6.0, 10, [0.1] * 9, warmup=True),
    ]
    s = summarize(records)
    assert s["requests"] == 3 and s["successful"] == 2 and s["failed"] == 1
    assert s["errors"] == {"disconnect": 1}
    # Window: first measured start (100.0) to last end (100.5 + 2.0); warm-up excluded.
    assert s["window"]["duration_s"] == pytest.approx(2.5)
    assert s["output_token_throughput_tps"] == pytest.approx(30 / 2.5)
    assert s["request_throughput_rps"] == pytest.approx(2 / 2.5)
    assert s["ttft_s"]["p50"] == pytest.approx(0.15)
    assert s["ttft_s"]["max"] == pytest.approx(0.2)
    assert s["itl_s"]["count"] == 28
    assert s["tpot_s"]["mean"] == pytest.approx(((0.9 / 9) + (1.8 / 19)) / 2)


def test_summary_of_only_failures_has_no_latencies():
    s = summarize([rec(1.0, None, 0.01, 0, [], ok=False, error_kind="connect")])
    assert s["successful"] == 0 and s["ttft_s"]["p50"] is None
    assert s["output_token_throughput_tps"] == 0


def test_knee_is_where_throughput_stops_growing():
    from llmsweep.report.knee import knee

    clients = [1, 2, 4, 8, 16, 32]
    assert knee(clients, [10, 20, 40, 80, 82, 83]) == 8
    assert knee(clients, [10, 20, 40, 80, 160, 320]) is None  # never saturated
    assert knee([1, 2], [10, 11]) is None  # too few points to tell
    assert knee([4, 1, 2], [30, 10, 29]) == 2  # order of the points does not matter


# Time slices (stats.time_slices): a point's figures per slice of its window.


def timed(start, e2e, ttft, chunks, tokens, warmup=False):
    """A successful request whose `chunks` content chunks arrive evenly from its TTFT to
    its end."""
    gap = (e2e - ttft) / (chunks - 1) if chunks > 1 else 0.0
    r = rec(start, ttft, e2e, max(tokens, 2), [gap] * (chunks - 1), warmup=warmup)
    r["output_tokens"] = tokens
    return r


def test_a_rate_that_halves_midway_shows_in_the_slices():
    """10 requests/s for 30 s, then 2 requests/s with a slower first token for 30 s."""
    t0 = 1000.0
    fast = [timed(t0 + 0.1 * i, 0.45, 0.1, 10, 10) for i in range(300)]
    slow = [timed(t0 + 30 + 0.5 * j, 0.45, 0.3, 10, 10) for j in range(60)]
    warmup = [timed(t0 - 50, 0.45, 5.0, 10, 10, warmup=True)]
    s = summarize(warmup + fast + slow, slice_s=10)
    slices = s["slices"]
    assert s["slice_s"] == 10
    # The window: first measured start to last end (59.5 + 0.45 s); the last slice is short.
    assert [x["start_s"] for x in slices] == [0, 10, 20, 30, 40, 50]
    assert [x["end_s"] for x in slices[:-1]] == [10, 20, 30, 40, 50]
    assert slices[-1]["end_s"] == pytest.approx(59.95)
    # A request counts in the slice it finished in: the first ends at 0.45 s, the last
    # four of the fast half after 30 s.
    assert [x["requests"] for x in slices] == [96, 100, 100, 24, 20, 20]
    assert sum(x["requests"] for x in slices) == s["requests"] == 360
    rates = [x["request_throughput_rps"] for x in slices]
    assert rates[:3] == pytest.approx([9.6, 10.0, 10.0])
    assert rates[3:] == pytest.approx([2.4, 2.0, 20 / 9.95])
    assert [x["ttft_p50_s"] for x in slices] == pytest.approx([0.1] * 3 + [0.3] * 3)
    assert [x["e2e_p99_s"] for x in slices] == pytest.approx([0.45] * 6)
    tokens = sum(x["output_tokens"] for x in slices)
    assert tokens == pytest.approx(s["output_tokens"]) and s["output_tokens"] == 3600
    # Whole-window throughput is the slices' weighted by their durations.
    durations = [x["end_s"] - x["start_s"] for x in slices]
    assert sum(durations) == pytest.approx(s["window"]["duration_s"])
    weighted = sum(
        x["output_token_throughput_tps"] * d for x, d in zip(slices, durations, strict=True)
    )
    assert weighted / sum(durations) == pytest.approx(s["output_token_throughput_tps"])


def test_a_long_request_adds_its_tokens_where_they_arrived():
    # Chunks at 1, 2, ..., 20 s, 2 tokens each; it ends at 20 s, the window's end.
    long = timed(0.0, 20.0, 1.0, 20, 40)
    s = summarize([long], slice_s=10)
    assert [x["requests"] for x in s["slices"]] == [0, 1]
    # 1..9 s in the first slice; 10..19 s and the chunk at the window's end in the last.
    assert [x["output_tokens"] for x in s["slices"]] == pytest.approx([18, 22])
    assert s["slices"][0]["ttft_p50_s"] is None  # no request finished there
    assert s["slices"][0]["output_token_throughput_tps"] == pytest.approx(1.8)


def test_a_request_ending_on_a_boundary_belongs_to_the_next_slice():
    records = [timed(0.0, 10.0, 0.5, 2, 2), timed(0.0, 20.0, 0.5, 2, 2)]
    slices = summarize(records, slice_s=10)["slices"]
    assert [(x["start_s"], x["end_s"], x["requests"]) for x in slices] == [
        (0, 10, 0),
        (10, 20, 2),
    ]


def test_failed_requests_count_in_their_slice_but_not_in_its_rates():
    records = [timed(0.0, 1.0, 0.5, 2, 2), rec(0.0, None, 3.0, 0, [], ok=False, error_kind="x")]
    (only,) = summarize(records, slice_s=10)["slices"]
    assert (only["requests"], only["successful"], only["failed"]) == (2, 1, 1)
    assert only["end_s"] == 3.0 and only["request_throughput_rps"] == pytest.approx(1 / 3)


def test_a_short_rest_of_the_window_joins_the_last_slice():
    records = [timed(float(i), 1.0, 0.5, 2, 2) for i in range(61)]  # ends at 61 s
    slices = summarize(records, slice_s=10)["slices"]
    assert [(x["start_s"], x["end_s"]) for x in slices][-2:] == [(40, 50), (50, 61)]
    assert [x["requests"] for x in slices] == [9, 10, 10, 10, 10, 12]
    # A rest of half a slice or more is a slice of its own.
    slices = summarize(records[:56], slice_s=10)["slices"]  # ends at 56 s
    assert [(x["start_s"], x["end_s"]) for x in slices][-2:] == [(40, 50), (50, 56)]


def test_a_long_window_gets_wider_slices():
    records = [timed(0.0, 5000.0, 1.0, 2, 2)]
    slices = summarize(records, slice_s=1)["slices"]
    assert len(slices) == MAX_SLICES
    assert slices[1]["start_s"] == pytest.approx(5.0) and slices[-1]["end_s"] == 5000.0


def test_summary_without_a_slice_length_has_no_slices():
    s = summarize([timed(0.0, 1.0, 0.5, 2, 2)])
    assert s["slices"] == [] and s["slice_s"] is None
    assert summarize([], slice_s=10)["slices"] == []


def test_slices_of_a_summary_are_cut_anew_at_another_length():
    records = [timed(float(i), 1.0, 0.5, 2, 2) for i in range(30)]
    summary = summarize(records, slice_s=10)
    assert slices_of(summary, records, 10) is summary["slices"]
    assert len(slices_of(summary, records, 5)) == 6  # 30 s in slices of 5 s
    older = {k: v for k, v in summary.items() if k not in ("slices", "slice_s")}
    assert slices_of(older, records, 10) == summary["slices"]
