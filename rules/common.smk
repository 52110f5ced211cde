import os
import re
import sys
import warnings

from llmsweep import config as llmsweep_config
from llmsweep import deployments as llmsweep_deployments
from llmsweep import gpus as llmsweep_gpus
from llmsweep import util as llmsweep_util
from llmsweep.loadgen import patterns as load_patterns
from llmsweep.loadgen import sweep as llmsweep_sweep
from llmsweep.paths import RunPaths
from llmsweep.driver import (
    UNLOCKING_ENV,
    become_driver,
    keep_heartbeat,
    stop_on_signals,
    unlock_command,
)
from llmsweep.services.controller import Controller


# Validate (and fill defaults) before any job starts; a bad key stops the run here with
# one line, as `llmsweep check-config` says it (SystemExit: Snakemake prints no traceback).
def one_line_warning(message, category, filename, lineno, file=None, line=None):
    """Config warnings as one line each, without Python's source line."""
    print(f"llmsweep: warning: {message}", file=sys.stderr)


warnings.showwarning = one_line_warning

try:
    llmsweep_config.read_config_args(config, workflow.config_settings.config_args)
    llmsweep_config.recipe_engine(
        config,
        [
            llmsweep_config.read_file(f)
            for f in workflow.config_settings.configfiles or ()
        ]
        + [
            {str(a).partition("=")[0]: None}
            for a in workflow.config_settings.config_args or ()
        ],
    )
    llmsweep_config.prepare(config)
    DEPLOYMENT_LIST = llmsweep_deployments.expand(config)
except llmsweep_config.ConfigError as exc:
    where = llmsweep_config.source(
        workflow.config_settings.configfiles, workflow.config_settings.config_args
    )
    print(f"llmsweep: {where}: {exc}", file=sys.stderr)
    sys.exit(2)

RUN = config["run"]
RESULTS = "results"
PATHS = RunPaths(RUN, RESULTS)
DEPLOYMENTS = llmsweep_deployments.by_slug(DEPLOYMENT_LIST)
POINTS = {
    (p["deployment"], p["load"]): p
    for p in llmsweep_sweep.sweep_points(config, DEPLOYMENT_LIST)
}
DEPLOY_SECTIONS = ("sweep", "warmup", "workload", "slo", "client")


wildcard_constraints:
    deployment="|".join(re.escape(s) for s in DEPLOYMENTS),
    load=load_patterns.LOAD_REGEX,
    other=r"[A-Za-z0-9][A-Za-z0-9._-]*",


def lease_pattern(service):
    """A deployment's lease on the run's `service`; temp(), so a finished deployment holds
    no lease."""
    return str(PATHS.lease(service, "{deployment}"))


def report_file(name):
    """A file of this run's report folder."""
    return str(PATHS.report_file(name))


def log_file(*parts):
    """A job's log file under this run's logs/."""
    return str(PATHS.log(*parts))


def monitoring_leases(wildcards):
    """The leases a deployment holds on the run's Pushgateway and Prometheus (none with
    monitoring off)."""
    if not config["monitoring"]["enabled"]:
        return {}
    return {
        s: lease_pattern(s).format(deployment=wildcards.deployment)
        for s in ("pushgateway", "prometheus")
    }


def all_deployment_records():
    """Every deployment's record (written once all its points are finished)."""
    return [str(PATHS.deployment_record(slug)) for slug in DEPLOYMENTS]


def deployment_loads(slug):
    """The loads (folder names) of deployment `slug`'s points, in order: its listed ones,
    and with sweep.search those its capacity search ran, known once its job (a checkpoint)
    wrote its record."""
    if not config["sweep"]["search"]:
        return [load for s, load in POINTS if s == slug]
    record = checkpoints.deployment.get(deployment=slug).output.record
    return llmsweep_util.read_json(record)["points"]


def all_summaries(wildcards, input):
    """Every point's summary.json (written by its deployment's job), from the deployment
    records that are the points_table rule's input."""
    return [
        str(PATHS.summary(record["slug"], load))
        for record in map(llmsweep_util.read_json, input.records)
        for load in record["points"]
    ]


def all_point_plots(wildcards):
    """Every point's distributions plot."""
    return [
        str(PATHS.point_plot(slug, load))
        for slug in DEPLOYMENTS
        for load in deployment_loads(slug)
    ]


