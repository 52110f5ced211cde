"""vLLM and SGLang, launched by llmsweep. Neither can run here (no GPU, no package): their
command lines and environment are checked as text, and stand-ins that parse the real
flags and serve the real endpoints (tests/fakes/bin/vllm, tests/fakes/sglang) are started
through the real service controller and wrapper."""

import asyncio
import contextlib
import json
import os
import subprocess
import sys
from pathlib import Path
from urllib.request import urlopen

import pytest
from prometheus_client.parser import text_string_to_metric_families

from conftest import ROOT, alive_pids
from llmsweep import config as configuration
from llmsweep import deployments, secret
from llmsweep.engines import engine_module, settings_errors, sglang, vllm
from llmsweep.loadgen import protocols, session, workload
from llmsweep.loadgen.request import stream_request
from llmsweep.paths import RunPaths
from llmsweep.procs import group_alive
from llmsweep.services import definitions
from llmsweep.services.controller import Controller
from llmsweep.services.local import LocalBackend
from llmsweep.services.wrapper import substitute
from llmsweep.util import free_port, read_json, wait_until

FAKES = ROOT / "tests" / "fakes"
MODEL = "org/tiny-chat"
# Each engine's gauge of requests being decoded, and its counter of generated tokens.
RUNNING = {"vllm": "vllm:num_requests_running", "sglang": "sglang:num_running_reqs"}
GENERATED = {"vllm": "vllm:generation_tokens_total", "sglang": "sglang:generation_tokens_total"}
EVERY_SETTING = {
    "vllm": {
        "max_num_seqs": 64,
        "max_model_len": 8192,
        "gpu_memory_utilization": 0.85,
        "max_num_batched_tokens": 4096,
        "enable_prefix_caching": True,
        "dtype": "bfloat16",
        "quantization": "awq",
        "extra_args": ["--enforce-eager", "--seed", "7"],
    },
    "sglang": {
        "max_running_requests": 64,
        "context_length": 8192,
        "mem_fraction_static": 0.8,
        "chunked_prefill_size": 4096,
        "disable_radix_cache": True,
        "dtype": "bfloat16",
        "quantization": "awq",
        "extra_args": ["--trust-remote-code", "--log-level", "warning"],
    },
}


def configured(name: str, **changes) -> dict:
    """The whole config for engine `name` with `changes` to its settings, validated."""
    cfg = configuration.merged({"engine": name, "models": [MODEL], "engines": {name: changes}})
    return configuration.validate_schema(cfg)


def settings(name: str, **changes) -> dict:
    return configured(name, **changes)["engines"][name]


# -- command lines and environment, as text ----------------------------------------------


def test_vllm_native_command_line_and_environment():
    argv, env = vllm.command(settings("vllm"), MODEL, cpus=8, gpus=0)
    assert argv == [
        "vllm",
        "serve",
        MODEL,
        "--served-model-name",
        MODEL,
        "--host",
        "{host}",
        "--port",
        "{port}",
        "--enable-prompt-tokens-details",
    ]
    assert env == {"VLLM_NO_USAGE_STATS": "1"}


def test_sglang_native_command_line_and_environment():
    argv, env = sglang.command(settings("sglang", python="/opt/sglang/bin/python"), MODEL)
    assert argv == [
        "/opt/sglang/bin/python",
        "-m",
        "sglang.launch_server",
        "--model-path",
        MODEL,
        "--served-model-name",
        MODEL,
        "--host",
        "{host}",
        "--port",
        "{port}",
        "--enable-metrics",
        "--enable-cache-report",
    ]
    assert env == {}


