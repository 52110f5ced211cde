"""report rule: plots and the report page from the tidy table."""

import sys

sys.stderr = open(snakemake.log[0], "w", buffering=1)  # noqa: F821

from llmsweep.report.page import build_report  # noqa: E402

sm = snakemake  # noqa: F821
build_report(sm.input.table, sm.output.throughput, sm.output.latency, sm.output.page, sm.params.run)
