"""LLM engines: how to start each server, when it is ready, and how to ask it for tokens."""

from __future__ import annotations

import importlib
from types import ModuleType

ENGINES = ("llama_cpp", "ollama", "openai")


class NotServable(RuntimeError):
    """The server answers but will never serve as configured (e.g. a GPU build asked to
    offload is running on the CPU); readiness stops at once with this message."""


def engine_module(name: str) -> ModuleType:
    if name not in ENGINES:
        raise ValueError(f"unknown engine {name!r}")
    return importlib.import_module(f"llmsweep.engines.{name}")
