"""The Grafana dashboards, built in code with grafana-foundation-sdk, one per concern.

  llmsweep-benchmark   what the client service measures, per model and load (its level),
                       and the per-point summaries pushed to the Pushgateway
  llmsweep-llm-server  the LLM server's own metrics (llama.cpp or vLLM) and its node
  llmsweep-client      the client service's node
  llmsweep-gpu         the GPUs beside the LLM server (llmsweep's GPU exporter or DCGM's)

Every panel query filters on the run variable; every metric it names is produced by a part
llmsweep starts (tests/test_dashboards.py runs them all against a real run's Prometheus).

Write the committed JSON with:  python -m llmsweep.monitoring.dashboards
"""

from __future__ import annotations

import json
import sys
from pathlib import Path

from grafana_foundation_sdk.builders import dashboard as gd
from grafana_foundation_sdk.builders import prometheus, stat, timeseries
from grafana_foundation_sdk.cog.encoder import JSONEncoder
from grafana_foundation_sdk.models import dashboard as dm
from grafana_foundation_sdk.models.common import DataSourceRef

from llmsweep.loadgen import patterns
from llmsweep.metrics import queries

OUT = Path(__file__).with_name("dashboards")
DS = DataSourceRef(type_val="prometheus", uid="${datasource}")
RUN = 'run="$run"'
RI = "$__rate_interval"
# The labels that name a point: the model and each pattern's level (all but one empty).
POINT = ("model", *patterns.LEVEL_KEYS)
# A point in a legend: c4 r t for a closed-loop point of 4 clients.
LEVELS_LEGEND = " ".join(m.PREFIX + "{{" + m.LEVEL_KEY + "}}" for m in patterns.PATTERNS.values())


def _query(expr: str, legend: str, ref: str) -> prometheus.Dataquery:
    return prometheus.Dataquery().expr(expr).legend_format(legend).ref_id(ref).datasource(DS)


def ts(title: str, unit: str, queries: list[tuple[str, str]], desc: str = "", w: int = 12):
    """A time series panel; queries are (PromQL, legend) pairs."""
    panel = timeseries.Panel().title(title).unit(unit).datasource(DS).height(8).span(w)
    if desc:
        panel = panel.description(desc)
    for i, (expr, legend) in enumerate(queries):
        panel = panel.with_target(_query(expr, legend, chr(ord("A") + i)))
    return panel


def single(title: str, unit: str, expr: str, desc: str = "", w: int = 6):
    return (
        stat.Panel()
        .title(title)
        .unit(unit)
        .datasource(DS)
        .height(4)
        .span(w)
        .description(desc)
        .with_target(_query(expr, "", "A"))
    )


def _variables(board: gd.Dashboard, extra: list[tuple[str, str, str]] = ()) -> gd.Dashboard:
    """The datasource and run variables, then (name, label, series selector) variables whose
    values are that label's values among the run's series."""
    board = board.with_variable(
        gd.DatasourceVariable("datasource").label("Prometheus").type("prometheus")
    )
    variables = [("run", "Run", "up")]
    variables += [(n, label, f"{sel[:-1]}, {RUN}}}") for n, label, sel in extra]
    for name, label, series in variables:
        var = (
            gd.QueryVariable(name)
            .label(label)
            .datasource(DS)
            .query(f"label_values({series}, {name})")
            .refresh(dm.VariableRefresh.ON_TIME_RANGE_CHANGED)
            .sort(dm.VariableSort.ALPHABETICAL_ASC)
        )
        if name != "run":
            var = var.multi(True)
        board = board.with_variable(var)
    return board


def _board(uid: str, title: str, desc: str) -> gd.Dashboard:
    # A region per point while its requests are in flight (the schema kept here has no
    # useValueForTime, so the window gauges cannot place it).
    window = (
        gd.AnnotationQuery()
        .name("Sweep points")
        .datasource(DS)
        .enable(True)
        .icon_color("rgba(0, 211, 255, 1)")
        .expr(f"{queries.in_flight(RUN, POINT)} > 0")
    )
    return (
        gd.Dashboard(title)
        .uid(uid)
        .description(desc)
        .tags(["llmsweep"])
        .time("now-1h", "now")
        .refresh("10s")
        .readonly()
        .tooltip(dm.DashboardCursorSync.CROSSHAIR)
        .annotation(window)
    )


