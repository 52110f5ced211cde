"""Config validation: defaults, errors naming the key, the original recipe format."""

import json
import re
import subprocess
import sys
import time
import warnings
from datetime import timedelta

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from llmsweep import config
from llmsweep.loadgen import patterns, point_request
from llmsweep.loadgen.sweep import describe_load, point_settings, sweep_points
from strategies import json_values


def test_defaults_fill_every_section():
    cfg = config.load()
    assert cfg["engine"] == "llama_cpp"
    assert cfg["sweep"]["requests_per_client"] >= 1
    assert cfg["services"]["ports"]["prometheus"] == 0
    assert cfg["engines"]["llama_cpp"]["parallel"] >= 1


@pytest.mark.parametrize(
    ("override", "key"),
    [
        ({"sweep": {"clients": [-1]}}, "sweep.clients[0]"),
        ({"sweep": {"clients": "4"}}, "sweep.clients"),
        ({"sweep": {"requests_per_client": 0}}, "sweep.requests_per_client"),
        ({"sweep": {"slice_s": 0.5}}, "sweep.slice_s"),
        ({"sweep": {"slice_s": 86401}}, "sweep.slice_s"),
        ({"sweep": {"slice_s": "10"}}, "sweep.slice_s"),
        ({"surprise": 1}, "surprise"),
        ({"sweep": {"clientz": [1]}}, "sweep.clientz"),
        ({"engine": "tgi"}, "engine"),
        ({"workload": {"max_tokens": "many"}}, "workload.max_tokens"),
        ({"run": "../etc"}, "run"),
        ({"services": {"ports": {"prometheus": 70000}}}, "services.ports.prometheus"),
        ({"engine": "openai"}, "engines.openai.base_url"),
        ({"models": ["other-model"]}, "engines.llama_cpp.model_files.other-model"),
    ],
)
def test_bad_config_names_the_key(override, key):
    with pytest.raises(config.ConfigError) as err:
        config.load(overrides=override)
    assert key in str(err.value)


def test_slice_length_has_a_default_and_shapes_no_point():
    """sweep.slice_s only cuts a point's figures: changing it re-runs no finished point
    (its fingerprint stays), and the point request does not carry it."""
    from llmsweep.deploy import fingerprint

    cfg = config.load()
    assert cfg["sweep"]["slice_s"] == 10
    assert config.load(overrides={"sweep": {"slice_s": 2.5}})["sweep"]["slice_s"] == 2.5
    other = config.load(overrides={"sweep": {"slice_s": 60}})
    dep = {"engine": "llama_cpp", "model": "m", "gpus": 0, "settings": {}}
    for point in sweep_points(cfg):
        assert fingerprint(cfg, dep, point) == fingerprint(other, dep, point)
        assert "slice_s" not in point_settings(cfg, point)
    changed = config.load(overrides={"sweep": {"requests_per_client": 9}})
    assert fingerprint(cfg, dep, point) != fingerprint(changed, dep, point)


def test_sweep_points_are_models_times_clients():
    cfg = config.load(
        overrides={
            "engine": "openai",
            "engines": {"openai": {"base_url": "http://h:1"}},
            "models": ["a", "b"],
            "sweep": {"clients": [1, 8], "rates": [0.5]},
        }
    )
    points = sweep_points(cfg)
    assert [(p["model"], p["load"]) for p in points] == [
        ("a", "c1"),
        ("a", "c8"),
        ("a", "r0.5"),
        ("b", "c1"),
        ("b", "c8"),
        ("b", "r0.5"),
    ]
    assert points[2] == {
        "deployment": "a",
        "model": "a",
        "engine": "openai",
        "pattern": "open",
        "clients": None,
        "rate": 0.5,
        "time_scale": None,
        "conversations": None,
        "repeat": 0,
        "load": "r0.5",
    }
    assert describe_load(points[1]) == "with 8 clients"
    assert describe_load(points[2]) == "at 0.5 requests/s"
    assert list(point_settings(cfg, points[0])) == [
        "requests_per_client",
        "duration_s",
        "max_point_duration_s",
        "seed",
    ]
    assert "requests_per_client" not in point_settings(cfg, points[2])
    cfg["sweep"]["repeats"] = 2
    points = sweep_points(cfg)
    loads = [p["load"] for p in points if p["model"] == "a"]
    assert loads == ["c1_rep0", "c1_rep1", "c8_rep0", "c8_rep1", "r0.5_rep0", "r0.5_rep1"]
    assert describe_load(points[1]) == "with 1 clients (repeat 1)"