def test_vllm_apptainer_command_line_binds_a_local_model_folder(tmp_path):
    weights = tmp_path / "weights"
    weights.mkdir()
    chosen = settings("vllm", image="/images/vllm-0.11.sif", model_files={MODEL: str(weights)})
    argv, env = vllm.command(chosen, MODEL, gpus=2)
    assert argv == [
        "apptainer",
        "exec",
        "--nv",
        "--bind",
        f"{weights}:{weights}:ro",
        "/images/vllm-0.11.sif",
        "vllm",
        "serve",
        str(weights),
        "--served-model-name",
        MODEL,
        "--host",
        "{host}",
        "--port",
        "{port}",
        "--enable-prompt-tokens-details",
        "--tensor-parallel-size",
        "2",
    ]
    assert env == {"VLLM_NO_USAGE_STATS": "1"}


def test_sglang_apptainer_command_line_passes_a_hub_model_by_name():
    chosen = settings("sglang", image="/images/sglang.sif", apptainer="singularity")
    argv, _ = sglang.command(chosen, MODEL, gpus=4)
    assert argv[:8] == [
        "singularity",
        "exec",
        "--nv",
        "/images/sglang.sif",
        "python3",
        "-m",
        "sglang.launch_server",
        "--model-path",
    ]
    assert argv[8] == MODEL and "--bind" not in argv  # nothing local to mount
    assert argv[-2:] == ["--tp-size", "4"]


@pytest.mark.parametrize("gpus", [0, 1, 2, 8])
@pytest.mark.parametrize(
    ("name", "flag"), [("vllm", "--tensor-parallel-size"), ("sglang", "--tp-size")]
)
def test_tensor_parallel_size_is_the_deployments_gpu_count(name, flag, gpus):
    argv, _ = engine_module(name).command(settings(name), MODEL, cpus=4, gpus=gpus)
    if gpus == 0:
        assert flag not in argv
    else:
        assert argv[argv.index(flag) + 1] == str(gpus) and argv.count(flag) == 1


@pytest.mark.parametrize("name", ["vllm", "sglang"])
def test_null_settings_leave_their_flags_out_and_set_ones_give_them(name):
    module = engine_module(name)
    bare, _ = module.command(settings(name), MODEL)
    for key, flag in module.FLAGS.items():
        assert flag not in bare, f"{key} is null but {flag} was given"
    chosen = EVERY_SETTING[name]
    argv, _ = module.command(settings(name, **chosen), MODEL)
    for key, flag in module.FLAGS.items():
        assert argv[argv.index(flag) + 1] == str(chosen[key]), key
    assert argv[-len(chosen["extra_args"]) :] == chosen["extra_args"]  # each its own argument


def test_vllm_prefix_caching_is_an_on_off_pair_and_sglang_has_an_off_switch():
    def vllm_argv(value):
        return vllm.command(settings("vllm", enable_prefix_caching=value), MODEL)[0]

    assert "--enable-prefix-caching" in vllm_argv(True)
    assert "--no-enable-prefix-caching" in vllm_argv(False)
    assert not any("prefix-caching" in a for a in vllm_argv(None))
    assert "--disable-radix-cache" not in sglang.command(settings("sglang"), MODEL)[0]
    off = settings("sglang", disable_radix_cache=True)
    assert "--disable-radix-cache" in sglang.command(off, MODEL)[0]


