"""acquire_* rules: ensure the service, write this point's lease."""

import sys

sys.stderr = open(snakemake.log[0], "w", buffering=1)  # noqa: F821

from llmsweep.acquire import acquire  # noqa: E402

acquire(
    snakemake.config,  # noqa: F821
    snakemake.params.service,  # noqa: F821
    snakemake.output.lease,  # noqa: F821
    model=snakemake.params.get("model"),  # noqa: F821
    llm_lease=snakemake.input.get("llm_server"),  # noqa: F821
)
