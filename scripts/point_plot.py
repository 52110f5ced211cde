"""point_plot rule: TTFT and ITL distributions of one point, and its time slices."""

import sys

sys.stderr = open(snakemake.log[0], "w", buffering=1)  # noqa: F821

from llmsweep.benchmark import read_records  # noqa: E402
from llmsweep.loadgen.stats import slices_of  # noqa: E402
from llmsweep.report.plots import distributions, time_slices  # noqa: E402
from llmsweep.util import read_json  # noqa: E402

sm = snakemake  # noqa: F821
title = f"{sm.params.label} {sm.params.describe}"
# requests.jsonl and summary.json are no rule's output (the deployment record, its input,
# is): params.
records = read_records(sm.params.requests)
distributions(records, sm.output.plot, title)
slices = slices_of(read_json(sm.params.summary), records, sm.params.slice_s)
time_slices(slices, sm.output.slices, title)