def test_each_pattern_lists_its_levels_under_its_sweep_key():
    """config/schema.yaml marks each list of levels with its pattern (x-pattern), and every
    sweep key a pattern's points depend on is a config key."""
    sweep = config.load_schema()["properties"]["sweep"]["properties"]
    marked = {k: s["x-pattern"] for k, s in sweep.items() if "x-pattern" in s}
    assert marked == {m.SWEEP_KEY: m.NAME for m in patterns.PATTERNS.values()}
    assert config.level_lists() == [m.SWEEP_KEY for m in patterns.PATTERNS.values()]
    for module in patterns.PATTERNS.values():
        assert set(module.SETTINGS) <= set(sweep), module.NAME


BOUNDS = ("type", "enum", "minimum", "maximum", "exclusiveMinimum", "maxLength", "minLength")


def _config_and_request_keys():
    """(key, config's schema, the point request's) of every key a request takes from
    config."""
    props = config.load_schema()["properties"]
    for module in patterns.PATTERNS.values():
        for key, spec in point_request.sweep_keys(module).items():
            if key == module.LEVEL_KEY:  # one level of config's list of levels
                yield (
                    f"sweep.{module.SWEEP_KEY}[]",
                    props["sweep"]["properties"][module.SWEEP_KEY]["items"],
                    spec,
                )
            else:
                yield f"sweep.{key}", props["sweep"]["properties"][key], spec
    for section, keys in (
        ("warmup", point_request.WARMUP),
        ("workload", point_request.WORKLOAD),
        ("client", point_request.CLIENT),
    ):
        for key, spec in keys.items():
            yield f"{section}.{key}", props[section]["properties"][key], spec
    for section, keys in point_request.LENGTHS.items():
        for key, spec in keys.items():
            in_config = props["workload"]["properties"][section]["properties"][key]
            yield f"workload.{section}.{key}", in_config, spec


@pytest.mark.parametrize(("key", "in_config", "in_request"), list(_config_and_request_keys()))
def test_config_has_the_point_requests_bounds(key, in_config, in_request):
    """A config that validates is never refused by the client service later: each key has
    the same type and bounds in config/schema.yaml as in the point request."""
    for bound in BOUNDS:
        if bound in in_request or bound != "type":  # an enum needs no type
            assert in_config.get(bound) == in_request.get(bound), f"{key}: {bound}"


ORIGINAL_RECIPE = {
    "job": {
        "name": "ollama_inference_job",
        "infrastructure": {
            "partition": "gpu",
            "account": "p200981",
            "nodes": 1,
            "mem_gb": 64,
            "time": "01:00:00",
        },
        "service": {
            "type": "inference",
            "model": "gemma3-270m",
            "precision": "fp16",
            "n_clients": 100,
            "n_requests_per_client": 10,
            "prompt": "Hello there",
        },
    }
}


def test_original_recipe_is_mapped(tmp_path):
    path = tmp_path / "recipe.json"
    path.write_text(json.dumps(ORIGINAL_RECIPE))
    with pytest.warns(UserWarning, match="precision"):
        cfg = config.load(path)
    assert cfg["run"] == "ollama_inference_job"
    assert cfg["models"] == ["gemma3-270m"]
    assert cfg["sweep"]["clients"] == [100] and cfg["sweep"]["requests_per_client"] == 10
    assert cfg["workload"]["prompt"] == "Hello there"
    assert cfg["infrastructure"]["account"] == "p200981"
    assert cfg["infrastructure"]["time"] == "01:00:00"


