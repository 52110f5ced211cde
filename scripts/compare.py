"""compare rule: this run against report.compare_with, point by point."""

import sys

sys.stderr = open(snakemake.log[0], "w", buffering=1)  # noqa: F821

from pathlib import Path  # noqa: E402

from llmsweep.report.compare import run_compare  # noqa: E402

sm = snakemake  # noqa: F821
text, regressions = run_compare(
    Path(sm.params.baseline), Path(sm.params.run_dir), sm.params.threshold,
    Path(sm.output.text), Path(sm.output.page),
)  # fmt: skip
print(text, file=sys.stderr)
