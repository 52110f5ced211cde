"""Every engine is one module behind one interface (llmsweep.engines.INTERFACE), and the
rest of llmsweep asks the module instead of testing the engine's name."""

import pytest

from llmsweep import config as configuration
from llmsweep.engines import ENGINES, INTERFACE, engine_module
from llmsweep.loadgen import protocols, session


@pytest.mark.parametrize("name", ENGINES)
def test_each_engine_module_has_the_whole_interface(name):
    module = engine_module(name)
    missing = [attr for attr in INTERFACE if not hasattr(module, attr)]
    assert not missing, f"engines/{name}.py lacks {missing}"
    assert module.PROTOCOL in protocols.PROTOCOLS
    assert module.METRICS_PATH is None or module.METRICS_PATH.startswith("/")


@pytest.mark.parametrize("name", ENGINES)
def test_places_are_settings_of_the_engine(name):
    from llmsweep.engines import settings_schema

    places = engine_module(name).PLACES
    assert isinstance(places, tuple) and places
    assert set(places) <= set(settings_schema(name)["properties"]), places


@pytest.mark.parametrize("name", [n for n in ENGINES if engine_module(n).LAUNCHED])
def test_launched_engines_give_a_command_with_the_wrappers_placeholders(name, tmp_path):
    cfg = configuration.merged({"engine": name})
    configuration.validate_schema(cfg)
    settings = cfg["engines"][name]
    if name == "llama_cpp":
        settings["binary"] = "/opt/llama/bin/llama-server"  # no lookup of the installed one
    argv, env = engine_module(name).command(settings, "gemma3-270m", 2, 0)
    text = " ".join(argv) + " " + " ".join(env.values())
    assert "{host}" in text and "{port}" in text
    assert all(isinstance(a, str) for a in argv)


def test_the_load_generator_follows_the_engine_module():
    assert protocols.for_engine("ollama") is protocols.Ollama
    assert protocols.for_engine("llama_cpp") is protocols.OpenAI
    assert protocols.for_engine("openai") is protocols.OpenAI
    assert protocols.for_engine("vllm") is protocols.OpenAI
    assert protocols.for_engine("sglang") is protocols.OpenAI
    assert session.keep_alive_for("llama_cpp") is False  # closes after each stream
    assert session.keep_alive_for("openai") is True
    assert session.keep_alive_for("vllm") is True
    assert session.keep_alive_for("sglang") is True
    with pytest.raises(ValueError, match="unknown engine"):
        engine_module("tgi")


def test_an_engine_llmsweep_does_not_start_has_no_command():
    with pytest.raises(ValueError, match="does not start"):
        engine_module("openai").command({}, "m")


def test_each_engine_gives_its_settings_schema_and_names_bad_keys():
    from llmsweep.engines import settings_errors, settings_schema

    for name in ENGINES:
        assert settings_schema(name)["type"] == "object"
    assert settings_errors("llama_cpp", {"parallel": 4}) == []
    errors = settings_errors("llama_cpp", {"parallel": "four", "paralel": 4})
    assert any(e.startswith("engines.llama_cpp.parallel: 'four'") for e in errors)
    assert any(e.startswith("engines.llama_cpp: Additional properties") for e in errors)
    assert settings_errors("ollama", {"num_parallel": 0})[0].startswith(
        "engines.ollama.num_parallel: 0 is less than the minimum"
    )
