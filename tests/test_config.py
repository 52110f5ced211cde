"""Config validation: defaults, errors naming the key, the original recipe format."""

import json
import re
import subprocess
import sys

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from llmsweep import config
from llmsweep.loadgen import patterns, point_request
from llmsweep.loadgen.sweep import describe_load, point_settings, sweep_points


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
        "model": "a",
        "pattern": "open",
        "clients": None,
        "rate": 0.5,
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


# Bounds: rates whose folders read back as the rate, token lengths the API takes.


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
