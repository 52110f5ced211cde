rule points_table:
    input:
        summaries=all_summaries(),
    output:
        table=f"{RESULTS}/{RUN}/report/points.csv",
    log:
        f"{RESULTS}/{RUN}/logs/report/points_table.log",
    conda:
        "../envs/llmsweep.yaml"
    message:
        "Tidy table of all points"
    script:
        "../scripts/points_table.py"


rule report:
    input:
        table=rules.points_table.output.table,
    output:
        throughput=report(
            f"{RESULTS}/{RUN}/report/throughput.png",
            caption="../report/throughput.rst",
            category="Sweep",
        ),
        latency=report(
            f"{RESULTS}/{RUN}/report/latency.png",
            caption="../report/latency.rst",
            category="Sweep",
        ),
        page=f"{RESULTS}/{RUN}/report/index.html",
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
