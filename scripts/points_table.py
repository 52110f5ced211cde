"""points_table rule: one tidy row per point, one row per deployment (the GPU time its
server held), the run's metadata, with repeated points each load level's intervals, and
with multi-turn points each one's figures per turn."""

import sys

sys.stderr = open(snakemake.log[0], "w", buffering=1)  # noqa: F821

from pathlib import Path  # noqa: E402

from llmsweep.report import confidence, deployments, metadata, turns  # noqa: E402
from llmsweep.report.table import write_table  # noqa: E402
from llmsweep.util import read_json, write_json_atomic  # noqa: E402

sm = snakemake  # noqa: F821
# Summaries are no rule's output (the deployment records are): they come as a param.
summary_paths = list(sm.params.summaries)
roles = deployments.search_roles(list(sm.input.records))
points = write_table(summary_paths, sm.output.table, sm.output.parquet, roles)
if "intervals" in sm.output.keys():  # declared where the sweep repeats points
    confidence.write(points, sm.output.intervals)
if "turns" in sm.output.keys():  # declared where the sweep has multi-turn points
    turns.write(summary_paths, sm.output.turns)
deps = deployments.write(list(sm.input.records), sm.output.deployments)
summaries = [read_json(p) for p in summary_paths]
meta = metadata.collect(dict(sm.params.config), summaries, Path(sm.params.run_dir), deps)
write_json_atomic(sm.output.metadata, meta)