def test_recipe_with_bad_value_names_the_mapped_key(tmp_path):
    recipe = json.loads(json.dumps(ORIGINAL_RECIPE))
    recipe["job"]["service"]["n_clients"] = -5
    path = tmp_path / "recipe.json"
    path.write_text(json.dumps(recipe))
    with pytest.raises(config.ConfigError, match=r"sweep\.clients\[0\]"):
        config.load(path)


def test_check_config_command_exits_2_with_the_key(tmp_path):
    path = tmp_path / "bad.yaml"
    path.write_text("sweep:\n  clients: [0]\n")
    proc = subprocess.run(
        [sys.executable, "-m", "llmsweep.cli", "check-config", "--configfile", str(path)],
        capture_output=True,
        text=True,
    )
    assert proc.returncode == 2
    assert "sweep.clients[0]" in proc.stderr


def test_config_readme_is_generated_from_the_schema_and_names_every_key():
    text = (config.SCHEMA_PATH.parent / "README.md").read_text()
    assert text == config.docs(), "run: llmsweep config-docs > config/README.md"

    def keys(props, prefix=""):
        for name, sub in props.items():
            yield prefix + name
            yield from keys(sub.get("properties", {}), f"{prefix}{name}.")

    missing = [k for k in keys(config.load_schema()["properties"]) if f"`{k}`" not in text]
    assert not missing


def test_a_missing_comparison_baseline_stops_the_run_before_any_job(tmp_path):
    """report.compare_with names a run whose table is an input of the compare rule: a
    missing one is found while the DAG is built, a changed one makes the comparison rerun."""
    from helpers import snakemake, write_config

    write_config(tmp_path, report={"compare_with": "nosuchrun"})
    proc = snakemake(tmp_path, "-n", timeout=300)
    out = proc.stdout + proc.stderr
    assert proc.returncode != 0
    assert "MissingInputException" in out and "results/nosuchrun/report/points.csv" in out
    assert not (tmp_path / "results" / "t").exists() or not list(
        (tmp_path / "results" / "t").rglob("*.jsonl")
    )


# Hardening: every bad config gets one clear message, before any job, in bounded time and
# memory.


SCHEMA = config.load_schema()


def _schema_keys(props: dict = SCHEMA["properties"], path=()):
    """(path, schema) of every key of the schema, `[]` standing for a list's item."""
    for name, sub in config._expand_programs(props, SCHEMA["$defs"]["program"]).items():
        yield (*path, name), sub
        if "items" in sub:
            yield (*path, name, "[]"), sub["items"]
        yield from _schema_keys(sub.get("properties", {}), (*path, name))


def _types(sub: dict) -> set:
    kind = sub.get("type", [])
    return {kind} if isinstance(kind, str) else set(kind)


def _override(path, value) -> tuple[dict, str]:
    """A config setting `path` to `value`, and the key a message names."""
    if path[-1] == "[]":
        path, value = path[:-1], [value]
    cfg = value
    for name in reversed(path):
        cfg = {name: cfg}
    key = ".".join(path) + ("[0]" if isinstance(value, list) else "")
    return cfg, key


NUMBER_KEYS = [path for path, sub in _schema_keys() if _types(sub) & {"number", "integer"}]
INTEGER_KEYS = [path for path, sub in _schema_keys() if "integer" in _types(sub)]


@pytest.mark.parametrize("value", [float("nan"), float("inf"), float("-inf")])
def test_nan_and_infinities_are_refused_for_every_number_key(value):
    """`.nan` made a point of 0 requests, `.inf` a point without end: one rule refuses them
    wherever a number goes, naming the key."""
    assert len(NUMBER_KEYS) > 20 and ("sweep", "max_point_duration_s") in NUMBER_KEYS
    for path in NUMBER_KEYS:
        override, key = _override(path, value)
        with pytest.raises(config.ConfigError, match="not a finite number") as err:
            config.load(overrides=override)
        assert f" {key}: " in str(err.value), key


