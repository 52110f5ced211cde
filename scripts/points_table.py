"""points_table rule: one tidy row per point, and the run's metadata."""

import sys

sys.stderr = open(snakemake.log[0], "w", buffering=1)  # noqa: F821

from pathlib import Path  # noqa: E402

from llmsweep.report import metadata  # noqa: E402
from llmsweep.report.table import write_table  # noqa: E402
from llmsweep.util import read_json, write_json_atomic  # noqa: E402

sm = snakemake  # noqa: F821
write_table(sm.params.summaries, sm.output.table, sm.output.parquet)
summaries = [read_json(p) for p in sm.params.summaries]
meta = metadata.collect(dict(sm.params.config), summaries, Path(sm.params.run_dir))
write_json_atomic(sm.output.metadata, meta)
