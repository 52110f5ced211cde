# Light jobs (tables, plots, a page): built on the driver's host, so the end of a run
# waits for no batch queue.
localrules:
    points_table,
    point_plot,
    report,
    compare,


rule points_table:
    input:
        records=all_deployment_records(),
    output:
        **interval_table(),
        **turn_table(),
        table=report(
            report_file("points.csv"),
            caption="../report/points.rst",
            category="Tables",
        ),
        parquet=report_file("points.parquet"),
        deployments=report(
            report_file("deployments.csv"),
            caption="../report/deployments.rst",
            category="Tables",
        ),
        metadata=report(
            report_file("metadata.json"),
            caption="../report/metadata.rst",
            category="Tables",
        ),
    log:
        log_file("report", "points_table"),
    conda:
        "../envs/llmsweep.yaml"
    params:
        summaries=all_summaries,
        run_dir=run_dir_of_table,
        config=config,
    message:
        "Tidy tables of all points and deployments, and the run's metadata"
    script:
        "../scripts/points_table.py"


rule point_plot:
    input:
        record=deployment_record,
    output:
        plot=report(
            str(PATHS.point_plot("{deployment}", "{load}")),
            caption="../report/distributions.rst",
            category="{deployment}",
            labels={
                "deployment": "{deployment}",
                "load": "{load}",
                "figure": "distributions",
            },
        ),
        slices=report(
            str(PATHS.point_slices_plot("{deployment}", "{load}")),
            caption="../report/slices.rst",
            category="{deployment}",
            labels={
                "deployment": "{deployment}",
                "load": "{load}",
                "figure": "time slices",
            },
        ),
    log:
        log_file("report", "point_plot", "{deployment}", "{load}"),
    conda:
        "../envs/llmsweep.yaml"
    params:
        requests=requests_of,
        summary=summary_of,
        slice_s=lookup(within=config, dpath="sweep/slice_s"),
        label=deployment_label,
        describe=describe,
    message:
        "TTFT and ITL distributions and time slices of {params.label} {params.describe}"
    script:
        "../scripts/point_plot.py"


rule report:
    input:
        **turn_table_input(),
        table=rules.points_table.output.table,
        deployments=rules.points_table.output.deployments,
        metadata=rules.points_table.output.metadata,
        point_plots=all_point_plots,
        slice_plots=all_slice_plots,
    output:
        throughput=report(
            report_file("throughput.png"),
            caption="../report/throughput.rst",
            category="Sweep",
            labels={"figure": "throughput"},
        ),
        latency=report(
            report_file("latency.png"),
            caption="../report/latency.rst",
            category="Sweep",
            labels={"figure": "latency"},
        ),
        throughput_latency=report(
            report_file("throughput_latency.png"),
            caption="../report/throughput_latency.rst",
            category="Sweep",
            labels={"figure": "throughput vs latency"},
        ),
        pareto=report(
            report_file("pareto.png"),
            caption="../report/pareto.rst",
            category="Sweep",
            labels={"figure": "per user vs per GPU"},
        ),
        errors=report(
            report_file("errors.png"),
            caption="../report/errors.rst",
            category="Sweep",
            labels={"figure": "errors"},
        ),
        data=report_file("plot-data.json"),
        page=report(
            report_file("index.html"),
            caption="../report/page.rst",
            category="Sweep",
            labels={"figure": "report page"},
        ),
    log:
        log_file("report", "report"),
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
        baseline=baseline_table,
    output:
        text=str(PATHS.comparison("{other}", ".txt")),
        page=str(PATHS.comparison("{other}", ".html")),
    log:
        log_file("report", "compare-{other}"),
    conda:
        "../envs/llmsweep.yaml"
    params:
        threshold=lookup(within=config, dpath="report/regression_threshold"),
    message:
        "Compare with run {wildcards.other}"
    script:
        "../scripts/compare.py"
