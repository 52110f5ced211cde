"""The run page's live charts: the run's own Prometheus asked for the client service's
figures over the run so far (output tokens/s, TTFT p50 and p99, requests in flight,
errors/s) and, when the GPU exporter reports a GPU, GPU utilisation and memory. The
queries are the Grafana dashboards' (llmsweep.metrics.queries), summed over the run."""

from __future__ import annotations

import math
import time
from urllib.parse import urlencode

from llmsweep.metrics import queries
from llmsweep.util import http_json

MAX_POINTS = 240  # per series: the step grows with the run
DEFAULT_SPAN_S = 3600  # the range shown when the run's start is not known
TIMEOUT_S = 10


class PrometheusError(RuntimeError):
    pass


def specs(run: str, interval: str, gpus: bool) -> list[dict]:
    """The charts: id, title, unit and series (name, PromQL, labels naming each result)."""
    sel = f'run="{run}"'
    p50, p99 = (queries.latency_quantile(q, "ttft", sel, (), interval) for q in (0.5, 0.99))
    charts = [
        chart("output_tokens", "output tokens/s", "tokens/s")
        + [("output tokens/s", queries.output_tokens_per_s(sel, (), interval))],
        chart("ttft", "time to first token", "s") + [("p50", p50), ("p99", p99)],
        chart("in_flight", "requests in flight", "requests")
        + [("in flight", queries.in_flight(sel, ()))],
        chart("errors", "errors/s", "errors/s")
        + [("errors/s", queries.errors_per_s(sel, (), interval))],
    ]
    if gpus:
        gpu = f'{sel}, role="llm_server", exporter="gpu"'
        charts += [
            chart("gpu_util", "GPU utilisation", "%", ("node", "gpu"))
            + [("GPU", queries.gpu_field("GPU_UTIL", gpu))],
            chart("gpu_memory", "GPU memory used", "MiB", ("node", "gpu"))
            + [("GPU", queries.gpu_field("FB_USED", gpu))],
        ]
    return [
        {**head, "series": [{"name": n, "query": q, "legend": head["legend"]} for n, q in series]}
        for head, *series in charts
    ]


def chart(cid: str, title: str, unit: str, legend: tuple = ()) -> list:
    """A chart's head, to which its (name, PromQL) series are added; `legend`: the labels
    that name each series a query returns (one per GPU)."""
    return [{"id": cid, "title": title, "unit": unit, "legend": list(legend)}]


def window(started_at: float | None, now: float, scrape_s: float) -> dict:
    """The range asked for: the run's start to now, at most MAX_POINTS steps; the rate
    window as Grafana's $__rate_interval makes it (step plus a scrape, at least four
    scrapes), so every rate has samples whatever the step."""
    start = started_at if started_at and started_at < now else now - DEFAULT_SPAN_S
    step = max(1, math.ceil((now - start) / MAX_POINTS))
    interval = f"{int(math.ceil(max(step + scrape_s, 4 * scrape_s)))}s"
    return {"start": start, "end": now, "step": step, "interval": interval}


def ask(prometheus: str, path: str, params: dict, headers: dict | None = None) -> list[dict]:
    """The result of one Prometheus API query (asked with `headers`: the run's token);
    PrometheusError when it cannot answer."""
    try:
        url = f"{prometheus}{path}?{urlencode(params)}"
        status, body = http_json(url, timeout=TIMEOUT_S, headers=headers)
    except OSError as exc:
        raise PrometheusError(f"cannot reach the run's Prometheus: {exc}") from None
    if status != 200 or not isinstance(body, dict) or body.get("status") != "success":
        error = body.get("error") if isinstance(body, dict) else body
        raise PrometheusError(f"the run's Prometheus answered {status}: {error}")
    return body["data"]["result"]


def number(text: str) -> float | None:
    """A sample value; None for NaN and infinities (a gap: JSON has no NaN)."""
    value = float(text)
    return value if math.isfinite(value) else None


def gpus_seen(prometheus: str, run: str, rng: dict, headers: dict | None = None) -> bool:
    """Whether the GPU exporter reported a GPU at any time of the range (it stops with its
    deployment's server)."""
    query = {"query": queries.gpus_seen(f'run="{run}"'), **rng}
    result = ask(prometheus, "/api/v1/query_range", query, headers)
    return any((number(v) or 0) > 0 for r in result for _, v in r["values"])


def fetch(
    prometheus: str,
    run: str,
    started_at: float | None,
    scrape_s: float | None,
    now=None,
    headers: dict | None = None,
) -> dict:
    """Every chart's series over the run so far, from the Prometheus at `prometheus` (a URL
    this machine reaches), asked with `headers` (the run's token)."""
    now = time.time() if now is None else now
    span = window(started_at, now, scrape_s or 5)
    rng = {k: span[k] for k in ("start", "end", "step")}
    charts = specs(run, span["interval"], gpus_seen(prometheus, run, rng, headers))
    for c in charts:
        drawn = []
        for s in c["series"]:
            query = {"query": s["query"], **rng}
            for result in ask(prometheus, "/api/v1/query_range", query, headers):
                labels = [result["metric"].get(k, "") for k in s["legend"]]
                drawn.append(
                    {
                        "name": " ".join([s["name"], *labels]) if labels else s["name"],
                        "query": s["query"],
                        "points": [[t, number(v)] for t, v in result["values"]],
                    }
                )
        c["series"] = drawn
    return {"available": True, **span, "charts": charts}