@pytest.mark.parametrize(
    "text",
    [
        "sweep:\n  max_point_duration_s: .nan\n",
        "sweep:\n  duration_s: .inf\n",
        "sweep: {rates: [.NaN]}",
    ],
)
def test_nan_written_in_yaml_is_refused(tmp_path, text):
    path = tmp_path / "c.yaml"
    path.write_text(text)
    with pytest.raises(config.ConfigError, match=r"sweep\.\w+(\[0\])?: (nan|inf) is not a finite"):
        config.load(path)


def test_integer_valued_floats_are_refused_where_the_schema_says_integer():
    """JSON Schema counts 1.0 as an integer: clients [1.0] made a folder c1.0 that matched
    no rule, workers 2.0 a TypeError. Every integer key refuses a float, naming the key."""
    assert ("sweep", "clients", "[]") in INTEGER_KEYS and ("client", "workers") in INTEGER_KEYS
    for path in INTEGER_KEYS:
        override, key = _override(path, 2.0)
        with pytest.raises(config.ConfigError) as err:
            config.load(overrides=override)
        assert f"{key}: 2.0 is not of type 'integer'" in str(err.value)


def test_rates_have_a_minimum_and_folders_that_read_back_as_the_rate():
    with pytest.raises(config.ConfigError, match=r"sweep\.rates\[0\]: 1e-05 is less than"):
        config.load(overrides={"sweep": {"rates": [0.00001]}})
    cfg = config.load(overrides={"sweep": {"clients": [], "rates": [1.0000001, 1.0000002, 2, 0.5]}})
    loads = [p["load"] for p in sweep_points(cfg)]
    assert loads == ["r1.0000001", "r1.0000002", "r2", "r0.5"]  # 6 digits made r1 twice
    assert describe_load(sweep_points(cfg)[0]) == "at 1.0000001 requests/s"


@settings(max_examples=300, deadline=None, database=None)
@given(st.floats(min_value=0.001, max_value=100000))
def test_a_rates_folder_name_reads_back_as_the_rate(rate):
    open_loop = patterns.PATTERNS["open"]
    text = open_loop.level_text(rate)
    assert float(text) == rate
    assert re.fullmatch(patterns.LOAD_REGEX, open_loop.PREFIX + text)


@pytest.mark.parametrize(
    ("override", "key"),
    [
        ({"input_tokens": {"mean": 1000000000}}, "workload.input_tokens.mean"),
        ({"input_tokens": {"mean": 10, "stdev": 1e300}}, "workload.input_tokens.stdev"),
        ({"output_tokens": {"mean": 10, "stdev": 200000}}, "workload.output_tokens.stdev"),
        ({"output_tokens": {"mean": 200000}}, "workload.output_tokens.mean"),
    ],
)
def test_token_lengths_are_bounded_as_the_api_bounds_them(override, key):
    """A mean of 10^9 input tokens ran the prompt builder out of memory."""
    with pytest.raises(config.ConfigError, match="greater than the maximum") as err:
        config.load(overrides={"workload": override})
    assert key in str(err.value)


def test_drawn_token_lengths_stay_within_the_apis_bounds(tmp_path):
    """Each drawn length is clamped, so even mean and stdev at their bounds never give a
    prompt's max_tokens that the client service's API refuses."""
    from llmsweep.loadgen.workload import build_prompts

    top = point_request.MAX_TOKENS["maximum"]
    prompts = tmp_path / "prompts.jsonl"
    prompts.write_text('{"prompt": "p"}\n' * 2000)
    cfg = config.load(
        overrides={
            "workload": {
                "prompt_file": str(prompts),
                "output_tokens": {"mean": top, "stdev": top},
            }
        }
    )
    lengths = [p["max_tokens"] for p in build_prompts(cfg["workload"], "http://unused", "m", 0)]
    assert min(lengths) == 1 and max(lengths) == top


