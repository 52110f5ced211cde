"""LLM engines, one module each behind one interface: how to start the server (command),
when it is ready and serving as configured (healthy, ready, verify), which API the load
generator speaks to it (PROTOCOL), whether it keeps connections open (KEEPS_CONNECTIONS),
where its Prometheus metrics are (METRICS_PATH), whether it has a tokenizer endpoint
(TOKENIZES), what it says of itself (metadata), and which of its settings only say where
the program or model lives (PLACES). A new engine is one new module here.
"""

from __future__ import annotations

import importlib
import os
from pathlib import Path
from types import ModuleType

ENGINES = ("llama_cpp", "ollama", "openai", "vllm", "sglang")

# What every engine module defines (tests/test_engines.py checks it).
INTERFACE = (
    "LAUNCHED",  # started by llmsweep (else an already running server at a URL)
    "PROTOCOL",  # the load generator's API family: "openai" or "ollama"
    "KEEPS_CONNECTIONS",  # keep-alive is safe against it
    "METRICS_PATH",  # its Prometheus endpoint, or None
    "TOKENIZES",  # it answers POST /tokenize (synthetic prompts of N tokens)
    # Its setting names that say where the program or model lives (binary, image, ...),
    # not how it serves: deployment folder names leave them out, so moving a binary or an
    # image keeps a deployment's results.
    "PLACES",
    # (settings, model, cpus, gpus, secret_file) -> (argv, env); LAUNCHED engines only. With
    # secret_file the server requires the run's token (llmsweep.secret) where it can.
    "command",
    "readiness",  # (settings, model, gpus) -> the ready probe's parameters
    "healthy",  # (url, headers) -> bool, cheap; headers carry the run's token
    "ready",  # (url, model, headers) -> bool, the model answers
    "metadata",  # (url, model, headers) -> dict for the report
)


class NotServable(RuntimeError):
    """The server answers but will never serve as configured (e.g. a GPU build asked to
    offload is running on the CPU); readiness stops at once with this message."""


def settings_schema(name: str) -> dict:
    """The JSON Schema of engine `name`'s settings (config key engines.<name>). Its text
    lives in config/schema.yaml, the one authority for every config key (and the source
    of config/README.md); this is how engine code asks for it."""
    from llmsweep.config import load_schema

    if name not in ENGINES:
        raise ValueError(f"unknown engine {name!r}")
    return load_schema()["properties"]["engines"]["properties"][name]


def settings_errors(name: str, settings: dict) -> list[str]:
    """Each problem of `settings` for engine `name`, naming its key (engines.<name>.<key>);
    empty when they are valid."""
    import jsonschema

    validator = jsonschema.Draft202012Validator(settings_schema(name))
    errors = sorted(validator.iter_errors(settings), key=lambda e: list(e.path))
    out = []
    for error in errors:
        where = ".".join(str(p) for p in error.absolute_path)
        key = f"engines.{name}" + (f".{where}" if where else "")
        out.append(f"{key}: {error.message[:300]}")
    return out


def in_image(settings: dict, binds: list[str], argv: list[str]) -> list[str]:
    """`argv` run inside the Apptainer image engines.<name>.image, with the node's GPU
    driver (--nv) and each of `binds` mounted read-only at its own path. The container
    keeps the caller's environment and home (the Hugging Face cache)."""
    out = [settings["apptainer"], "exec", "--nv"]
    for folder in binds:
        out += ["--bind", f"{folder}:{folder}:ro"]
    return [*out, os.path.expanduser(settings["image"]), *argv]


def model_path(settings: dict, model: str) -> str:
    """What the engine loads `model` from: its folder in engines.<name>.model_files (made
    absolute), else the name itself (a Hugging Face repo id, fetched into the cache)."""
    files = settings["model_files"]
    if model in files:
        return str(Path(os.path.expanduser(files[model])).resolve())
    return model


def flag_args(settings: dict, flags: dict[str, str]) -> list[str]:
    """`--flag value` for each setting in `flags` (setting name -> flag) that is not null;
    a null setting leaves its flag out, so the engine's own default applies."""
    out = []
    for key, flag in flags.items():
        if settings[key] is not None:
            out += [flag, str(settings[key])]
    return out


def engine_module(name: str) -> ModuleType:
    if name not in ENGINES:
        raise ValueError(f"unknown engine {name!r}")
    return importlib.import_module(f"llmsweep.engines.{name}")
