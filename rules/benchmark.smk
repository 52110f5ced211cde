rule benchmark:
    input:
        pushgateway=lease_pattern("pushgateway"),
        prometheus=lease_pattern("prometheus"),
        llm_server=lease_pattern("llm_server"),
        client_service=lease_pattern("client_service"),
    output:
        requests=f"{point_dir_pattern()}/requests.jsonl",
        summary=f"{point_dir_pattern()}/summary.json",
    log:
        f"{RESULTS}/{RUN}/logs/benchmark/{{model}}/{{load}}.log",
    conda:
        "../envs/llmsweep.yaml"
    resources:
        # Points share the LLM server: the profile allows one at a time.
        benchmark_slots=1,
    params:
        run=RUN,
        engine=lookup(within=config, dpath="engine"),
        model=model_of,
        point=point_of,
        describe=describe,
        sweep=sweep_settings,
        warmup=lookup(within=config, dpath="warmup"),
        workload=lookup(within=config, dpath="workload"),
        slo=lookup(within=config, dpath="slo"),
        client=lookup(within=config, dpath="client"),
    message:
        "Benchmark {params.model} {params.describe}"
    script:
        "../scripts/benchmark.py"