BOMB = """\
a: &a [lol, lol, lol, lol, lol, lol, lol, lol, lol]
b: &b [*a, *a, *a, *a, *a, *a, *a, *a, *a]
c: &c [*b, *b, *b, *b, *b, *b, *b, *b, *b]
d: &d [*c, *c, *c, *c, *c, *c, *c, *c, *c]
e: &e [*d, *d, *d, *d, *d, *d, *d, *d, *d]
f: &f [*e, *e, *e, *e, *e, *e, *e, *e, *e]
sweep: {clients: [*f, *f, *f, *f, *f, *f, *f, *f, *f]}
"""


def test_an_alias_bomb_is_refused_quickly_with_bounded_memory(tmp_path):
    """A few hundred bytes whose aliases expand to 9^7 values drove check-config to 3 GB
    (the message printed the expanded value). Refused while composing, in a child limited
    to 1 GB of address space, so that the test fails cleanly without the limit."""
    assert len(BOMB) < 400
    path = tmp_path / "bomb.yaml"
    path.write_text(BOMB)
    script = (
        "import resource, sys\n"
        "resource.setrlimit(resource.RLIMIT_AS, (2**30, 2**30))\n"
        "from llmsweep import cli\n"
        "rc = cli.main(['check-config', '--configfile', sys.argv[1]])\n"
        # VmHWM, this process's own peak: ru_maxrss would carry the test runner's peak
        # over the exec that started it.
        "print(next(l.split()[1] for l in open('/proc/self/status') if l.startswith('VmHWM')))\n"
        "sys.exit(rc)\n"
    )
    start = time.monotonic()
    proc = subprocess.run(
        [sys.executable, "-c", script, str(path)], capture_output=True, text=True, timeout=120
    )
    assert time.monotonic() - start < 30
    assert proc.returncode == 2, proc.stderr[-2000:]
    assert proc.stderr.startswith(f"llmsweep: {path}: line 6, column ")
    assert proc.stderr.endswith(": too large: more than 100,000 values with every alias expanded\n")
    assert int(proc.stdout) < 200_000  # KiB


def test_a_shared_value_is_measured_expanded_and_cut_short_in_messages():
    """Snakemake hands the workflow the config it read itself, aliases as shared values:
    the same limits apply to it, and a message shows a value cut short."""
    bomb = ["lol"] * 9
    for _ in range(7):
        bomb = [bomb] * 9
    start = time.monotonic()
    with pytest.raises(config.ConfigError, match=r"\(top level\): too large: more than 100,000"):
        config.prepare(config.merged({"sweep": {"clients": bomb}}))
    assert time.monotonic() - start < 5
    with pytest.raises(config.ConfigError) as err:
        config.load(overrides={"sweep": {"clients": [["x" * 100000] * 5] * 5}})
    assert "sweep.clients[0]: ['xxx" in str(err.value) and len(str(err.value)) < 600
    with pytest.raises(config.ConfigError, match=r"unknown key kkkk.* and 1 more$") as err:
        config.load(overrides={"k" * 100000 + str(i): 1 for i in range(6)})
    assert len(str(err.value)) < 1000


@pytest.mark.parametrize(
    ("content", "message"),
    [
        (b"run: demo\n\xff\xfe\n", "line 2, column 1: not UTF-8 text (byte 0xff)"),
        (b"- 1\n- 2\n", "the top level must be a mapping of keys, not a list"),
        (b"just text\n", "the top level must be a mapping of keys, not text"),
        (b"sweep: [\n  clients: 1\n", "line 3, column 1: expected ',' or ']'"),
        (b"sweep:\n  clients: [1]\n rates: []\n", "line 3, column 2: "),
        (
            b"run: !!python/object:os.system {}\n",
            "line 1, column 6: the tag !!python/object:os.system is not allowed",
        ),
        (b"run: &a [*a]\n", "line 1, column 10: an alias inside its own anchor"),
        (b"run: " + b"[" * 100 + b"]" * 100 + b"\n", "nested more than 32 levels deep"),
        (b"sweep: {seed: 2024-13-45}\n", "line 1, column 15: cannot read '2024-13-45'"),
        (b"sweep: {seed: 0x" + b"f" * 5000 + b"}\n", "sweep.seed: <an integer of 20000 bits>"),
        (b"1: x\n", "(top level): the key 1 is not text"),
        (b'run: "a\\0b"\n', "run: text with a NUL character"),
        (b'{"job": {"service": 5}}', "job.service: 5 is not of type 'object'"),
        (b'{"job": {"infrastructure": []}}', "job.infrastructure: [] is not of type 'object'"),
        (b'{"job": {}, "sweep": 3}', "sweep: 3 is not of type 'object'"),
        (b"sweep:\n  max_point_duration_s: .nan\n", "sweep.max_point_duration_s: nan is not"),
    ],
)
def test_check_config_says_what_is_wrong_in_one_line(tmp_path, capsys, content, message):
    """A bad file gives `llmsweep: <file>: <what>` and exit status 2, never a traceback."""
    from llmsweep import cli

    path = tmp_path / "bad.yaml"
    path.write_bytes(content)
    assert cli.main(["check-config", "--configfile", str(path)]) == 2
    err = capsys.readouterr().err
    assert err.startswith(f"llmsweep: {path}: ") and err.count("\n") == 1
    assert message in err


