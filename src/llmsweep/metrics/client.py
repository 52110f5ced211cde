"""The client service's live metrics, created once per process (base units, few labels)."""

from __future__ import annotations

from prometheus_client import Counter, Gauge, Histogram

from llmsweep.loadgen.patterns import LEVEL_KEYS

# A point's level under its pattern's key (clients, rate, time_scale), the others empty.
LABELS = ("run", "model", *LEVEL_KEYS, "engine")
# Latencies of LLM requests span milliseconds (a token) to minutes (a long answer in a queue).
LATENCY_BUCKETS = (
    0.005,
    0.01,
    0.025,
    0.05,
    0.1,
    0.25,
    0.5,
    1,
    2.5,
    5,
    10,
    30,
    60,
    120,
    300,
    600,
)

TTFT = Histogram(
    "llmsweep_request_ttft_seconds",
    "Time to first generated token",
    LABELS,
    buckets=LATENCY_BUCKETS,
)
ITL = Histogram(
    "llmsweep_request_itl_seconds",
    "Gap between successive streamed tokens",
    LABELS,
    buckets=LATENCY_BUCKETS,
)
E2E = Histogram(
    "llmsweep_request_e2e_seconds",
    "Request latency, sent to last token",
    LABELS,
    buckets=LATENCY_BUCKETS,
)
REQUESTS = Counter("llmsweep_requests_total", "Finished requests by outcome", LABELS + ("outcome",))
OUTPUT_TOKENS = Counter(
    "llmsweep_output_tokens_total", "Output tokens reported by the server", LABELS
)
IN_FLIGHT = Gauge("llmsweep_requests_in_flight", "Requests sent and not yet finished", LABELS)


def observe(labels: dict, rec: dict) -> None:
    """Record one finished request."""
    values = [str(labels[k]) for k in LABELS]
    REQUESTS.labels(*values, "ok" if rec["ok"] else rec["error_kind"]).inc()
    if not rec["ok"] or rec.get("warmup"):
        return
    TTFT.labels(*values).observe(rec["ttft_s"])
    E2E.labels(*values).observe(rec["e2e_s"])
    itl = ITL.labels(*values)
    for gap in rec["itl_s"]:
        itl.observe(gap)
    OUTPUT_TOKENS.labels(*values).inc(rec["output_tokens"] or 0)
