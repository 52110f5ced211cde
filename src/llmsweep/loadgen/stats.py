"""Per-point summary figures, computed from the request records alone."""

from __future__ import annotations

import math
from collections import Counter
from collections.abc import Iterable

PERCENTILES = (50, 90, 95, 99)
LATENCIES = ("ttft_s", "itl_s", "tpot_s", "e2e_s")


def percentile(sorted_values: list[float], q: float) -> float:
    """Linear interpolation between closest ranks (NumPy's default method)."""
    if not sorted_values:
        return math.nan
    pos = (len(sorted_values) - 1) * q / 100.0
    lo = math.floor(pos)
    hi = min(lo + 1, len(sorted_values) - 1)
    return sorted_values[lo] + (sorted_values[hi] - sorted_values[lo]) * (pos - lo)


def distribution(values: Iterable[float]) -> dict:
    vals = sorted(v for v in values if v is not None)
    out: dict = {"count": len(vals)}
    if not vals:
        return {
            **out,
            "mean": None,
            "min": None,
            "max": None,
            **{f"p{q}": None for q in PERCENTILES},
        }
    out["mean"] = sum(vals) / len(vals)
    out["min"], out["max"] = vals[0], vals[-1]
    for q in PERCENTILES:
        out[f"p{q}"] = percentile(vals, q)
    return out


def summarize(records: list[dict], slo: dict | None = None) -> dict:
    """Throughput over the measurement window, latency distributions, goodput against
    `slo` (ttft_s, tpot_s, e2e_s; None leaves one out), stalls, warm-up excluded.

    The window runs from the first measured request's start to the last one's end.
    """
    measured = [r for r in records if not r.get("warmup")]
    ok = [r for r in measured if r["ok"]]
    out: dict = {
        "requests": len(measured),
        "successful": len(ok),
        "failed": len(measured) - len(ok),
        "errors": dict(Counter(r["error_kind"] for r in measured if not r["ok"])),
    }
    if measured:
        start = min(r["start"] for r in measured)
        end = max(r["start"] + (r["e2e_s"] or 0) for r in measured)
        window = end - start
    else:
        start = end = window = None
    out["window"] = {"start": start, "end": end, "duration_s": window}
    out_tokens = sum(r["output_tokens"] or 0 for r in ok)
    in_tokens = sum(r["input_tokens"] or 0 for r in ok)
    out["output_tokens"] = out_tokens
    out["input_tokens"] = in_tokens
    out["token_sources"] = dict(Counter(r["output_tokens_source"] for r in ok))
    if window:
        out["request_throughput_rps"] = len(ok) / window
        out["output_token_throughput_tps"] = out_tokens / window
    else:
        out["request_throughput_rps"] = out["output_token_throughput_tps"] = None
    for name in LATENCIES:
        if name == "itl_s":
            values = [gap for r in ok for gap in r["itl_s"]]
        else:
            values = [r[name] for r in ok]
        out[name] = distribution(values)
    out["output_tokens_dist"] = distribution(r["output_tokens"] for r in ok)
    out["input_tokens_dist"] = distribution(r["input_tokens"] for r in ok)
    out["queue_s"] = distribution(r["queue_s"] for r in measured if r.get("queue_s") is not None)
    out["warmup_requests"] = len(records) - len(measured)
    out.update(goodput(ok, slo or {}, window))
    out.update(stalls(measured))
    return out


def stalls(measured: list[dict]) -> dict:
    """Requests that waited through a stall of the server (loadgen.stalls), their longest
    wait, and a warning saying so."""
    stalled = [r["stall_gap_s"] for r in measured if r.get("stalled")]
    longest = max(stalled, default=None)
    warning = None
    if stalled:
        warning = (
            f"{len(stalled)} requests stalled: the server sent nothing to any request for "
            f"longer than client.stall_s while they waited (the longest wait {longest:.0f} s)"
            "; it may have hung"
        )
    return {"stalls": len(stalled), "stall_gap_max_s": longest, "stall_warning": warning}


def goodput(ok: list[dict], slo: dict, window: float | None) -> dict:
    """Requests/s meeting every SLO, and the share of requests within each one."""
    limits = {k: v for k, v in slo.items() if v is not None}
    if not limits:
        return {"slo": {}, "goodput_rps": None, "slo_share": {}}
    within = {k: [r for r in ok if r[k] is not None and r[k] <= v] for k, v in limits.items()}
    good = [r for r in ok if all(r[k] is not None and r[k] <= v for k, v in limits.items())]
    n = len(ok) or 1
    return {
        "slo": limits,
        "goodput_rps": len(good) / window if window else None,
        "slo_share": {k: len(v) / n for k, v in within.items()} | {"all": len(good) / n},
    }
