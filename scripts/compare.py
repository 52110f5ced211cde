"""compare rule: this run against report.compare_with, point by point."""

import sys

sys.stderr = open(snakemake.log[0], "w", buffering=1)  # noqa: F821

from pathlib import Path  # noqa: E402

from llmsweep.paths import RunPaths  # noqa: E402
from llmsweep.report.compare import run_compare  # noqa: E402

sm = snakemake  # noqa: F821
text, regressions = run_compare(
    RunPaths.of_report_file(sm.input.baseline).root,
    RunPaths.of_report_file(sm.input.table).root,
    sm.params.threshold,
    Path(sm.output.text),
    Path(sm.output.page),
)
print(text, file=sys.stderr)