def test_check_config_names_a_missing_file(tmp_path, capsys):
    from llmsweep import cli

    assert cli.main(["check-config", "--configfile", str(tmp_path / "no.yaml")]) == 2
    assert (
        capsys.readouterr().err == f"llmsweep: {tmp_path / 'no.yaml'}: No such file or directory\n"
    )


@pytest.mark.parametrize(
    ("override", "key"),
    [
        ({"run": "run\n"}, "run"),
        ({"report": {"compare_with": "base\n"}}, "report.compare_with"),
        ({"models": ["m\n"]}, "models[0]"),
    ],
)
def test_a_trailing_newline_does_not_pass_a_pattern(override, key):
    """Python's `$` matches before a final newline; JSON Schema's (ECMA-262) does not."""
    with pytest.raises(config.ConfigError, match="does not match") as err:
        config.load(overrides=override)
    assert f" {key}: " in str(err.value)


def test_a_run_name_with_a_trailing_newline_is_refused():
    from llmsweep.paths import run_name

    assert run_name("run") == "run"
    with pytest.raises(ValueError, match="invalid run name"):
        run_name("run\n")


def test_nested_config_args_are_read_as_yaml():
    """Snakemake reads `--config sweep={clients: [1]}` with YAML's base loader: every value
    text. The workflow reads such a value again, as YAML."""
    cfg = {"run": "x", "sweep": {"clients": ["1"], "requests_per_client": 4}}
    args = ['sweep={"clients": [1], "rates": [0.5]}', "run=x", "models=[a, b]"]
    config.read_config_args(cfg, args)
    assert cfg == {"run": "x", "sweep": {"clients": [1], "rates": [0.5], "requests_per_client": 4}}
    cfg = {"sweep": {}}
    with pytest.raises(
        config.ConfigError, match=r"--config sweep: line 1, column 3: expected the node"
    ):
        config.read_config_args(cfg, ["sweep={[}"])


def _dry_run(tmp_path, *args):
    from helpers import snakemake

    proc = snakemake(tmp_path, "-n", *args, timeout=300)
    return proc.returncode, proc.stdout + proc.stderr


def test_the_workflow_stops_on_a_bad_config_with_one_line_and_no_traceback(tmp_path):
    (tmp_path / "config.yaml").write_text("sweep:\n  max_point_duration_s: .nan\n")
    rc, out = _dry_run(tmp_path)
    assert rc == 2, out
    assert (
        f"llmsweep: {tmp_path / 'config.yaml'}: invalid config: sweep.max_point_duration_s: "
        "nan is not a finite number" in out
    )
    assert "Traceback" not in out and 'File "' not in out and "ConfigError" not in out


def test_the_workflow_reads_nested_config_args_as_yaml(tmp_path):
    from helpers import write_config

    write_config(tmp_path)
    rc, out = _dry_run(tmp_path, "--config", 'sweep={"clients": [3], "rates": [0.5]}')
    assert rc == 0, out
    assert "/c3" in out and "/r0.5" in out and "/c1" not in out


