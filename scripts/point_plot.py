"""point_plot rule: TTFT and ITL distributions of one point."""

import sys

sys.stderr = open(snakemake.log[0], "w", buffering=1)  # noqa: F821

from llmsweep.benchmark import read_records  # noqa: E402
from llmsweep.report.plots import distributions  # noqa: E402

sm = snakemake  # noqa: F821
title = f"{sm.params.label} {sm.params.describe}"
# requests.jsonl is no rule's output (the deployment record, its input, is): a param.
distributions(read_records(sm.params.requests), sm.output.plot, title)
