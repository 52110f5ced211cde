"""95 % confidence intervals over repeats (report.confidence): the t quantiles against a
numerical integral of Student's t density, and the intervals' coverage on draws of a known
distribution."""

import math

import numpy as np
import pandas as pd
import pytest

from llmsweep.report import confidence


def t_cdf(x: float, df: int) -> float:
    """P(T <= x), x > 0, for Student's t with `df` degrees of freedom: the density
    integrated by the trapezoid rule on a fine grid."""
    c = math.exp(math.lgamma((df + 1) / 2) - math.lgamma(df / 2)) / math.sqrt(df * math.pi)
    t = np.linspace(0.0, x, 200_001)
    return 0.5 + float(np.trapezoid(c * (1 + t * t / df) ** (-(df + 1) / 2), t))


@pytest.mark.parametrize("df", [1, 2, 3, 4, 5, 9, 17, 29, 30, 31, 45, 99])
def test_t_quantile_leaves_two_and_a_half_percent_above_it(df):
    assert t_cdf(confidence.t_975(df), df) == pytest.approx(0.975, abs=2e-6)


def test_t_quantile_falls_towards_the_normal_one():
    values = [confidence.t_975(df) for df in range(1, 200)]
    assert all(a > b for a, b in zip(values, values[1:], strict=False))
    assert values[-1] == pytest.approx(confidence.Z_975, abs=0.02)
    # The table's last entry and the expansion beyond it meet.
    assert confidence.t_975(31) < confidence.t_975(30) < confidence.t_975(31) + 0.005
    with pytest.raises(ValueError):
        confidence.t_975(0)


def coverage(n: int, draws: int, quantile=None, seed: int = 7) -> float:
    """The share of `draws` intervals from n normal samples (mean 3, sd 2) that hold the
    true mean; with `quantile`, intervals of mean ± quantile · s / √n instead."""
    rng = np.random.default_rng(seed)
    hits = 0
    for _ in range(draws):
        sample = rng.normal(3.0, 2.0, size=n)
        if quantile is None:
            ci = confidence.interval(sample.tolist())
            low, high = ci["low"], ci["high"]
        else:
            half = quantile * sample.std(ddof=1) / math.sqrt(n)
            low, high = sample.mean() - half, sample.mean() + half
        hits += low <= 3.0 <= high
    return hits / draws


def test_intervals_of_five_repeats_hold_the_true_mean_95_times_in_100():
    assert 0.93 <= coverage(5, 2000) <= 0.97
    # The same draws with the normal quantile: too narrow at n = 5, which t corrects.
    assert coverage(5, 2000, quantile=confidence.Z_975) < 0.92


@pytest.mark.parametrize("n", [2, 3, 10])
def test_coverage_holds_for_other_repeat_counts(n):
    assert 0.93 <= coverage(n, 2000, seed=n) <= 0.97


def test_interval_of_a_known_sample():
    ci = confidence.interval([1.0, 2.0, 3.0, 4.0, 5.0])
    # s = sqrt(2.5), t(0.975, 4) = 2.776445 (tables)
    half = 2.776445 * math.sqrt(2.5) / math.sqrt(5)
    assert ci["n"] == 5 and ci["mean"] == 3.0
    assert (ci["low"], ci["high"], ci["half_width"]) == pytest.approx((3 - half, 3 + half, half))


def test_one_value_or_none_has_no_interval():
    one = confidence.interval([4.0, None, math.nan])
    assert one["n"] == 1 and one["mean"] == 4.0 and math.isnan(one["half_width"])
    assert math.isnan(confidence.interval([])["mean"])
    same = confidence.interval([2.0, 2.0, 2.0])
    assert same["low"] == same["high"] == 2.0


def test_table_has_one_row_per_level_of_its_repeats():
    points = pd.DataFrame(
        {
            "deployment": ["d"] * 5,
            "model": ["m"] * 5,
            "pattern": ["closed"] * 3 + ["open"] * 2,
            "clients": [4, 4, 4, None, None],
            "rate": [None, None, None, 2.5, 2.5],
            "load": ["c4_rep0", "c4_rep1", "c4_rep2", "r2.5_rep0", "r2.5_rep1"],
            "request_throughput_rps": [1.0, 2.0, 3.0, 5.0, 7.0],
            "ttft_p99_s": [0.1, 0.2, None, 0.3, 0.3],
        }
    )
    assert confidence.repeated(points)
    df = confidence.table(points)
    assert list(df["level"]) == ["c4", "r2.5"] and list(df["repeats"]) == [3, 2]
    c4, r25 = df.iloc[0], df.iloc[1]
    assert c4["request_throughput_rps_mean"] == 2.0
    assert c4["request_throughput_rps_ci_half"] == pytest.approx(4.302653 * 1 / math.sqrt(3))
    assert r25["request_throughput_rps_ci_low"] == pytest.approx(6 - 12.706205 * 1)
    # A missing value leaves its repeat out of that figure only.
    assert c4["ttft_p99_s_mean"] == pytest.approx(0.15)
    assert r25["ttft_p99_s_ci_half"] == 0.0
    assert math.isnan(c4["e2e_p50_s_mean"])  # a figure the table lacks
    assert not confidence.repeated(points.iloc[[0, 3]])
