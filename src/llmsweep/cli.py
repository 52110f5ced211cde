"""The `llmsweep` command: the service controller and helpers around the workflow."""

from __future__ import annotations

import argparse
import json
import sys

from llmsweep import config as configuration
from llmsweep.paths import RunPaths, run_name


def _runs(args) -> list[str]:
    if args.run:
        return [args.run]
    from pathlib import Path

    root = Path(args.results)
    if not root.is_dir():
        return []
    return sorted(p.name for p in root.iterdir() if (p / "services").is_dir())


def cmd_status(args) -> int:
    from llmsweep.services.controller import Controller

    for run in _runs(args):
        for row in Controller(RunPaths(run, args.results), owner={}).status():
            print(json.dumps({"run": run, **row}))
    return 0


def cmd_run_status(args) -> int:
    """The run's picture once: points done, running (with live figures), ETA, services."""
    from llmsweep.live import progress, text
    from llmsweep.services.controller import Controller

    paths = RunPaths(args.run, args.results)
    if not paths.root.is_dir():
        print(f"llmsweep: no run {args.run!r} under {args.results}", file=sys.stderr)
        return 2
    pic = progress.picture(paths)
    services = Controller(paths, owner={}).status() if paths.services.is_dir() else []
    if args.json:
        print(json.dumps({**pic, "services": services}))
        return 0
    report = str(paths.report_page) if pic["report"] else ""
    print("\n".join(text.status_lines(pic, services, report)))
    return 0


def cmd_stop_all(args) -> int:
    from llmsweep.services.controller import Controller

    for run in _runs(args):
        stopped = Controller(RunPaths(run, args.results), owner={}).stop_all()
        for key in stopped:
            print(f"stopped {run}/{key}")
    return 0


def cmd_prune(args) -> int:
    from llmsweep.services.controller import Controller

    for run in _runs(args):
        for lease in Controller(RunPaths(run, args.results), owner={}).prune():
            print(f"removed stale lease {lease}")
    return 0


def cmd_ensure(args) -> int:
    from llmsweep.services import definitions
    from llmsweep.services.controller import Controller

    cfg = configuration.load(args.configfile)
    paths = RunPaths(cfg["run"], args.results)
    dep = None
    if args.service in ("llm_server", "client_service"):
        dep = _deployment(cfg, args.deployment)
    deps = {}
    if args.service == "client_service":
        llm = definitions.llm_server(cfg, paths, dep)
        deps["llm_url"] = Controller(paths).ensure(llm)["url"]
    spec = definitions.build(cfg, paths, args.service, dep, **deps)
    print(json.dumps(Controller(paths).ensure(spec)))
    return 0


def _deployment(cfg: dict, name: str | None) -> dict:
    """The deployment whose slug (or else model) is `name`; the first one when None."""
    from llmsweep import deployments

    found = deployments.expand(cfg)
    for dep in found:
        if name in (None, dep["slug"]):
            return dep
    for dep in found:
        if dep["model"] == name:
            return dep
    slugs = ", ".join(d["slug"] for d in found)
    raise configuration.ConfigError(f"no deployment {name!r}: the config has {slugs}")


def cmd_check_config(args) -> int:
    """Print the config with its defaults, then the deployments it gives (as comments)."""
    from llmsweep import deployments
    from llmsweep.loadgen import patterns, sweep

    cfg = configuration.load(args.configfile)
    found = deployments.expand(cfg)
    print(configuration.dump(cfg), end="")
    print(f"# {len(found)} deployment(s):")
    for dep in found:
        print(f"#   {dep['slug']}: {dep['engine']} {dep['label']}")
    loads = [p["load"] for p in sweep.sweep_points(cfg, found[:1])]
    print(f"# points of each: {', '.join(loads) or 'none listed'}")
    search = cfg["sweep"]["search"]
    if search:
        module = patterns.pattern(search["pattern"])
        print(
            f"# and a capacity search of each: {module.LEVEL_KEY} from {search['low']:g} to "
            f"{search['high']:g}, at most {search['max_points']} points"
        )
    return 0


def cmd_programs(args) -> int:
    """Say where each program llmsweep runs was found, or how to provide it."""
    from llmsweep import programs
    from llmsweep.engines import llama_cpp

    cfg = configuration.merged(configuration.read_file(args.configfile) if args.configfile else {})
    configuration.validate_schema(cfg)
    missing = 0
    for name in ("prometheus", "pushgateway", "node_exporter", "grafana"):
        try:
            print(f"found {name}: {programs.find(name, cfg['monitoring'][name])}")
        except programs.MissingProgram as exc:
            optional = " (optional)" if name == "grafana" else ""
            print(f"missing {name}{optional}: {exc}")
            missing += not optional
    try:
        server = llama_cpp.binary(cfg["engines"]["llama_cpp"]["binary"])
        devices = llama_cpp.devices(server)
        print(f"found llama-server: {server} (devices: {', '.join(devices) or 'CPU only'})")
    except RuntimeError as exc:
        print(f"missing llama-server: {exc}")
        missing += 1
    if missing:
        print("without the monitoring programs, run with monitoring.enabled: false")
    return 1 if missing else 0


