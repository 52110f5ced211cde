"""report rule: run-level plots and the report page."""

import sys

sys.stderr = open(snakemake.log[0], "w", buffering=1)  # noqa: F821

from llmsweep.report.page import PLOTS, build_report  # noqa: E402

sm = snakemake  # noqa: F821
inputs = {
    k: sm.input[k] for k in ("table", "deployments", "metadata", "turns") if k in sm.input.keys()
}
outputs = {k: sm.output[k] for k in (*PLOTS, "data", "page")}
point_plots, slice_plots = list(sm.input.point_plots), list(sm.input.slice_plots)
build_report(inputs, point_plots, outputs, sm.params.run, slice_plots)
