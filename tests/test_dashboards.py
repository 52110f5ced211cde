"""The Grafana dashboards and Grafana's own files, proven without a Grafana server (none can
be installed here): the committed JSON is what the code builds, validates against the
dashboard JSON Schema, parses back with the SDK; every query passes promtool and returns
data from a real run's Prometheus; Grafana's config and command are checked as text, and a
stand-in program (tests/fakes/bin/grafana) shows the service wrapper starts and stops it."""

import base64
import configparser
import json
import math
import os
import re
import stat
import subprocess
import urllib.parse
from pathlib import Path

import jsonschema
import pytest
import yaml

from conftest import ROOT
from helpers import snakemake, write_config
from llmsweep import config as configuration
from llmsweep import secret
from llmsweep.monitoring import dashboards, grafana
from llmsweep.monitoring.reopen import prometheus as reopened_prometheus
from llmsweep.monitoring.reopen import run_window
from llmsweep.paths import RunPaths
from llmsweep.procs import pid_alive
from llmsweep.programs import MissingProgram
from llmsweep.services import definitions
from llmsweep.services.controller import Controller
from llmsweep.services.local import LocalBackend
from llmsweep.util import http_json, wait_until

FAKES = ROOT / "tests" / "fakes"
SCHEMA = ROOT / "src" / "llmsweep" / "monitoring" / "dashboard.jsonschema.json"
BOARDS = sorted((ROOT / "src" / "llmsweep" / "monitoring" / "dashboards").glob("*.json"))


def load(path: Path) -> dict:
    return json.loads(path.read_text())


def substituted(expr: str, run: str, rate_window: str = "1m") -> str:
    """A panel query as Grafana sends it: the run chosen, every multi-value variable at
    'all', $__rate_interval at a fixed window."""
    expr = expr.replace("$__rate_interval", rate_window).replace("$run", run)
    for var in ("$model", "$engine", "$node"):
        expr = expr.replace(var, ".*")
    assert "$" not in expr, expr
    return expr


def test_there_is_one_dashboard_per_concern_and_the_committed_json_is_what_the_code_builds():
    assert [p.stem for p in BOARDS] == sorted(dashboards.BUILDERS)
    for path in BOARDS:
        assert path.read_text() == dashboards.render(path.stem), (
            f"{path.name} is stale: run python -m llmsweep.monitoring.dashboards"
        )


def test_dashboards_validate_against_the_schema_and_parse_back_with_the_sdk():
    from grafana_foundation_sdk.models.dashboard import Dashboard

    validator = jsonschema.Draft7Validator(load(SCHEMA))
    for path in BOARDS:
        board = load(path)
        errors = [
            f"{'/'.join(map(str, e.path))}: {e.message}" for e in validator.iter_errors(board)
        ]
        assert not errors, (path.name, errors[:5])
        back = Dashboard.from_json(board)
        assert back.uid == path.stem and back.title.startswith("llmsweep: ")
        titles = [p["title"] for p in board["panels"] if p["type"] != "row"]
        assert len(titles) == len(set(titles)) >= 5, titles
        for panel in board["panels"]:
            if panel["type"] != "row":
                assert panel["datasource"] == {"type": "prometheus", "uid": "${datasource}"}
                assert panel["targets"] and panel.get("description"), panel["title"]
    # The schema does reject what Grafana would not load.
    broken = load(BOARDS[0])
    broken["panels"][1]["gridPos"] = {"h": "tall"}
    assert list(validator.iter_errors(broken))


def _rules(exprs: list[str]) -> str:
    rules = [{"record": f"llmsweep:check_{i}", "expr": e} for i, e in enumerate(exprs)]
    return yaml.safe_dump({"groups": [{"name": "dashboards", "rules": rules}]})


def test_every_expression_passes_promtool_check_rules(tmp_path):
    exprs = [substituted(e, "t") for b in BOARDS for _, e in dashboards.expressions(load(b))]
    assert len(exprs) > 30
    rules = tmp_path / "rules.yml"
    rules.write_text(_rules(exprs))
    check = subprocess.run(
        ["promtool", "check", "rules", str(rules)], capture_output=True, text=True
    )
    assert check.returncode == 0, check.stdout + check.stderr
    assert f"SUCCESS: {len(exprs)} rules found" in check.stdout
    rules.write_text(_rules(["sum by (model (up)"]))  # and a broken one is caught
    check = subprocess.run(["promtool", "check", "rules", str(rules)], capture_output=True)
    assert check.returncode != 0


