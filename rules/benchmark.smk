rule benchmark:
    input:
        unpack(point_leases),
    output:
        requests=str(PATHS.requests("{model}", "{load}")),
        summary=str(PATHS.summary("{model}", "{load}")),
    log:
        log_file("benchmark", "{model}", "{load}"),
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
