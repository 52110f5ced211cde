"""acquire_* rules: ensure the run's Pushgateway or Prometheus, write a deployment's lease."""

import signal
import sys

# SIGTERM (Snakemake cancelling the job) unwinds like Ctrl-C, so a submitted job is cancelled.
signal.signal(signal.SIGTERM, lambda *_: sys.exit(143))
sys.stderr = open(snakemake.log[0], "w", buffering=1)  # noqa: F821

from llmsweep.acquire import FAILURES, acquire  # noqa: E402

sm = snakemake  # noqa: F821
try:
    acquire(
        sm.config,
        sm.params.service,
        sm.output.lease,
        backend=sm.params.backend,
        resources=dict(sm.resources.items()),
        poll_interval_s=sm.params.poll_interval_s,
    )
except FAILURES as exc:  # SLURM's or the service's own words, without a traceback
    print(f"llmsweep: {sm.params.service}: {exc}", file=sys.stderr)
    sys.exit(1)