@pytest.fixture(scope="module")
def monitored_run(tmp_path_factory):
    """A real sweep with every monitoring part on: Pushgateway, Prometheus, node exporters
    beside the LLM server and the client service, and the GPU exporter reading a simulated
    NVML (no GPU here). Grafana is not installed here: the run must say so and go on."""
    workdir = tmp_path_factory.mktemp("monitored")
    # The simulated GPU is no GPU for llama-server: it runs on the CPU on purpose.
    write_config(
        workdir,
        sweep={"clients": [1, 2], "requests_per_client": 6},
        workload={"max_tokens": 24},
        engines={"llama_cpp": {"parallel": 2, "ctx_size": 1024, "gpu_layers": 0}},
    )
    pythonpath = f"{FAKES / 'nvml'}:{ROOT / 'src'}"
    proc = snakemake(workdir, extra_env={"PYTHONPATH": pythonpath})
    assert proc.returncode == 0, proc.stdout + proc.stderr
    return workdir, proc.stdout + proc.stderr


@pytest.mark.e2e
def test_the_run_says_how_to_reach_its_monitoring(monitored_run):
    workdir, out = monitored_run
    missing = "llmsweep: Grafana: not started (monitoring.grafana: grafana or grafana-server"
    assert missing in out, out[-3000:]
    assert "llmsweep: Prometheus: http://127.0.0.1:" in out
    access = (workdir / "results" / "t" / "monitoring" / "ACCESS.txt").read_text()
    assert "Prometheus: http://127.0.0.1:" in access and "ssh" not in access  # local run


@pytest.mark.e2e
def test_every_panel_query_returns_data_for_the_run(monitored_run):
    workdir, _ = monitored_run
    paths = RunPaths("t", workdir / "results")
    start, end = run_window(paths)
    auth = secret.basic(secret.read(paths.secret))
    with reopened_prometheus(paths) as url:
        empty = []
        for board in BOARDS:
            for where, expr in dashboards.expressions(load(board)):
                query = urllib.parse.urlencode(
                    {"query": substituted(expr, "t"), "start": start - 5, "end": end + 5, "step": 1}
                )
                status, body = http_json(
                    f"{url}/api/v1/query_range?{query}", timeout=30, headers=auth
                )
                assert status == 200 and body["status"] == "success", (where, body)
                values = [float(v) for s in body["data"]["result"] for _, v in s["values"]]
                if not any(math.isfinite(v) for v in values):
                    empty.append(f"{board.stem}: {where}: {expr}")
    assert not empty, "\n".join(empty)


@pytest.mark.e2e
def test_the_run_s_prometheus_data_is_kept_and_can_be_reopened(monitored_run):
    workdir, _ = monitored_run
    paths = RunPaths("t", workdir / "results")
    auth = secret.basic(secret.read(paths.secret))
    with reopened_prometheus(paths) as url:
        assert http_json(f"{url}/api/v1/targets")[0] == 401  # the run's token, as in the run
        _, body = http_json(
            f"{url}/api/v1/query?query=count(llmsweep_point_requests)"
            f"&time={run_window(paths)[1] + 5}",
            headers=auth,
        )
        assert body["data"]["result"][0]["value"][1] == "2"  # both points pushed
        _, targets = http_json(f"{url}/api/v1/targets", headers=auth)
        assert targets["data"]["activeTargets"] == []  # reopened: it scrapes nothing


def check_datasource_reaches(prometheus: str, gdir: Path) -> None:
    """Grafana cannot run here: its datasource provisioning is read as Grafana reads it
    ($__file{...} expanded, basic auth from basicAuthUser and basicAuthPassword) and the
    run's Prometheus must answer a query asked that way, and refuse it without."""
    ds = yaml.safe_load((gdir / "provisioning/datasources/llmsweep.yaml").read_text())
    (source,) = ds["datasources"]
    password = source["secureJsonData"]["basicAuthPassword"]
    match = re.fullmatch(r"\$__file\{(.+)\}", password)
    assert match, password
    password = Path(match.group(1)).read_text().strip()
    pair = base64.b64encode(f"{source['basicAuthUser']}:{password}".encode()).decode()
    url = f"{prometheus}/api/v1/query?query=up"
    assert http_json(url)[0] == 401
    status, body = http_json(url, headers={"Authorization": f"Basic {pair}"})
    assert status == 200 and body["status"] == "success"


