localrules:
    acquire_pushgateway,
    acquire_prometheus,
    acquire_llm_server,
    acquire_client_service,


rule acquire_pushgateway:
    output:
        lease=temp(lease_pattern("pushgateway")),
    log:
        log_file("acquire", "pushgateway", "{model}", "{load}"),
    conda:
        "../envs/llmsweep.yaml"
    params:
        backend=service_backend,
        service="pushgateway",
    message:
        "Pushgateway for point {wildcards.model} {wildcards.load}"
    script:
        "../scripts/acquire_service.py"


rule acquire_prometheus:
    input:
        pushgateway=lease_pattern("pushgateway"),
    output:
        lease=temp(lease_pattern("prometheus")),
    log:
        log_file("acquire", "prometheus", "{model}", "{load}"),
    conda:
        "../envs/llmsweep.yaml"
    params:
        backend=service_backend,
        service="prometheus",
    message:
        "Prometheus for point {wildcards.model} {wildcards.load}"
    script:
        "../scripts/acquire_service.py"


rule acquire_llm_server:
    output:
        lease=temp(lease_pattern("llm_server")),
    log:
        log_file("acquire", "llm_server", "{model}", "{load}"),
    conda:
        "../envs/llmsweep.yaml"
    params:
        backend=service_backend,
        service="llm_server",
        model=model_of,
    message:
        "LLM server for point {wildcards.model} {wildcards.load}"
    script:
        "../scripts/acquire_service.py"


rule acquire_client_service:
    input:
        llm_server=lease_pattern("llm_server"),
    output:
        lease=temp(lease_pattern("client_service")),
    log:
        log_file("acquire", "client_service", "{model}", "{load}"),
    conda:
        "../envs/llmsweep.yaml"
    params:
        backend=service_backend,
        service="client_service",
        model=model_of,
    message:
        "Client service for point {wildcards.model} {wildcards.load}"
    script:
        "../scripts/acquire_service.py"