def all_slice_plots(wildcards):
    """Every point's time slices plot."""
    return [
        str(PATHS.point_slices_plot(slug, load))
        for slug in DEPLOYMENTS
        for load in deployment_loads(slug)
    ]


def interval_table():
    """The points_table rule's intervals.csv (each load level's mean and 95 % interval
    over its repeats) where the sweep repeats points; nothing when it does not."""
    if config["sweep"]["repeats"] < 2:
        return {}
    table = report(
        str(PATHS.intervals), caption="../report/intervals.rst", category="Tables"
    )
    return {"intervals": table}


def turn_table():
    """The points_table rule's turns.csv (each multi-turn point's figures per turn) where
    the sweep has multi-turn points (sweep.conversations); nothing when it has none."""
    if not config["sweep"]["conversations"]:
        return {}
    table = report(str(PATHS.turns), caption="../report/turns.rst", category="Tables")
    return {"turns": table}


def turn_table_input():
    """turns.csv for the report rule, where the points_table rule writes it."""
    return {"turns": str(PATHS.turns)} if config["sweep"]["conversations"] else {}


def deployment_record(wildcards):
    """The record of wildcards.deployment."""
    return str(PATHS.deployment_record(wildcards.deployment))


def requests_of(wildcards):
    """requests.jsonl of the point wildcards.deployment, wildcards.load."""
    return str(PATHS.requests(wildcards.deployment, wildcards.load))


def summary_of(wildcards):
    """summary.json of the point wildcards.deployment, wildcards.load."""
    return str(PATHS.summary(wildcards.deployment, wildcards.load))


def deployment_of(wildcards):
    """The deployment (slug, engine, model, gpus, settings, label) behind the wildcard."""
    return DEPLOYMENTS[wildcards.deployment]


def deployment_label(wildcards):
    """The deployment's readable name: its model and what sets it apart."""
    return DEPLOYMENTS[wildcards.deployment]["label"]


def point_loads(wildcards):
    """The loads (folder names) of the deployment's listed points, in order (a capacity
    search adds its own as it runs)."""
    return [load for slug, load in POINTS if slug == wildcards.deployment]


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
    """The sweep point (deployment, pattern, clients or rate, repeat) behind the wildcards:
    a listed one, or one a capacity search ran."""
    key = (wildcards.deployment, wildcards.load)
    if key in POINTS:
        return POINTS[key]
    return llmsweep_sweep.searched_point(
        config, DEPLOYMENTS[wildcards.deployment], wildcards.load
    )


def describe(wildcards):
    """'with 4 clients' or 'at 2.5 requests/s', for messages."""
    return llmsweep_sweep.describe_load(point_of(wildcards))


def poll_interval_s(wildcards):
    """Seconds between looks at the SLURM queue: the profile's
    seconds-between-status-checks, shared with Snakemake's SLURM executor."""
    remote = workflow.remote_execution_settings
    return getattr(remote, "seconds_between_status_checks", None) or 10


def parallel_deployments(backend):
    """Deployments served at once: parallel_deployments, else 4 on SLURM and, locally, the
    GPUs visible divided by the GPUs per server (one at a time without a GPU)."""
    if config["parallel_deployments"]:
        return config["parallel_deployments"]
    if backend == "slurm":
        return 4
    per_server = max([d["gpus"] or 1 for d in DEPLOYMENT_LIST] or [1])
    return max(1, llmsweep_gpus.visible() // per_server)


LIMIT = "llmsweep_deployments"  # the resource each deployment job takes one of
LIMITS = {}  # the default limit by backend, once worked out


def limit_deployments(backend):
    """Limit the deployments served at once: parallel_deployments when set, else the
    profile's or --resources' llmsweep_deployments when given, else the default for
    `backend`. Called while the Snakefile is read (for the local default, so the scheduler
    counts the resource) and again at the start, when the executor is known."""
    if not config["parallel_deployments"] and LIMIT in USER_RESOURCES:
        return
    if backend not in LIMITS:  # asks NVML locally: once per process
        LIMITS[backend] = parallel_deployments(backend)
    limit = LIMITS[backend]
    workflow.register_resource(LIMIT, limit)
    scheduler = workflow.scheduler
    if scheduler is not None:  # the scheduler copied the global resources when created
        scheduler.global_resources[LIMIT] = limit
        print(f"llmsweep: up to {limit} deployment(s) at once", file=sys.stderr)


USER_RESOURCES = set(workflow.global_resources)
if workflow.is_main_process:
    limit_deployments("local")


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
