"""How many GPUs a server gets: those visible on this machine, or those a SLURM job asks
for. The LLM server offloads its model by default only when it has at least one."""

from __future__ import annotations

import fcntl
import json
import os
import re
import time
from pathlib import Path

from llmsweep.procs import pid_alive, start_time

NO_DEVICES = {"", "-1", "NoDevFiles", "none"}
CLAIM_POLL_S = 1.0


class GPUError(RuntimeError):
    """GPUs asked for that this machine cannot give; the message says which key."""


def visible_ids() -> list[str]:
    """The GPUs this process may use, as CUDA_VISIBLE_DEVICES names them: its entries when
    set (as SLURM sets it for a job with GPUs), else NVML's device indexes; none without a
    driver."""
    listed = os.environ.get("CUDA_VISIBLE_DEVICES")
    if listed is not None:
        entries = [e.strip() for e in listed.split(",")]
        return [] if entries[0] in NO_DEVICES else [e for e in entries if e]
    return [str(i) for i in range(_nvml_count())]


def _nvml_count() -> int:
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


def visible() -> int:
    """How many GPUs this process may use (visible_ids); 0 without a driver."""
    return len(visible_ids())


def claim(folder: Path, count: int, share: bool = False, timeout_s: float = 3600) -> list[str]:
    """Claim `count` of the visible GPUs for one server of this machine, recorded in
    `folder` (one file per GPU and holder); return their CUDA_VISIBLE_DEVICES names.

    A GPU is free when no live process holds it. Without `share`, wait until `count` GPUs
    are free; with it, take the least-held ones at once. Raises GPUError when this machine
    has fewer than `count` GPUs.
    """
    ids = visible_ids()
    if count > len(ids):
        raise GPUError(f"gpus: {count} GPUs per server, but this machine shows {len(ids)}")
    if not count:
        return []
    folder.mkdir(parents=True, exist_ok=True)
    deadline = time.monotonic() + timeout_s
    while True:
        taken = _try_claim(folder, ids, count, share)
        if taken is not None:
            return taken
        if time.monotonic() > deadline:
            raise GPUError(f"no {count} free GPUs within {timeout_s:.0f} s")
        time.sleep(CLAIM_POLL_S)


def _try_claim(folder: Path, ids: list[str], count: int, share: bool) -> list[str] | None:
    with open(folder / ".lock", "w") as lock:
        fcntl.flock(lock, fcntl.LOCK_EX)
        held = [_holders(folder, i) for i in range(len(ids))]
        chosen = sorted(range(len(ids)), key=lambda i: (held[i], i))[:count]
        if not share and any(held[i] for i in chosen):
            return None
        me = {"pid": os.getpid(), "pid_start": start_time(os.getpid())}
        for i in chosen:
            (folder / f"{i}.{os.getpid()}").write_text(json.dumps(me))
        return [ids[i] for i in chosen]


def _holders(folder: Path, index: int) -> int:
    """Live holders of the GPU at `index` of the visible ones; the files of dead holders
    are removed. (Files are named by index: a GPU's name may be a UUID with slashes.)"""
    live = 0
    for path in folder.glob(f"{index}.*"):
        try:
            holder = json.loads(path.read_text())
        except (OSError, ValueError):
            holder = {"pid": -1}
        if holder["pid"] > 0 and pid_alive(holder["pid"], holder.get("pid_start")):
            live += 1
        else:
            path.unlink(missing_ok=True)
    return live


def release(folder: Path) -> None:
    """Give back every GPU this process claimed."""
    for path in folder.glob(f"*.{os.getpid()}"):
        path.unlink(missing_ok=True)


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
