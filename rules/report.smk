rule points_table:
    input:
        summaries=all_summaries(),
    output:
        table=report(
            f"{RESULTS}/{RUN}/report/points.csv",
            caption="../report/points.rst",
            category="Tables",
        ),
        parquet=f"{RESULTS}/{RUN}/report/points.parquet",
        metadata=report(
            f"{RESULTS}/{RUN}/report/metadata.json",
            caption="../report/metadata.rst",
            category="Tables",
        ),
    log:
        f"{RESULTS}/{RUN}/logs/report/points_table.log",
    conda:
        "../envs/llmsweep.yaml"
    params:
        run_dir=run_dir_of_output,
        config=config,
    message:
        "Tidy table of all points and the run's metadata"
    script:
        "../scripts/points_table.py"


rule point_plot:
    input:
        requests=f"{point_dir_pattern()}/requests.jsonl",
    output:
        plot=report(
            f"{RESULTS}/{RUN}/report/points/{{model}}/{{load}}/distributions.png",
            caption="../report/distributions.rst",
            category="{model}",
            labels={
                "model": "{model}",
                "load": "{load}",
                "figure": "distributions",
            },
        ),
    log:
        f"{RESULTS}/{RUN}/logs/report/point_plot/{{model}}/{{load}}.log",
    conda:
        "../envs/llmsweep.yaml"
    params:
        model=model_of,
        describe=describe,
    message:
        "TTFT and ITL distributions of {params.model} {params.describe}"
    script:
        "../scripts/point_plot.py"


rule report:
    input:
        table=rules.points_table.output.table,
        metadata=rules.points_table.output.metadata,
        point_plots=all_point_plots(),
    output:
        throughput=report(
            f"{RESULTS}/{RUN}/report/throughput.png",
            caption="../report/throughput.rst",
            category="Sweep",
            labels={"figure": "throughput"},
        ),
        latency=report(
            f"{RESULTS}/{RUN}/report/latency.png",
            caption="../report/latency.rst",
            category="Sweep",
            labels={"figure": "latency"},
        ),
        throughput_latency=report(
            f"{RESULTS}/{RUN}/report/throughput_latency.png",
            caption="../report/throughput_latency.rst",
            category="Sweep",
            labels={"figure": "throughput vs latency"},
        ),
        errors=report(
            f"{RESULTS}/{RUN}/report/errors.png",
            caption="../report/errors.rst",
            category="Sweep",
            labels={"figure": "errors"},
        ),
        data=f"{RESULTS}/{RUN}/report/plot-data.json",
        page=report(
            f"{RESULTS}/{RUN}/report/index.html",
            caption="../report/page.rst",
            category="Sweep",
            labels={"figure": "report page"},
        ),
    log:
        f"{RESULTS}/{RUN}/logs/report/report.log",
    conda:
        "../envs/llmsweep.yaml"
    params:
        run=RUN,
    message:
        "Report page"
    script:
        "../scripts/report.py"


rule compare:
    input:
        table=rules.points_table.output.table,
    output:
        text=f"{RESULTS}/{RUN}/report/compare/{{other}}-vs-{RUN}.txt",
        page=f"{RESULTS}/{RUN}/report/compare/{{other}}-vs-{RUN}.html",
    log:
        f"{RESULTS}/{RUN}/logs/report/compare-{{other}}.log",
    conda:
        "../envs/llmsweep.yaml"
    params:
        baseline=lambda wildcards: f"{RESULTS}/{wildcards.other}",
        run_dir=run_dir_of_input,
        threshold=lookup(within=config, dpath="report/regression_threshold"),
    message:
        "Compare with run {wildcards.other}"
    script:
        "../scripts/compare.py"
