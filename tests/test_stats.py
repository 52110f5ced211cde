"""The metric math of DESIGN.md, checked against independent computations."""

import numpy as np
import pytest

from llmsweep.loadgen.stats import percentile, summarize


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