def _latency(name: str, title: str, sel: str) -> timeseries.Panel:
    q = [
        (
            queries.latency_quantile(p, name, sel, POINT, RI),
            f"p{int(p * 100)} {{{{model}}}} {LEVELS_LEGEND}",
        )
        for p in (0.5, 0.99)
    ]
    return ts(title, "s", q, f"p50 and p99 of {title}, from the client service's histograms.")


def benchmark() -> gd.Dashboard:
    sel = f'{RUN}, model=~"$model", engine=~"$engine"'
    board = _board(
        "llmsweep-benchmark",
        "llmsweep: benchmark",
        "What the client service measures, per model and load point.",
    )
    board = _variables(
        board,
        [
            ("model", "Model", 'llmsweep_requests_total{job="llmsweep"}'),
            ("engine", "Engine", 'llmsweep_requests_total{job="llmsweep"}'),
        ],
    )
    legend = "{{model}} " + LEVELS_LEGEND
    board = (
        board.with_row(gd.Row("Live, per point"))
        .with_panel(_latency("ttft", "time to first token", sel))
        .with_panel(_latency("e2e", "end-to-end latency", sel))
        .with_panel(_latency("itl", "inter-token latency", sel))
        .with_panel(
            ts(
                "output tokens/s (all clients)",
                "short",
                [(queries.output_tokens_per_s(sel, POINT, RI), legend)],
                "Aggregate output token throughput.",
            )
        )
        .with_panel(
            ts(
                "requests in flight",
                "short",
                [(queries.in_flight(sel, POINT), legend)],
                "Requests sent and not finished.",
            )
        )
        .with_panel(
            ts(
                "requests/s by outcome",
                "reqps",
                [(queries.requests_per_s_by_outcome(sel, ["model"], RI), "{{model}} {{outcome}}")],
                "Finished requests per second, ok or not.",
            )
        )
        .with_panel(
            ts(
                "errors/s",
                "reqps",
                [(queries.errors_per_s(sel, ["model"], RI), "{{model}}")],
                "Failed requests per second (0 while none failed).",
            )
        )
        .with_row(gd.Row("Per point summaries (Pushgateway)"))
        .with_panel(
            ts(
                "output tokens/s of each finished point",
                "short",
                [
                    (
                        f'llmsweep_point_output_token_throughput_tps{{{RUN}, model=~"$model"}}',
                        "{{model}} {{load}}",
                    )
                ],
                "The figure of the report, pushed when a point ends.",
            )
        )
        .with_panel(
            ts(
                "p99 latency of each finished point",
                "s",
                [
                    (
                        f'llmsweep_point_latency_seconds{{{RUN}, model=~"$model", quantile="0.99"}}',
                        "{{model}} {{load}} {{metric}}",
                    )
                ],
                "TTFT, ITL, TPOT and E2E p99 per point.",
            )
        )
        .with_panel(
            single(
                "failed requests (finished points)",
                "short",
                f'sum(llmsweep_point_failed_requests{{{RUN}, model=~"$model"}})',
                "Failed requests over all finished points of the run.",
            )
        )
        .with_panel(
            single(
                "finished points",
                "short",
                f'count(llmsweep_point_requests{{{RUN}, model=~"$model"}})',
                "Points whose summary reached the Pushgateway.",
            )
        )
    )
    return board


