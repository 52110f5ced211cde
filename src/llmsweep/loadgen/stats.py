"""Per-point summary figures, computed from the request records alone."""

from __future__ import annotations

import math
from collections import Counter
from collections.abc import Iterable

PERCENTILES = (50, 90, 95, 99)
LATENCIES = ("ttft_s", "itl_s", "tpot_s", "e2e_s")
# A window cut into more slices than this gets wider slices (summary.json's slices say
# where each starts and ends): a week-long point at 1 s slices would fill summary.json.
MAX_SLICES = 1000
# The latency percentiles of each time slice.
SLICE_LATENCIES = {"ttft_s": (50, 99), "e2e_s": (50, 99)}


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


def summarize(records: list[dict], slo: dict | None = None, slice_s: float | None = None) -> dict:
    """Throughput over the measurement window, latency distributions, goodput against
    `slo` (ttft_s, tpot_s, e2e_s; None leaves one out), stalls, warm-up excluded, and
    the same figures per time slice of `slice_s` seconds (none without it: time_slices).

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
    out["slice_s"] = slice_s
    out["slices"] = time_slices(records, slice_s) if slice_s else []
    return out


def slices_of(summary: dict, records: list[dict], slice_s: float) -> list[dict]:
    """A point's time slices of `slice_s` seconds: its summary's when cut at that width,
    else cut anew from its records (a summary from before slices or of another slice_s:
    slice_s shapes no point, so a finished point is not run again when it changes)."""
    if summary.get("slice_s") == slice_s:
        return summary["slices"]
    return time_slices(records, slice_s)


def _end(record: dict) -> float:
    """When a request finished (a failed one without an E2E: when it started)."""
    return record["start"] + (record["e2e_s"] or 0)


def _chunk_times(record: dict) -> list[float]:
    """When each content chunk of a successful request arrived: the first at its TTFT, the
    rest at its inter-token gaps; at its end when it has no TTFT."""
    if record["ttft_s"] is None:
        return [_end(record)]
    times = [record["start"] + record["ttft_s"]]
    for gap in record["itl_s"] or []:
        times.append(times[-1] + gap)
    return times


def time_slices(records: list[dict], slice_s: float) -> list[dict]:
    """The measurement window (warm-up excluded) cut into slices of `slice_s` seconds (of
    window / MAX_SLICES when that is wider), the last one ending with the window; a rest
    shorter than half a slice joins the slice before it (alone, its rates would jump on a
    handful of requests). Per slice: its start and end in seconds from the window's start,
    the requests that finished in it (failed ones too; a request belongs to the slice of
    its end, the window's end to the last slice), successful requests/s, output tokens/s,
    and the TTFT and E2E p50 and p99 of the successful requests that finished in it.

    Output tokens count where they were generated: each successful request's output
    tokens are spread evenly over its content chunks, each at the time it arrived, so a
    long request adds to every slice it streamed in, not to its last. Summed over the
    slices they are the summary's output_tokens.
    """
    measured = [r for r in records if not r.get("warmup")]
    if not measured:
        return []
    start = min(r["start"] for r in measured)
    window = max(_end(r) for r in measured) - start
    width = max(slice_s, window / MAX_SLICES)
    count = max(1, min(MAX_SLICES, math.ceil(window / width)))
    if count > 1 and window - (count - 1) * width < width / 2:
        count -= 1

    def index(t: float) -> int:
        return min(max(int((t - start) // width), 0), count - 1)

    finished: list[list[dict]] = [[] for _ in range(count)]
    tokens = [0.0] * count
    for r in measured:
        finished[index(_end(r))].append(r)
        if r["ok"] and r["output_tokens"]:
            times = _chunk_times(r)
            for t in times:
                tokens[index(t)] += r["output_tokens"] / len(times)
    slices = []
    for k in range(count):
        lo, hi = k * width, (window if k == count - 1 else (k + 1) * width)
        duration = hi - lo
        ok = [r for r in finished[k] if r["ok"]]
        part = {
            "start_s": lo,
            "end_s": hi,
            "requests": len(finished[k]),
            "successful": len(ok),
            "failed": len(finished[k]) - len(ok),
            "output_tokens": tokens[k],
            "request_throughput_rps": len(ok) / duration if duration > 0 else None,
            "output_token_throughput_tps": tokens[k] / duration if duration > 0 else None,
        }
        for name, qs in SLICE_LATENCIES.items():
            values = sorted(r[name] for r in ok if r[name] is not None)
            for q in qs:
                part[f"{name.removesuffix('_s')}_p{q}_s"] = (
                    percentile(values, q) if values else None
                )
        slices.append(part)
    return slices


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
