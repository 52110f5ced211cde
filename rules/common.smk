import os
import re
import sys
from pathlib import Path

sys.path.insert(0, os.path.join(workflow.basedir, "src"))

from llmsweep import config as llmsweep_config
from llmsweep.paths import RunPaths, model_slug
from llmsweep.driver import become_driver, stop_on_signals
from llmsweep.services.controller import Controller

# Validate (and fill defaults) before any job starts; a bad key stops the run here.
llmsweep_config.prepare(config)

RUN = config["run"]
RESULTS = "results"
PATHS = RunPaths(RUN, RESULTS)
MODEL_BY_SLUG = {model_slug(m): m for m in config["models"]}
POINTS = {
    (model_slug(p["model"]), p["load"]): p for p in llmsweep_config.sweep_points(config)
}


wildcard_constraints:
    model="|".join(re.escape(s) for s in MODEL_BY_SLUG),
    load=r"(c[0-9]+|r[0-9.]+)(_rep[0-9]+)?",
    other=r"[A-Za-z0-9][A-Za-z0-9._-]*",


def point_dir_pattern():
    """results/<run>/bench/{model}/{load}: one folder per sweep point (load: c4, r2.5)."""
    return f"{RESULTS}/{RUN}/bench/{{model}}/{{load}}"


def lease_pattern(service):
    """The per-point lease of `service`; temp(), so a finished point holds no lease."""
    return f"{RESULTS}/{RUN}/services/leases/{service}/{{model}}/{{load}}.json"


def all_summaries():
    """Every point's summary.json."""
    return [
        f"{RESULTS}/{RUN}/bench/{slug}/{load}/summary.json" for slug, load in POINTS
    ]


def all_point_plots():
    """Every point's distributions plot."""
    return [
        f"{RESULTS}/{RUN}/report/points/{slug}/{load}/distributions.png"
        for slug, load in POINTS
    ]


def final_targets():
    """The report, and the comparison with report.compare_with when set."""
    targets = [f"{RESULTS}/{RUN}/report/index.html"]
    other = config["report"]["compare_with"]
    if other:
        targets.append(f"{RESULTS}/{RUN}/report/compare/{other}-vs-{RUN}.txt")
    return targets


def run_dir_of_output(wildcards, output):
    """results/<run> from a rule's output table (results/<run>/report/points.csv)."""
    return str(Path(output.table).parents[1])


def run_dir_of_input(wildcards, input):
    """results/<run> from a rule's input table (results/<run>/report/points.csv)."""
    return str(Path(input.table).parents[1])


def point_of(wildcards):
    """The sweep point (model, pattern, clients or rate, repeat) behind the wildcards."""
    return POINTS[(wildcards.model, wildcards.load)]


def sweep_settings(wildcards):
    """The sweep settings this point depends on, and no others: adding a client count or a
    rate must not make finished points look changed."""
    return llmsweep_config.point_sweep_settings(config, point_of(wildcards))


def describe(wildcards):
    """'with 4 clients' or 'at 2.5 requests/s', for messages."""
    return llmsweep_config.describe_load(point_of(wildcards))


def model_of(wildcards):
    """The model name behind a slug wildcard."""
    return MODEL_BY_SLUG[wildcards.model]


def service_backend(wildcards):
    """local or slurm: services.backend, or with auto the executor's kind (known once
    the DAG is built, hence a function)."""
    chosen = config["services"]["backend"]
    if chosen != "auto":
        return chosen
    plugin = workflow.executor_plugin
    return "slurm" if plugin is not None and plugin.name == "slurm" else "local"


def stop_services():
    """Stop every service of the run (the onsuccess/onerror hooks)."""
    for key in Controller(PATHS).stop_all():
        print(f"llmsweep: stopped {key}", file=sys.stderr)


if workflow.is_main_process:
    # Services started by this run stop themselves if this driver dies without its hooks;
    # a lock left by a killed driver is cleared.
    become_driver()
    # A lease whose service is gone must be acquired again, which restarts the service.
    for lease in Controller(PATHS).prune():
        print(f"llmsweep: dropped stale lease {lease}", file=sys.stderr)
