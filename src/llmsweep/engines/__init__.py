"""LLM engines, one module each behind one interface: how to start the server (command),
when it is ready and serving as configured (healthy, ready, verify), which API the load
generator speaks to it (PROTOCOL), whether it keeps connections open (KEEPS_CONNECTIONS),
where its Prometheus metrics are (METRICS_PATH), whether it has a tokenizer endpoint
(TOKENIZES), and what it says of itself (metadata). A new engine is one new module here.
"""

from __future__ import annotations

import importlib
from types import ModuleType

ENGINES = ("llama_cpp", "ollama", "openai")

# What every engine module defines (tests/test_engines.py checks it).
INTERFACE = (
    "LAUNCHED",  # started by llmsweep (else an already running server at a URL)
    "PROTOCOL",  # the load generator's API family: "openai" or "ollama"
    "KEEPS_CONNECTIONS",  # keep-alive is safe against it
    "METRICS_PATH",  # its Prometheus endpoint, or None
    "TOKENIZES",  # it answers POST /tokenize (synthetic prompts of N tokens)
    "command",  # (settings, model, cpus, gpus) -> (argv, env); LAUNCHED engines only
    "readiness",  # (settings, model, gpus) -> the ready probe's parameters
    "healthy",  # (url) -> bool, cheap
    "ready",  # (url, model) -> bool, the model answers
    "metadata",  # (url, model) -> dict for the report
)


class NotServable(RuntimeError):
    """The server answers but will never serve as configured (e.g. a GPU build asked to
    offload is running on the CPU); readiness stops at once with this message."""


def engine_module(name: str) -> ModuleType:
    if name not in ENGINES:
        raise ValueError(f"unknown engine {name!r}")
    return importlib.import_module(f"llmsweep.engines.{name}")