# Property-based: whatever the input, prepare() returns or raises ConfigError with a short
# message; never another exception.

YAML_PIECES = st.sampled_from(
    [
        "\n",
        "  ",
        "- ",
        ": ",
        ", ",
        "[",
        "]",
        "{",
        "}",
        "'",
        '"',
        "# x",
        "? ",
        "---\n",
        "...\n",
        "&a ",
        "*a",
        "&b ",
        "*b",
        "<<: ",
        "!!python/object:os.system ",
        "!!binary ",
        "!!set ",
        "!!float ",
        "!!int ",
        "!foo ",
        "%YAML 1.1\n",
        "run",
        "sweep",
        "clients",
        "rates",
        "workload",
        "input_tokens",
        "mean",
        "job",
        "service",
        "n_clients",
        "monitoring",
        "node_exporter",
        "enabled",
        "models",
        "0",
        "1",
        "1.0",
        "-1",
        ".nan",
        ".inf",
        "1e400",
        "0x1f",
        "1:2:3",
        "2024-13-45",
        "2024-01-01",
        "true",
        "null",
        "~",
        "yes",
        "\\0",
        "\t",
        "|\n  ",
        ">\n  ",
        "\x00",
        "\x85",
        "\ufeff",
    ]
)
YAML_TEXT = st.lists(st.one_of(YAML_PIECES, st.text(max_size=4)), max_size=40).map("".join)

JSON_VALUES = json_values(12)
CONFIG_KEYS = st.sampled_from(
    [path for path, _ in _schema_keys() if "[]" not in path]
    + [
        ("job",),
        ("job", "service"),
        ("job", "service", "n_clients"),
        ("job", "name"),
        ("job", "infrastructure"),
        ("surprise",),
        ("sweep", "surprise"),
    ]
)


def _prepared_or_refused(cfg) -> None:
    try:
        config.prepare(cfg)
    except config.ConfigError as exc:
        assert 0 < len(str(exc)) <= config.MAX_MESSAGE


def _set(cfg: dict, path: tuple, value) -> None:
    for name in path[:-1]:
        if not isinstance(cfg.get(name), dict):
            cfg[name] = {}
        cfg = cfg[name]
    cfg[path[-1]] = value


@settings(max_examples=150, deadline=timedelta(seconds=10), database=None)
@given(YAML_TEXT)
def test_any_yaml_text_is_read_or_refused_with_a_short_message(text):
    try:
        value = config.parse_yaml(text)
    except config.ConfigError as exc:
        assert 0 < len(str(exc)) <= config.MAX_MESSAGE
        return
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")  # a recipe's unused keys
        _prepared_or_refused(value)
        if isinstance(value, dict):
            _prepared_or_refused(config.merged(value))


@settings(max_examples=150, deadline=timedelta(seconds=10), database=None)
@given(st.lists(st.tuples(CONFIG_KEYS, JSON_VALUES), min_size=1, max_size=4))
def test_any_change_to_a_valid_config_is_accepted_or_refused_with_a_short_message(changes):
    cfg = config.merged({})
    for path, value in changes:
        _set(cfg, path, value)
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        _prepared_or_refused(cfg)


def test_a_recipe_means_ollama_unless_the_config_names_the_engine(tmp_path):
    recipe = json.loads(json.dumps(ORIGINAL_RECIPE))
    recipe["job"]["service"]["model"] = "llama2"  # an Ollama name, as in the original
    path = tmp_path / "recipe.json"
    path.write_text(json.dumps(recipe))
    with pytest.warns(UserWarning):
        assert config.load(path)["engine"] == "ollama"
    # Named by the user, llama_cpp stays, and then a GGUF file is needed for llama2.
    with pytest.warns(UserWarning), pytest.raises(config.ConfigError, match="model_files.llama2"):
        config.load(path, overrides={"engine": "llama_cpp"})
    assert config.load(overrides={"models": ["gemma3-270m"]})["engine"] == "llama_cpp"
