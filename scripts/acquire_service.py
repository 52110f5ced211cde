"""acquire_* rules: ensure the run's Pushgateway or Prometheus, write a deployment's lease."""

import signal
import sys

# SIGTERM (Snakemake cancelling the job) unwinds like Ctrl-C, so a submitted job is cancelled.
signal.signal(signal.SIGTERM, lambda *_: sys.exit(143))
sys.stderr = open(snakemake.log[0], "w", buffering=1)  # noqa: F821

from llmsweep.acquire import acquire  # noqa: E402

acquire(
    snakemake.config,  # noqa: F821
    snakemake.params.service,  # noqa: F821
    snakemake.output.lease,  # noqa: F821
    backend=snakemake.params.backend,  # noqa: F821
    resources=dict(snakemake.resources.items()),  # noqa: F821
    poll_interval_s=snakemake.params.poll_interval_s,  # noqa: F821
)
