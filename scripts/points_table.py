"""points_table rule: one tidy row per sweep point."""

import sys

sys.stderr = open(snakemake.log[0], "w", buffering=1)  # noqa: F821

from llmsweep.report.table import write_table  # noqa: E402

write_table(snakemake.input.summaries, snakemake.output.table)  # noqa: F821