def _node_panels(board: gd.Dashboard, role: str) -> gd.Dashboard:
    sel = f'{RUN}, role="{role}", exporter="node", node=~"$node"'
    return (
        board.with_row(gd.Row("Node"))
        .with_panel(
            ts(
                "CPU busy",
                "percentunit",
                [
                    (
                        f'1 - avg by (node) (rate(node_cpu_seconds_total{{{sel}, mode="idle"}}[{RI}]))',
                        "{{node}}",
                    )
                ],
                "Share of CPU time not idle, all cores.",
            )
        )
        .with_panel(
            ts(
                "memory used",
                "bytes",
                [
                    (
                        f"node_memory_MemTotal_bytes{{{sel}}} - node_memory_MemAvailable_bytes{{{sel}}}",
                        "{{node}}",
                    )
                ],
                "Total minus available memory.",
            )
        )
        .with_panel(
            ts(
                "network received",
                "Bps",
                [
                    (
                        f"sum by (node, device) (rate(node_network_receive_bytes_total{{{sel}}}[{RI}]))",
                        "{{node}} {{device}}",
                    )
                ],
                "Per interface (loopback too: local runs use it).",
            )
        )
        .with_panel(
            ts(
                "network sent",
                "Bps",
                [
                    (
                        f"sum by (node, device) (rate(node_network_transmit_bytes_total{{{sel}}}[{RI}]))",
                        "{{node}} {{device}}",
                    )
                ],
                "Per interface.",
            )
        )
        .with_panel(
            ts(
                "load average (1 min)",
                "short",
                [(f"node_load1{{{sel}}}", "{{node}}")],
                "Runnable and waiting tasks.",
            )
        )
        .with_panel(
            ts(
                "CPUs",
                "short",
                [(f'count by (node) (node_cpu_seconds_total{{{sel}, mode="idle"}})', "{{node}}")],
                "CPUs the node exporter sees.",
            )
        )
    )


def llm_server() -> gd.Dashboard:
    board = _board(
        "llmsweep-llm-server",
        "llmsweep: LLM server node",
        "The LLM server's own metrics and its node (each node on its own).",
    )
    board = _variables(
        board,
        [
            ("model", "Model", 'up{role="llm_server"}'),
            ("node", "Node", 'node_uname_info{role="llm_server"}'),
        ],
    )
    sel = f'{RUN}, role="llm_server", model=~"$model"'

    def either(llama: str, vllm: str, rate: bool) -> str:
        def part(metric: str) -> str:
            inner = f"{metric}{{{sel}}}"
            return f"sum by (model) ({f'rate({inner}[{RI}])' if rate else inner})"

        return f"{part(llama)} or {part(vllm)}"

    board = (
        board.with_row(gd.Row("Server (llama.cpp or vLLM)"))
        .with_panel(
            ts(
                "generated tokens/s",
                "short",
                [
                    (
                        either(
                            "llamacpp:tokens_predicted_total", "vllm:generation_tokens_total", True
                        ),
                        "{{model}}",
                    )
                ],
                "Output tokens per second as the server counts them.",
            )
        )
        .with_panel(
            ts(
                "prompt tokens/s",
                "short",
                [
                    (
                        either("llamacpp:prompt_tokens_total", "vllm:prompt_tokens_total", True),
                        "{{model}}",
                    )
                ],
                "Prompt tokens processed per second.",
            )
        )
        .with_panel(
            ts(
                "requests being processed",
                "short",
                [
                    (
                        either("llamacpp:requests_processing", "vllm:num_requests_running", False),
                        "{{model}}",
                    )
                ],
                "Requests the server is working on.",
            )
        )
        .with_panel(
            ts(
                "requests waiting",
                "short",
                [
                    (
                        either("llamacpp:requests_deferred", "vllm:num_requests_waiting", False),
                        "{{model}}",
                    )
                ],
                "Requests queued in the server (no free slot).",
            )
        )
    )
    return _node_panels(board, "llm_server")


def client() -> gd.Dashboard:
    board = _board(
        "llmsweep-client",
        "llmsweep: client node",
        "The node of the client service that generates the load.",
    )
    board = _variables(board, [("node", "Node", 'node_uname_info{role="client"}')])
    return _node_panels(board, "client")


