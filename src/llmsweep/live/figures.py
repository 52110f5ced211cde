"""A running point's live figures, from its request records as they arrive, and a finished
point's figures from its summary, under the same names.

PointFigures keeps running totals as records arrive (O(1) per record); figures() sorts only
the latencies of the last WINDOW_S seconds of completed requests, so calling it every few
seconds costs little however long the point runs.
"""

from __future__ import annotations

import itertools
import time
from collections import Counter, deque

from llmsweep.loadgen.stats import percentile

WINDOW_S = 10.0  # TTFT and ITL p50 are of the requests completed in the last 10 s
MAX_WINDOW_RECORDS = 2000  # the most recent successful requests kept for that window
MAX_WINDOW_GAPS = 20000  # inter-token gaps sorted at most, the most recent ones


class PointFigures:
    """Running totals of one point's records, and its live figures.

    `duration_s`: the point's measured duration when time-bound (sweep.duration_s), else
    None; `warmup_s`: its warm-up time; `max_s`: sweep.max_point_duration_s, the bound on
    the whole point; `started_at`: when it was handed to the client service.
    """

    def __init__(
        self,
        duration_s: float | None = None,
        warmup_s: float = 0,
        max_s: float | None = None,
        started_at: float | None = None,
    ):
        self.duration_s, self.warmup_s, self.max_s = duration_s, warmup_s, max_s
        self.started_at = time.time() if started_at is None else started_at
        self.done = 0  # every record, warm-up too, as the client service counts them
        self.measured = 0
        self.successful = 0
        self.errors: Counter = Counter()
        self.output_tokens = 0
        self.first_start: float | None = None  # the first measured request's start
        self.last_end: float | None = None
        # (end, ttft, itl gaps) of the most recent successful measured requests
        self.recent: deque = deque(maxlen=MAX_WINDOW_RECORDS)

    def add(self, records: list[dict]) -> None:
        for rec in records:
            self.done += 1
            if rec.get("warmup"):
                continue
            self.measured += 1
            start = rec["start"]
            if self.first_start is None or start < self.first_start:
                self.first_start = start
            if not rec["ok"]:
                self.errors[rec.get("error_kind") or "error"] += 1
                continue
            self.successful += 1
            self.output_tokens += rec.get("output_tokens") or 0
            end = start + (rec.get("e2e_s") or 0)
            self.last_end = end if self.last_end is None else max(self.last_end, end)
            self.recent.append((end, rec.get("ttft_s"), rec.get("itl_s") or ()))

    def window(self) -> tuple[list[float], list[float]]:
        """TTFTs and inter-token gaps of the requests completed in the last WINDOW_S seconds
        of completions (the most recent MAX_WINDOW_GAPS gaps)."""
        if self.last_end is None:
            return [], []
        since = self.last_end - WINDOW_S
        inside = [r for r in reversed(self.recent) if r[0] >= since]
        ttfts = sorted(r[1] for r in inside if r[1] is not None)
        gaps = sorted(itertools.islice((g for r in inside for g in r[2]), MAX_WINDOW_GAPS))
        return ttfts, gaps

    def eta(self, now: float, total: int | None) -> tuple[float | None, float | None]:
        """(seconds until the point ends, seconds of its measured time left when time-bound).

        Count-bound: the requests left at the completion rate so far. Time-bound: the time
        left of sweep.duration_s from the first measured request (or from the end of the
        warm-up time). Either is capped by max_point_duration_s."""
        elapsed = now - self.started_at
        guesses = []
        if total and self.done and elapsed > 0:
            guesses.append(max(0.0, (total - self.done) * elapsed / self.done))
        time_left = None
        if self.duration_s:
            begin = self.first_start or self.started_at + self.warmup_s
            time_left = max(0.0, begin + self.duration_s - now)
            guesses.append(time_left)
        if guesses and self.max_s:
            guesses.append(max(0.0, self.started_at + self.max_s - now))
        return (min(guesses) if guesses else None), time_left

    def figures(self, now: float, total: int | None = None, in_flight: int | None = None) -> dict:
        """The live figures at `now`: `total` is the requests the point sends at most (warm-up
        included), `in_flight` the client service's requests in flight."""
        ttfts, gaps = self.window()
        measuring = now - self.first_start if self.first_start is not None else 0
        eta, time_left = self.eta(now, total)
        return {
            "requests_done": self.done,
            "requests_total": total,
            "measured": self.measured,
            "successful": self.successful,
            "errors": sum(self.errors.values()),
            "errors_by_kind": dict(self.errors),
            "requests_per_s": self.successful / measuring if measuring > 0 else None,
            "output_tokens_per_s": self.output_tokens / measuring if measuring > 0 else None,
            "ttft_p50_s": percentile(ttfts, 50) if ttfts else None,
            "itl_p50_s": percentile(gaps, 50) if gaps else None,
            "window_s": WINDOW_S,
            "window_requests": len(ttfts),
            "in_flight": in_flight,
            "elapsed_s": now - self.started_at,
            "time_left_s": time_left,
            "eta_s": eta,
        }


def of_summary(summary: dict) -> dict:
    """A finished point's figures from its summary.json, named as the live ones (the whole
    point's percentiles, not a window's)."""
    point = summary.get("point") or {}
    started, finished = point.get("started_at"), point.get("finished_at")
    return {
        "requests": summary["requests"],
        "successful": summary["successful"],
        "errors": summary["failed"],
        "errors_by_kind": summary.get("errors") or {},
        "requests_per_s": summary.get("request_throughput_rps"),
        "output_tokens_per_s": summary.get("output_token_throughput_tps"),
        "ttft_p50_s": summary["ttft_s"]["p50"],
        "ttft_p99_s": summary["ttft_s"]["p99"],
        "itl_p50_s": summary["itl_s"]["p50"],
        "e2e_p50_s": summary["e2e_s"]["p50"],
        "peak_in_flight": point.get("peak_in_flight"),
        "started_at": started,
        "finished_at": finished,
        "duration_s": finished - started if started and finished else None,
    }