def cmd_compare(args) -> int:
    from pathlib import Path

    from llmsweep.report.compare import run_compare

    a, b = RunPaths(args.run_a, args.results), RunPaths(args.run_b, args.results)
    text_file, page = b.comparison(args.run_a, ".txt"), b.comparison(args.run_a, ".html")
    if args.out:
        text_file, page = Path(args.out) / text_file.name, Path(args.out) / page.name
    text, regressions = run_compare(a.root, b.root, args.threshold, text_file, page)
    print(text, end="")
    print(f"written: {text_file} and {page.name}")
    return 1 if regressions else 0


def cmd_config_docs(args) -> int:
    print(configuration.docs(), end="")
    return 0


def cmd_install_model(args) -> int:
    from llmsweep.models import install_demo_model

    print(install_demo_model())
    return 0


def cmd_monitor(args) -> int:
    from llmsweep.monitoring.reopen import ReopenError, serve

    paths = RunPaths(args.run, args.results)
    if not paths.root.is_dir():
        print(f"llmsweep: no run {args.run!r} under {args.results}", file=sys.stderr)
        return 2
    try:
        serve(paths, args.host, args.port)
    except ReopenError as exc:
        print(f"llmsweep: {exc}", file=sys.stderr)
        return 1
    return 0


def cmd_web(args) -> int:
    import signal

    from llmsweep.web.server import serve

    def interrupt(*_):
        raise KeyboardInterrupt

    signal.signal(signal.SIGTERM, interrupt)  # stop like Ctrl-C: close the server and SSH
    serve(args.host, args.port, args.workdir, args.workflow, args.known_hosts)
    return 0


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="llmsweep", description=__doc__)
    parser.add_argument("--results", default="results", help="results folder (default: results)")
    sub = parser.add_subparsers(dest="command", required=True)

    services = sub.add_parser("services", help="the service controller")
    ssub = services.add_subparsers(dest="action", required=True)
    for name, func, text in (
        ("status", cmd_status, "list the run's services and their state"),
        ("stop-all", cmd_stop_all, "stop every service of the run (of all runs without --run)"),
        ("prune", cmd_prune, "delete leases whose service is gone"),
    ):
        p = ssub.add_parser(name, help=text)
        p.add_argument("--run", help="run name (default: every run under --results)")
        p.set_defaults(func=func)
    p = ssub.add_parser("ensure", help="start a service, or reuse a live healthy one")
    p.add_argument("service", choices=["pushgateway", "prometheus", "llm_server", "client_service"])
    p.add_argument(
        "--deployment", help="deployment slug or model (llm_server, client_service); the first"
    )
    p.add_argument("--configfile", help="config file merged over config/config.yaml")
    p.set_defaults(func=cmd_ensure)

    p = sub.add_parser(
        "status", help="a run's progress once: points done, the running ones, ETA, services"
    )
    p.add_argument("run", type=run_name, help="the run")
    # Also after the run's name; SUPPRESS keeps the top-level --results when not given here.
    p.add_argument("--results", default=argparse.SUPPRESS, help="results folder")
    p.add_argument("--json", action="store_true", help="print it as one JSON object")
    p.set_defaults(func=cmd_run_status)

    p = sub.add_parser("compare", help="compare two runs point by point; exit 1 on regression")
    p.add_argument("run_a", help="the baseline run")
    p.add_argument("run_b", help="the run to judge")
    p.add_argument(
        "--threshold",
        type=float,
        default=0.1,
        help="relative change that counts as a regression (default 0.1 = 10%%)",
    )
    p.add_argument("--out", help="folder for the summaries (default: RUN_B's report/compare)")
    p.set_defaults(func=cmd_compare)

    p = sub.add_parser("check-config", help="validate a config and print it with defaults")
    p.add_argument("--configfile")
    p.set_defaults(func=cmd_check_config)
    p = sub.add_parser("programs", help="where each program llmsweep runs is, or how to get it")
    p.add_argument("--configfile", help="config file merged over config/config.yaml")
    p.set_defaults(func=cmd_programs)
    p = sub.add_parser("config-docs", help="print config/README.md, made from the schema")
    p.set_defaults(func=cmd_config_docs)
    p = sub.add_parser("monitor", help="reopen a finished run's Prometheus data")
    p.add_argument("run", type=run_name, help="the run")
    p.add_argument("--host", default="127.0.0.1", help="address to bind (default 127.0.0.1)")
    p.add_argument("--port", type=int, default=0, help="port (default: a free one)")
    p.set_defaults(func=cmd_monitor)
    p = sub.add_parser("web", help="the web front end: configure, launch and watch sweeps")
    p.add_argument("--host", default="127.0.0.1", help="address to bind (default 127.0.0.1)")
    p.add_argument("--port", type=int, default=8765, help="port (default 8765; 0: a free one)")
    p.add_argument("--workdir", default=".", help="where runs' results go on this machine")
    p.add_argument("--workflow", help="the llmsweep checkout (default: this package's)")
    p.add_argument("--known-hosts", help="known_hosts for SSH targets (default ~/.ssh/known_hosts)")
    p.set_defaults(func=cmd_web)
    p = sub.add_parser("install-model", help="write the demo model's GGUF file")
    p.set_defaults(func=cmd_install_model)

    args = parser.parse_args(argv)
    try:
        return args.func(args)
    except (configuration.ConfigError, FileNotFoundError) as exc:
        print(f"llmsweep: {exc}", file=sys.stderr)
        return 2


if __name__ == "__main__":
    sys.exit(main())
