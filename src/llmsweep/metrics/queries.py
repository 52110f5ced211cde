"""The PromQL of the client service's live figures and of the GPU exporter, written once:
the Grafana dashboards (monitoring.dashboards) and the web front end's run page chart the
same queries.

`sel` is the series selector's inside (run="demo", model=~"$model"), `by` the labels to
keep (empty: one series for all of them), `interval` the rate window ($__rate_interval in
Grafana, seconds for the run page).
"""

from __future__ import annotations

from collections.abc import Sequence


def _sum(by: Sequence[str], inner: str) -> str:
    return f"sum by ({', '.join(by)}) ({inner})" if by else f"sum({inner})"


def latency_quantile(q: float, name: str, sel: str, by: Sequence[str], interval: str) -> str:
    """The q-quantile of a request latency histogram (name: ttft, itl, e2e)."""
    rate = f"rate(llmsweep_request_{name}_seconds_bucket{{{sel}}}[{interval}])"
    return f"histogram_quantile({q}, {_sum(['le', *by], rate)})"


def output_tokens_per_s(sel: str, by: Sequence[str], interval: str) -> str:
    """Aggregate output token throughput of all clients."""
    return _sum(by, f"rate(llmsweep_output_tokens_total{{{sel}}}[{interval}])")


def in_flight(sel: str, by: Sequence[str]) -> str:
    """Requests sent and not finished."""
    return _sum(by, f"llmsweep_requests_in_flight{{{sel}}}")


def requests_per_s_by_outcome(sel: str, by: Sequence[str], interval: str) -> str:
    return _sum([*by, "outcome"], f"rate(llmsweep_requests_total{{{sel}}}[{interval}])")


def errors_per_s(sel: str, by: Sequence[str], interval: str) -> str:
    """Failed requests per second; 0 (not nothing) while none failed."""
    failed = _sum(by, f'rate(llmsweep_requests_total{{{sel}, outcome!="ok"}}[{interval}])')
    every = _sum(by, f"rate(llmsweep_requests_total{{{sel}}}[{interval}])")
    return f"{failed} or {every} * 0"


def gpu_field(name: str, sel: str) -> str:
    """A DCGM field of every GPU (llmsweep's GPU exporter writes DCGM's names)."""
    return f"DCGM_FI_DEV_{name}{{{sel}}}"


def gpu_memory_share(sel: str) -> str:
    used, free = gpu_field("FB_USED", sel), gpu_field("FB_FREE", sel)
    return f"{used} / ({used} + {free})"


def gpus_seen(sel: str) -> str:
    """GPUs the exporter reports (0 where it found no GPU or driver)."""
    return f"sum(llmsweep_gpus{{{sel}}}) or count(DCGM_FI_DEV_GPU_UTIL{{{sel}}})"
