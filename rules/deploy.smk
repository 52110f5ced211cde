# Runs on the driver's host: it only starts services and drives them over HTTP, and a
# point must never wait in a batch queue while its server holds a GPU.
localrules:
    deployment,


# A checkpoint: a capacity search (sweep.search) picks its points as it runs, and the
# report learns them from the record.
checkpoint deployment:
    input:
        unpack(monitoring_leases),
    output:
        record=str(PATHS.deployment_record("{deployment}")),
    log:
        log_file("deployment", "{deployment}"),
    conda:
        "../envs/llmsweep.yaml"
    resources:
        # Deployments served at once: parallel_deployments, or the profile's global
        # resource of the same name (see the onstart hook).
        llmsweep_deployments=1,
    params:
        deployment=deployment_of,
        points=point_loads,
        sections=lambda wildcards: {k: config[k] for k in DEPLOY_SECTIONS},
        backend=service_backend,
        poll_interval_s=poll_interval_s,
    message:
        "Deployment {params.deployment[label]}: points {params.points}"
    script:
        "../scripts/deploy.py"
