import os
import re
import sys

from llmsweep import config as llmsweep_config
from llmsweep.loadgen import patterns as load_patterns
from llmsweep.loadgen import sweep as llmsweep_sweep
from llmsweep.paths import RunPaths, model_slug
from llmsweep.driver import (
    UNLOCKING_ENV,
    become_driver,
    stop_on_signals,
    unlock_command,
)
from llmsweep.services.controller import Controller

# Validate (and fill defaults) before any job starts; a bad key stops the run here with
# one line, as `llmsweep check-config` says it (SystemExit: Snakemake prints no traceback).
try:
    llmsweep_config.read_config_args(config, workflow.config_settings.config_args)
    llmsweep_config.prepare(config)
except llmsweep_config.ConfigError as exc:
    where = llmsweep_config.source(
        workflow.config_settings.configfiles, workflow.config_settings.config_args
    )
    print(f"llmsweep: {where}: {exc}", file=sys.stderr)
    sys.exit(2)

RUN = config["run"]
RESULTS = "results"
PATHS = RunPaths(RUN, RESULTS)
MODEL_BY_SLUG = {model_slug(m): m for m in config["models"]}
POINTS = {
    (model_slug(p["model"]), p["load"]): p for p in llmsweep_sweep.sweep_points(config)
}


wildcard_constraints:
    model="|".join(re.escape(s) for s in MODEL_BY_SLUG),
    load=load_patterns.LOAD_REGEX,
    other=r"[A-Za-z0-9][A-Za-z0-9._-]*",


def lease_pattern(service):
    """The per-point lease of `service`; temp(), so a finished point holds no lease."""
    return str(PATHS.lease(service, "{model}", "{load}"))


def report_file(name):
    """A file of this run's report folder."""
    return str(PATHS.report_file(name))


def log_file(*parts):
    """A job's log file under this run's logs/."""
    return str(PATHS.log(*parts))


def point_leases(wildcards):
    """The leases a point holds: its LLM server and client service, and the run's
    Pushgateway and Prometheus when monitoring is on."""
    services = ["llm_server", "client_service"]
    if config["monitoring"]["enabled"]:
        services = ["pushgateway", "prometheus", *services]
    return {
        s: lease_pattern(s).format(model=wildcards.model, load=wildcards.load)
        for s in services
    }


def all_summaries():
    """Every point's summary.json."""
    return [str(PATHS.summary(slug, load)) for slug, load in POINTS]


def all_point_plots():
    """Every point's distributions plot."""
    return [str(PATHS.point_plot(slug, load)) for slug, load in POINTS]


def final_targets():
    """The report, and the comparison with report.compare_with when set."""
    targets = [str(PATHS.report_page)]
    other = config["report"]["compare_with"]
    if other:
        targets.append(str(PATHS.comparison(other, ".txt")))
    return targets


def run_dir_of_table(wildcards, output):
    """results/<run> of a rule whose output `table` is in the run's report folder."""
    return str(RunPaths.of_report_file(output.table).root)


def baseline_table(wildcards):
    """The baseline run's points table: declared as an input, so a missing baseline stops
    the run before any job and a changed one is noticed."""
    return str(RunPaths(wildcards.other, RESULTS).report_file("points.csv"))


def point_of(wildcards):
    """The sweep point (model, pattern, clients or rate, repeat) behind the wildcards."""
    return POINTS[(wildcards.model, wildcards.load)]


def sweep_settings(wildcards):
    """The sweep settings this point depends on, and no others: adding a client count or a
    rate must not make finished points look changed."""
    return llmsweep_sweep.point_settings(config, point_of(wildcards))


def describe(wildcards):
    """'with 4 clients' or 'at 2.5 requests/s', for messages."""
    return llmsweep_sweep.describe_load(point_of(wildcards))


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


if workflow.is_main_process and not os.environ.get(UNLOCKING_ENV):
    # Services started by this run stop themselves if this driver dies without its hooks;
    # a lock left by a killed driver is removed with snakemake --unlock.
    become_driver(
        unlock=unlock_command(
            workflow.main_snakefile,
            os.getcwd(),
            workflow.config_settings.configfiles,
            workflow.config_settings.config_args,
        )
    )
    # A lease whose service is gone must be acquired again, which restarts the service.
    for lease in Controller(PATHS).prune():
        print(f"llmsweep: dropped stale lease {lease}", file=sys.stderr)