@pytest.mark.parametrize(
    ("name", "bad", "key"),
    [
        ("vllm", {"max_num_seqs": 0}, "engines.vllm.max_num_seqs"),
        ("vllm", {"gpu_memory_utilization": 1.5}, "engines.vllm.gpu_memory_utilization"),
        ("vllm", {"gpu_memory_utilization": 0}, "engines.vllm.gpu_memory_utilization"),
        ("vllm", {"max_model_len": "8k"}, "engines.vllm.max_model_len"),
        ("vllm", {"enable_prefix_caching": "yes"}, "engines.vllm.enable_prefix_caching"),
        ("vllm", {"dtype": "fp8"}, "engines.vllm.dtype"),
        ("vllm", {"quantization": "awq; rm -rf /"}, "engines.vllm.quantization"),
        ("vllm", {"extra_args": "--enforce-eager"}, "engines.vllm.extra_args"),
        ("vllm", {"tensor_parallel_size": 2}, "engines.vllm"),  # it comes from the GPUs
        ("sglang", {"max_running_requests": -1}, "engines.sglang.max_running_requests"),
        ("sglang", {"mem_fraction_static": 2}, "engines.sglang.mem_fraction_static"),
        ("sglang", {"chunked_prefill_size": 0}, "engines.sglang.chunked_prefill_size"),
        ("sglang", {"chunked_prefill_size": -2}, "engines.sglang.chunked_prefill_size"),
        ("sglang", {"disable_radix_cache": None}, "engines.sglang.disable_radix_cache"),
        ("sglang", {"python": ""}, "engines.sglang.python"),
        ("sglang", {"model_files": {MODEL: ""}}, f"engines.sglang.model_files.{MODEL}"),
    ],
)
def test_bad_settings_are_refused_naming_the_key(name, bad, key):
    errors = settings_errors(name, bad)
    assert len(errors) == 1 and errors[0].startswith(key + ":"), errors
    with pytest.raises(configuration.ConfigError, match=key.replace(".", r"\.")):
        configured(name, **bad)


def test_good_settings_pass():
    assert settings_errors("vllm", EVERY_SETTING["vllm"]) == []
    assert settings_errors("sglang", EVERY_SETTING["sglang"]) == []
    assert settings_errors("sglang", {"chunked_prefill_size": -1, "dtype": None}) == []


# -- the stand-ins ------------------------------------------------------------------------


def launching(name: str) -> tuple[dict, dict]:
    """(settings, environment) that make `name`'s command start its stand-in here."""
    if name == "vllm":
        # The stand-in's `python3` must be this interpreter (it imports aiohttp).
        path = f"{Path(sys.executable).parent}{os.pathsep}{os.environ['PATH']}"
        return {"binary": str(FAKES / "bin" / "vllm")}, {"PATH": path}
    pythonpath = os.pathsep.join([str(FAKES / "sglang"), str(ROOT / "src")])
    return {"python": sys.executable}, {"PYTHONPATH": pythonpath}


def run_standin(
    name: str, changes: dict, gpus: int, extra_env: dict
) -> tuple[subprocess.Popen, str]:
    """Start `name`'s stand-in on a free port with the command llmsweep builds; return it
    and its URL."""
    chosen, env = launching(name)
    argv, engine_env = engine_module(name).command(
        settings(name, **chosen, **changes), MODEL, gpus=gpus
    )
    port = free_port("127.0.0.1")
    env = {**os.environ, **env, **engine_env, **extra_env}
    proc = subprocess.Popen(
        substitute(argv, "127.0.0.1", port),
        env=env,
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
        text=True,
    )
    return proc, f"http://127.0.0.1:{port}"


@pytest.mark.parametrize("name", ["vllm", "sglang"])
def test_the_stand_in_accepts_every_flag_llmsweep_gives(name):
    proc, _ = run_standin(name, EVERY_SETTING[name], 2, {"LLMSWEEP_STANDIN_PARSE_ONLY": "1"})
    out, err = proc.communicate(timeout=60)
    assert proc.returncode == 0, err
    args = json.loads(out)
    tp = "tensor_parallel_size" if name == "vllm" else "tp_size"
    assert args[tp] == 2
    served = args["served_model_name"]
    assert served == ([MODEL] if name == "vllm" else MODEL)
    for key, value in EVERY_SETTING[name].items():
        if key != "extra_args":
            assert args[key] == value, key


@pytest.mark.parametrize(
    ("name", "changes", "said"),
    [
        ("vllm", {"extra_args": ["--no-such-flag"]}, "unrecognized arguments: --no-such-flag"),
        ("vllm", {"extra_args": ["--max-num-seqs", "0"]}, "argument --max-num-seqs"),
        ("vllm", {"quantization": "nonsense"}, "argument --quantization/-q: invalid choice"),
        ("sglang", {"extra_args": ["--no-such-flag"]}, "unrecognized arguments: --no-such-flag"),
        ("sglang", {"extra_args": ["--context-length", "x"]}, "argument --context-length"),
    ],
)
def test_the_stand_in_refuses_what_the_real_server_refuses(name, changes, said):
    proc, _ = run_standin(name, changes, 0, {})
    _, err = proc.communicate(timeout=60)
    assert proc.returncode == 2 and said in err, err


