"""report rule: run-level plots and the report page."""

import sys

sys.stderr = open(snakemake.log[0], "w", buffering=1)  # noqa: F821

from llmsweep.report.page import build_report  # noqa: E402

sm = snakemake  # noqa: F821
outputs = {
    k: sm.output[k]
    for k in ("throughput", "latency", "throughput_latency", "errors", "data", "page")
}
build_report(sm.input.table, sm.input.metadata, list(sm.input.point_plots), outputs, sm.params.run)
