"""One summary per sweep point to the Pushgateway, grouped by run, model and clients."""

from __future__ import annotations

from prometheus_client import CollectorRegistry, Gauge, push_to_gateway
from prometheus_client.exposition import default_handler

JOB = "llmsweep_point"


def with_headers(extra: dict[str, str]):
    """A push handler that adds `extra` (the run's token) to the request's headers."""

    def handler(url, method, timeout, headers, data):
        return default_handler(url, method, timeout, [*headers, *extra.items()], data)

    return handler


def push_summary(
    gateway_url: str, grouping: dict, summary: dict, headers: dict | None = None
) -> None:
    """PUT one point's figures under its grouping key (run, model, clients or rate, repeat),
    sending `headers` (the run's token)."""
    registry = CollectorRegistry()

    def gauge(name: str, doc: str, value) -> None:
        if value is not None:
            Gauge(name, doc, registry=registry).set(value)

    gauge("llmsweep_point_requests", "Measured requests of the point", summary["requests"])
    gauge("llmsweep_point_failed_requests", "Failed requests of the point", summary["failed"])
    gauge("llmsweep_point_goodput_rps", "Requests/s meeting every SLO", summary.get("goodput_rps"))
    gauge(
        "llmsweep_point_request_throughput_rps",
        "Successful requests per second over the window",
        summary["request_throughput_rps"],
    )
    gauge(
        "llmsweep_point_output_token_throughput_tps",
        "Output tokens per second over the window (all clients)",
        summary["output_token_throughput_tps"],
    )
    gauge(
        "llmsweep_point_window_start_seconds",
        "Window start (Unix time)",
        summary["window"]["start"],
    )
    gauge("llmsweep_point_window_end_seconds", "Window end (Unix time)", summary["window"]["end"])
    quantile = Gauge(
        "llmsweep_point_latency_seconds",
        "Latency percentiles of the point",
        ["metric", "quantile"],
        registry=registry,
    )
    for metric in ("ttft", "itl", "tpot", "e2e"):
        dist = summary[f"{metric}_s"]
        for q in (50, 90, 95, 99):
            if dist.get(f"p{q}") is not None:
                quantile.labels(metric, f"0.{q}").set(dist[f"p{q}"])
    push_to_gateway(
        gateway_url.removeprefix("http://"),
        job=JOB,
        grouping_key={k: str(v) for k, v in grouping.items()},
        registry=registry,
        timeout=10,
        handler=with_headers(headers or {}),
    )