def _cfg(tmp_path: Path, **grafana_cfg) -> tuple[dict, RunPaths]:
    user = {"run": "g", "monitoring": {"scrape_interval_s": 1, "grafana": grafana_cfg}}
    tmp_path.mkdir(parents=True, exist_ok=True)
    path = tmp_path / "config.yaml"
    path.write_text(yaml.safe_dump(user))
    cfg = configuration.load(path)
    return cfg, RunPaths("g", tmp_path / "results")


def test_grafana_files_anonymous_off_and_a_per_run_password_with_mode_0600(tmp_path):
    cfg, paths = _cfg(tmp_path, enabled=True, binary=str(FAKES / "bin" / "grafana"))
    files = grafana.write_files(cfg, paths)
    ini = configparser.ConfigParser(interpolation=None)
    ini.read(files["ini"])
    assert ini["auth.anonymous"]["enabled"] == "false"
    assert ini["users"]["allow_sign_up"] == "false"
    assert ini["security"]["admin_password"] == f"$__file{{{files['password']}}}"
    assert ini["paths"]["provisioning"] == str(grafana.directory(paths) / "provisioning")
    assert "http_addr" not in ini["server"]  # from the environment, set by the wrapper
    secret = files["password"].read_text()
    assert len(secret) >= 32 and secret not in files["ini"].read_text()
    assert stat.S_IMODE(files["password"].stat().st_mode) == 0o600
    assert grafana.write_files(cfg, paths)["password"].read_text() == secret  # kept in a run
    _, other = _cfg(tmp_path / "other")
    assert grafana.write_files(cfg, other)["password"].read_text() != secret

    ds = yaml.safe_load(files["datasource"].read_text())["datasources"][0]
    assert ds["type"] == "prometheus" and ds["url"] == "$LLMSWEEP_PROMETHEUS_URL"
    # Prometheus asked with the run's token, which Grafana reads from its file.
    assert ds["basicAuth"] is True and ds["basicAuthUser"] == "llmsweep"
    assert ds["secureJsonData"] == {"basicAuthPassword": f"$__file{{{paths.secret.resolve()}}}"}
    assert ds["uid"] == grafana.DATASOURCE_UID and ds["editable"] is False
    prov = yaml.safe_load(files["dashboards"].read_text())["providers"][0]
    folder = Path(prov["options"]["path"])
    assert sorted(p.name for p in folder.glob("*.json")) == [p.name for p in BOARDS]
    assert prov["allowUiUpdates"] is False


def test_grafana_command_lines_native_and_apptainer(tmp_path):
    fake = str(FAKES / "bin" / "grafana")
    cfg, paths = _cfg(tmp_path, enabled=True, binary=fake, homepath="/opt/grafana")
    argv, env = grafana.command(cfg, paths)
    ini = str(grafana.directory(paths) / "grafana.ini")
    assert argv == [fake, "server", "--homepath", "/opt/grafana", "--config", ini]
    assert env == {
        "GF_SERVER_HTTP_ADDR": "{host}",
        "GF_SERVER_HTTP_PORT": "{port}",
        "LLMSWEEP_PROMETHEUS_URL": "{service_url}",
    }

    image = tmp_path / "grafana.sif"
    image.write_bytes(b"")
    cfg, paths = _cfg(tmp_path, enabled=True, runtime="apptainer", apptainer=fake, image=str(image))
    argv, env = grafana.command(cfg, paths)
    gdir = str(grafana.directory(paths))
    assert argv[:6] == [fake, "exec", "--cleanenv", "--no-home", "--bind", f"{gdir}:{gdir}"]
    assert "--env" in argv and "GF_SERVER_HTTP_ADDR={host}" in argv and env == {}
    assert argv[argv.index(str(image)) :] == [
        str(image),
        "grafana",
        "server",
        "--homepath",
        "/usr/share/grafana",
        "--config",
        f"{gdir}/grafana.ini",
    ]

    # Required and missing: the config is refused before any job starts, naming the key.
    with pytest.raises(
        configuration.ConfigError,
        match="monitoring.grafana.binary: no-such-grafana not found: provide it with a module",
    ):
        _cfg(tmp_path, enabled=True, binary="no-such-grafana")
    with pytest.raises(configuration.ConfigError, match="monitoring.grafana.image: None"):
        _cfg(tmp_path, enabled=True, runtime="apptainer", apptainer=fake)
    cfg, paths = _cfg(tmp_path, binary="no-such-grafana")  # enabled: auto
    assert definitions.prometheus(cfg, paths)["sidecars"] == []
    assert grafana.unavailable_reason(cfg, paths).startswith(
        "monitoring.grafana.binary: no-such-grafana not found"
    )