@contextlib.contextmanager
def standalone(name: str):
    """`name`'s stand-in, started directly, ready; stopped afterwards."""
    proc, url = run_standin(name, {}, 0, {})
    module = engine_module(name)
    try:
        wait_until(lambda: proc.poll() is not None or module.ready(url, MODEL), 30, name)
        assert proc.poll() is None, proc.communicate()[1]
        yield url
    finally:
        proc.terminate()
        proc.communicate(timeout=30)


def synthetic_prompts(url: str) -> list[dict]:
    spec = {"mean": 12, "stdev": 0}
    load = {"prompt_file": None, "input_tokens": spec, "output_tokens": None, "max_tokens": 4}
    return workload.build_prompts({**load, "prompt": "unused"}, url, MODEL, seed=1)


def test_synthetic_prompts_come_from_vllms_tokenizer():
    assert vllm.TOKENIZES
    with standalone("vllm") as url:
        prompts = synthetic_prompts(url)
    # The stand-in's tokenizer has one token per character.
    assert prompts and all(len(p["prompt"]) == 12 for p in prompts)


def test_synthetic_prompts_come_from_sglangs_tokenizer():
    assert sglang.TOKENIZES
    with standalone("sglang") as url:
        prompts = synthetic_prompts(url)
    assert prompts and all(len(p["prompt"]) == 12 for p in prompts)


def test_readiness_waits_for_sglangs_warm_up_and_needs_the_model_listed():
    with standalone("sglang") as url:
        assert sglang.ready(url, MODEL)
        assert not sglang.ready(url, "another/model")  # not listed, and a 404 completion
        assert sglang.healthy(url)


# -- through the real service controller and wrapper --------------------------------------


TUNED = {
    "vllm": {"max_num_seqs": 8, "max_model_len": 2048, "enable_prefix_caching": False},
    "sglang": {"max_running_requests": 8, "context_length": 2048, "disable_radix_cache": True},
}


def service_config(name: str) -> dict:
    chosen, _ = launching(name)
    cfg = configured(name, **chosen, **TUNED[name])
    cfg["run"] = "engines"
    cfg["services"]["ready_timeout_s"] = 30
    # Prometheus registration of the server's metrics, without exporters beside it.
    cfg["monitoring"]["enabled"] = True
    cfg["monitoring"]["node_exporter"]["enabled"] = False
    cfg["monitoring"]["gpu_exporter"] = False
    return cfg


def stream_one(name: str, url: str, headers: dict | None = None) -> dict:
    """One streaming chat request from the project's load generator."""
    protocol = protocols.for_engine(name)

    async def go():
        async with session.new_session(30, session.keep_alive_for(name), headers) as http:
            body = protocol.body("chat", MODEL, "Say hello", 5, True)
            return await stream_request(http, url, protocol, "chat", body, keep_text=True)

    return asyncio.run(go())


def scraped(url: str) -> dict[str, float]:
    """Every sample of a Prometheus text page, by name."""
    with urlopen(url, timeout=10) as resp:
        text = resp.read().decode()
    return {s.name: s.value for f in text_string_to_metric_families(text) for s in f.samples}


