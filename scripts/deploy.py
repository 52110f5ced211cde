"""deployment rule: run one deployment's unfinished points on its own server, then stop it."""

import signal
import sys

# SIGTERM (Snakemake cancelling the job) unwinds like Ctrl-C: the services are stopped.
signal.signal(signal.SIGTERM, lambda *_: sys.exit(143))
sys.stderr = open(snakemake.log[0], "w", buffering=1)  # noqa: F821

from llmsweep import deploy  # noqa: E402
from llmsweep.util import read_json  # noqa: E402

sm = snakemake  # noqa: F821
try:
    deploy.run(
        sm.config,
        dict(sm.params.deployment),
        {name: read_json(path) for name, path in sm.input.items()},  # Pushgateway, Prometheus
        sm.output.record,
        backend=sm.params.backend,
        resources=dict(sm.resources.items()),
        poll_interval_s=sm.params.poll_interval_s,
    )
except deploy.DeploymentFailed as exc:
    print(f"llmsweep: {exc}", file=sys.stderr)
    sys.exit(1)
