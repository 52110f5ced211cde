localrules:
    acquire_pushgateway,
    acquire_prometheus,


rule acquire_pushgateway:
    output:
        lease=temp(lease_pattern("pushgateway")),
    log:
        log_file("acquire", "pushgateway", "{deployment}"),
    conda:
        "../envs/llmsweep.yaml"
    params:
        backend=service_backend,
        service="pushgateway",
        poll_interval_s=poll_interval_s,
    message:
        "Pushgateway for deployment {wildcards.deployment}"
    script:
        "../scripts/acquire_service.py"


rule acquire_prometheus:
    input:
        pushgateway=lease_pattern("pushgateway"),
    output:
        lease=temp(lease_pattern("prometheus")),
    log:
        log_file("acquire", "prometheus", "{deployment}"),
    conda:
        "../envs/llmsweep.yaml"
    params:
        backend=service_backend,
        service="prometheus",
        poll_interval_s=poll_interval_s,
    message:
        "Prometheus for deployment {wildcards.deployment}"
    script:
        "../scripts/acquire_service.py"
