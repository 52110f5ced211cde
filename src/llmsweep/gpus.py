"""How many GPUs a server gets: those visible on this machine, or those a SLURM job asks
for. The LLM server offloads its model by default only when it has at least one."""

from __future__ import annotations

import os
import re

NO_DEVICES = {"", "-1", "NoDevFiles", "none"}


def visible() -> int:
    """GPUs this process may use: CUDA_VISIBLE_DEVICES when set (as SLURM sets it for a job
    with GPUs), else the devices NVML counts; 0 without a driver."""
    listed = os.environ.get("CUDA_VISIBLE_DEVICES")
    if listed is not None:
        entries = [e.strip() for e in listed.split(",")]
        return 0 if entries[0] in NO_DEVICES else len([e for e in entries if e])
    try:
        import pynvml
    except ImportError:
        return 0
    try:
        pynvml.nvmlInit()
        try:
            return int(pynvml.nvmlDeviceGetCount())
        finally:
            pynvml.nvmlShutdown()
    except pynvml.NVMLError:
        return 0


def requested(resources: dict) -> int:
    """GPUs a SLURM job asks for with the executor's resource keys (gres: gpu:2 or
    gpu:a100:2, or gpu: 2); 0 when none."""
    gres = str(resources.get("gres") or "")
    total = 0
    for item in filter(None, gres.split(",")):
        parts = item.strip().split(":")
        if parts[0] == "gpu":
            count = parts[-1] if len(parts) > 1 and re.fullmatch(r"\d+", parts[-1]) else "1"
            total += int(count)
    if total:
        return total
    try:
        return int(resources.get("gpu") or 0)
    except (TypeError, ValueError):
        return 0