def check_serving(name: str, lease: dict, spec: dict) -> None:
    """Ready, answering a streaming request with the run's token and refusing one without
    it, with its metrics served and registered."""
    module = engine_module(name)
    url = lease["url"]
    headers = secret.headers_of(lease)
    assert headers["Authorization"].startswith("Bearer ")
    assert module.ready(url, MODEL, headers) and module.healthy(url, headers)
    refused = stream_one(name, url)
    assert not refused["ok"] and refused["status"] == 401, refused
    assert not module.ready(url, MODEL)
    rec = stream_one(name, url, headers)
    assert rec["ok"], rec
    assert rec["text"] == "w0 w1 w2 w3 w4 "
    assert rec["output_tokens"] == 5 and rec["output_tokens_source"] == "usage"
    samples = scraped(url + module.METRICS_PATH)
    assert samples[RUNNING[name]] == 0 and samples[GENERATED[name]] >= 5
    target_file = Path(spec["targets"][0]["file"])
    target = wait_until(lambda: target_file.exists() and read_json(target_file), 10, "target")
    assert target[0]["targets"] == [url.removeprefix("http://")]
    assert target[0]["labels"]["__metrics_path__"] == module.METRICS_PATH
    assert target[0]["labels"]["engine"] == name


def check_started_as_configured(name: str, lease: dict, seen: dict) -> None:
    """The stand-in is the process the controller recorded, started with the settings and
    the run's token."""
    token = secret.read(lease["secret_file"])
    assert seen["pid"] == lease["pid"]  # the wrapper exec'd the server in its place
    args = seen["args"]
    assert args["host"] == "127.0.0.1" and lease["url"].endswith(f":{args['port']}")
    if name == "vllm":
        assert args["served_model_name"] == [MODEL]
        assert args["max_num_seqs"] == 8 and args["enable_prefix_caching"] is False
        assert args["tensor_parallel_size"] == 1  # no GPU here: vLLM's default
        assert seen["env"]["VLLM_NO_USAGE_STATS"] == "1"
        # The token reached vLLM in its environment, never on its command line.
        assert seen["env"]["VLLM_API_KEY"] == token
        assert token not in " ".join(seen["argv"])
        assert vllm.metadata(lease["url"], MODEL, secret.headers_of(lease)) == {
            "engine_version": "0.0.0+stand-in",
            "max_model_len": 2048,
            "root": MODEL,
        }
    else:
        # SGLang takes the key as --api-key only: given inside the process, so its command
        # line (what ps shows) does not hold it, and the variable that carried it is gone.
        assert seen["argv"][:4] == [
            sys.executable,
            "-c",
            sglang.KEYED_LAUNCH,
            "sglang.launch_server",
        ]
        assert args["api_key"] == token and token not in " ".join(seen["argv"])
        assert sglang.KEY_ENV not in seen["env"]
        assert args["enable_metrics"] and args["disable_radix_cache"]
        assert args["max_running_requests"] == 8
        assert sglang.metadata(lease["url"], MODEL, secret.headers_of(lease)) == {
            "engine_version": "0.0.0+stand-in",
            "max_model_len": 2048,
            "root": MODEL,
            "tp_size": 1,
            "max_total_num_tokens": 100_000,
        }


@pytest.mark.parametrize("name", ["vllm", "sglang"])
def test_the_stand_in_runs_as_a_service_and_leaves_no_process(
    name, tmp_path, monkeypatch, no_owner
):
    record = tmp_path / "standin.json"
    monkeypatch.setenv("LLMSWEEP_STANDIN_RECORD", str(record))
    for key, value in launching(name)[1].items():
        monkeypatch.setenv(key, value)
    cfg = service_config(name)
    paths = RunPaths(cfg["run"], tmp_path / "results")
    (dep,) = deployments.expand(cfg)
    spec = definitions.llm_server(cfg, paths, dep, cpus=2, gpus=0)
    ctl = Controller(paths, LocalBackend(), owner={})
    try:
        lease = ctl.ensure(spec)
        assert lease["status"] == "started"
        check_serving(name, lease, spec)
        check_started_as_configured(name, lease, read_json(record))
    finally:
        ctl.stop_all()
    wait_until(lambda: not alive_pids([lease["pid"]]), 15, "the server to stop")
    wait_until(lambda: not group_alive(lease["pid"]), 15, "its process group to go")
    assert not Path(spec["targets"][0]["file"]).exists()