@pytest.mark.e2e
def test_grafana_runs_beside_prometheus_and_stops_with_it(tmp_path, monkeypatch, no_owner):
    """The wrapper starts Grafana's command (the stand-in program: no Grafana server can be
    installed here) with an explicit address, the Prometheus URL for the datasource, and no
    secret on its command line; it is gone, with its access file, when Prometheus stops."""
    record = tmp_path / "grafana-record.json"
    monkeypatch.setenv("LLMSWEEP_FAKE_GRAFANA_RECORD", str(record))
    cfg, paths = _cfg(tmp_path, enabled=True, binary=str(FAKES / "bin" / "grafana"))
    ctl = Controller(paths, LocalBackend())
    try:
        prom = ctl.ensure(definitions.prometheus(cfg, paths))
        access_file = grafana.directory(paths) / "access.json"
        access = wait_until(lambda: access_file.exists() and load(access_file), 10, "access")
        assert access["url"].startswith("http://127.0.0.1:") and access["user"] == "admin"
        wait_until(lambda: record.exists() and record.stat().st_size, 30, "the stand-in")
        seen = load(record)
        assert seen["env"]["GF_SERVER_HTTP_ADDR"] == "127.0.0.1"
        assert seen["env"]["GF_SERVER_HTTP_PORT"] == str(access["port"])
        assert seen["env"]["LLMSWEEP_PROMETHEUS_URL"] == prom["url"]
        check_datasource_reaches(prom["url"], grafana.directory(paths))
        secret = (grafana.directory(paths) / "admin-password").read_text()
        assert not any(secret in a for a in seen["argv"]) and secret not in json.dumps(seen["env"])
        assert http_json(f"{access['url']}/api/health")[0] == 200
        from llmsweep.acquire import announce

        announce(cfg, paths, prom["url"], remote=True)
        text = (paths.monitoring / "ACCESS.txt").read_text()
        port = access["port"]
        assert f"ssh -N -L 3000:127.0.0.1:{port} " in text and "password in " in text
    finally:
        ctl.stop_all()
    wait_until(lambda: not pid_alive(seen["pid"]), 15, "Grafana to stop")
    assert not access_file.exists()
    assert os.listdir(paths.targets) == []


def test_the_dcgm_exporter_can_replace_llmsweep_s(tmp_path):
    cfg, paths = _cfg(tmp_path)
    cfg["monitoring"]["gpu_exporter_kind"] = "dcgm"
    cfg["monitoring"]["dcgm_exporter"] = ["no-such-dcgm-exporter", "--address", "{host}:{port}"]
    with pytest.raises(MissingProgram, match="monitoring.dcgm_exporter: no-such-dcgm-exporter"):
        definitions.exporters(cfg, paths, "llm_server.m", "llm_server", gpu=True)
    fake = str(FAKES / "bin" / "grafana")  # any program that exists stands for the binary
    cfg["monitoring"]["dcgm_exporter"] = [fake, "--address", "{host}:{port}"]
    gpu = definitions.exporters(cfg, paths, "llm_server.m", "llm_server", gpu=True)[-1]
    assert gpu["argv"] == [fake, "--address", "{host}:{port}"]
    assert gpu["labels"]["exporter"] == "gpu" and gpu["labels"]["role"] == "llm_server"


def test_an_external_openai_server_s_metrics_are_scraped_when_asked(tmp_path):
    cfg, paths = _cfg(tmp_path)
    cfg["engines"]["openai"]["base_url"] = "https://gpu07:8000"
    dep = {"model": "org/model-7b", "slug": "org_model-7b-1a2b3c"}
    assert definitions.external_target(cfg, paths, dep) is None  # off by default
    cfg["engines"]["openai"]["metrics_path"] = "/metrics"
    target = load(definitions.external_target(cfg, paths, dep))[0]
    assert target["targets"] == ["gpu07:8000"]
    assert target["labels"]["__metrics_path__"] == "/metrics"
    assert target["labels"]["__scheme__"] == "https"
    assert target["labels"]["model"] == "org/model-7b" and target["labels"]["role"] == "llm_server"
    assert target["labels"]["deployment"] == dep["slug"]
