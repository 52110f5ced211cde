"""benchmark rule: run one sweep point through the client service."""

import sys

sys.stderr = open(snakemake.log[0], "w", buffering=1)  # noqa: F821

from llmsweep.benchmark import run_point  # noqa: E402

sm = snakemake  # noqa: F821
run_point(
    {**sm.params.point, "run": sm.params.run, "engine": sm.params.engine},
    {k: dict(sm.params[k]) for k in ("sweep", "warmup", "workload", "slo", "client")},
    leases=dict(sm.input.items()),  # pushgateway and prometheus only with monitoring on
    requests_path=sm.output.requests,
    summary_path=sm.output.summary,
)
