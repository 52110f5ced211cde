"""Config validation: defaults, errors naming the key, the original recipe format."""

import json
import subprocess
import sys

import pytest

from llmsweep import config


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
    points = config.sweep_points(cfg)
    assert [(p["model"], p["load"]) for p in points] == [
        ("a", "c1"), ("a", "c8"), ("a", "r0.5"), ("b", "c1"), ("b", "c8"), ("b", "r0.5"),
    ]  # fmt: skip
    assert points[2]["pattern"] == "open" and points[2]["rate"] == 0.5
    cfg["sweep"]["repeats"] = 2
    loads = [p["load"] for p in config.sweep_points(cfg) if p["model"] == "a"]
    assert loads == ["c1_rep0", "c1_rep1", "c8_rep0", "c8_rep1", "r0.5_rep0", "r0.5_rep1"]


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
