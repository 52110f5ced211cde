import os

from snakemake.utils import min_version

from llmsweep.live.plan import write_plan

min_version("9.0")


# Relative to the workflow, so --directory can point anywhere.
configfile: os.path.join(workflow.basedir, "config", "config.yaml")


report: "report/workflow.rst"


include: "rules/common.smk"
include: "rules/services.smk"
include: "rules/deploy.smk"
include: "rules/report.smk"


onstart:
    stop_on_signals(stop_services)
    # Services on other hosts see this driver through its heartbeat file (not written
    # by a dry run, which starts nothing).
    keep_heartbeat(PATHS.driver_heartbeat)
    limit_deployments(service_backend(None))
    # The run's config and points, for `llmsweep status` and the run page (llmsweep.live).
    write_plan(PATHS, config)


onsuccess:
    stop_services()


onerror:
    stop_services()


rule all:
    default_target: True
    input:
        final_targets(),