def gpu() -> gd.Dashboard:
    board = _board(
        "llmsweep-gpu",
        "llmsweep: GPU",
        "GPUs beside the LLM server: llmsweep's exporter or DCGM's (same names).",
    )
    board = _variables(board, [("node", "Node", 'node_uname_info{role="llm_server"}')])
    sel = f'{RUN}, role="llm_server", exporter="gpu", node=~"$node"'
    legend = "{{node}} GPU {{gpu}}"

    def field(name: str) -> str:
        return queries.gpu_field(name, sel)

    return (
        board.with_row(gd.Row("GPU"))
        .with_panel(
            ts(
                "utilisation",
                "percent",
                [(field("GPU_UTIL"), legend)],
                "Share of time a kernel ran (%).",
            )
        )
        .with_panel(
            ts(
                "memory used",
                "decmbytes",
                [(field("FB_USED"), legend)],
                "Framebuffer memory used (MiB).",
            )
        )
        .with_panel(
            ts(
                "memory used share",
                "percentunit",
                [(queries.gpu_memory_share(sel), legend)],
                "Used over used + free.",
            )
        )
        .with_panel(ts("power", "watt", [(field("POWER_USAGE"), legend)], "Power draw (W)."))
        .with_panel(ts("temperature", "celsius", [(field("GPU_TEMP"), legend)], "GPU temperature."))
        .with_panel(ts("SM clock", "rotmhz", [(field("SM_CLOCK"), legend)], "SM clock (MHz)."))
        .with_panel(
            single(
                "GPUs seen",
                "short",
                queries.gpus_seen(RUN),
                "0 where the exporter found no GPU or driver.",
            )
        )
    )


BUILDERS = {
    "llmsweep-benchmark": benchmark,
    "llmsweep-llm-server": llm_server,
    "llmsweep-client": client,
    "llmsweep-gpu": gpu,
}


SCHEMA_LESS_VARIABLE_FIELDS = {"allowCustomValue": True, "includeAll": False}
SCHEMA_LESS_ANNOTATION_FIELDS = {"placement": "inControlsMenu"}


def render(name: str) -> str:
    board = json.loads(JSONEncoder().encode(BUILDERS[name]().build()))
    # The SDK writes a few fields the dashboard JSON Schema kept in this package predates;
    # at these values Grafana behaves the same without them, so they are left out.
    for items, defaults in (
        (board["templating"]["list"], SCHEMA_LESS_VARIABLE_FIELDS),
        (board["annotations"]["list"], SCHEMA_LESS_ANNOTATION_FIELDS),
    ):
        for item in items:
            for key, value in defaults.items():
                if item.pop(key, value) != value:
                    raise ValueError(f"{name}: {key} set, and the schema cannot hold it")
    return json.dumps(board, sort_keys=True, indent=2) + "\n"


def expressions(board: dict) -> list[tuple[str, str]]:
    """(where, PromQL) of every panel target, annotation and query variable of a dashboard.
    A variable's label_values(SERIES, LABEL) (Grafana's, not PromQL) is given as the PromQL
    that asks the same: count by (LABEL) (SERIES)."""
    out = []
    for panel in board.get("panels", []):
        for target in panel.get("targets") or []:
            out.append((f"panel {panel['title']!r} {target['refId']}", target["expr"]))
    for ann in board.get("annotations", {}).get("list", []):
        if ann.get("expr"):
            out.append((f"annotation {ann['name']!r}", ann["expr"]))
    for var in board.get("templating", {}).get("list", []):
        if var.get("type") == "query":
            series, label = var["query"].removeprefix("label_values(")[:-1].rsplit(",", 1)
            out.append((f"variable {var['name']!r}", f"count by ({label.strip()}) ({series})"))
    return out


def main(argv: list[str] | None = None) -> None:
    out = Path((argv or sys.argv[1:] or [str(OUT)])[0])
    out.mkdir(parents=True, exist_ok=True)
    for name in BUILDERS:
        (out / f"{name}.json").write_text(render(name))
        print(out / f"{name}.json")


if __name__ == "__main__":
    main()
