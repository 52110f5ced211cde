"""A stand-in for NVIDIA's NVML (nvidia-ml-py) with simulated GPUs (one, or as many as
LLMSWEEP_FAKE_GPUS says), for the tests only: no GPU or driver exists on the test machines.
Put this folder first on PYTHONPATH and llmsweep's GPU exporter reads these values through
the same calls it makes on a real GPU.
Utilisation and power follow the clock so that series move.
"""

import os
import time
from types import SimpleNamespace

NVML_TEMPERATURE_GPU = 0
NVML_CLOCK_SM = 1


class NVMLError(Exception):
    pass


def _phase() -> float:
    return (time.time() % 20) / 20


def nvmlInit():
    pass


def nvmlShutdown():
    pass


def nvmlDeviceGetCount():
    return int(os.environ.get("LLMSWEEP_FAKE_GPUS", "1"))


def nvmlDeviceGetHandleByIndex(i):
    if not 0 <= i < nvmlDeviceGetCount():
        raise NVMLError("Invalid Argument")
    return i


def nvmlDeviceGetUUID(h):
    return f"GPU-00000000-0000-0000-0000-{h:012d}"


def nvmlDeviceGetName(h):
    return "Simulated GPU"


def nvmlDeviceGetUtilizationRates(h):
    return SimpleNamespace(gpu=int(100 * _phase()), memory=10)


def nvmlDeviceGetMemoryInfo(h):
    total = 16 * 2**30
    used = int(total * 0.25)
    return SimpleNamespace(total=total, used=used, free=total - used)


def nvmlDeviceGetPowerUsage(h):
    return int(50_000 + 250_000 * _phase())  # milliwatts


def nvmlDeviceGetTemperature(h, sensor):
    return 40 + int(30 * _phase())


def nvmlDeviceGetClockInfo(h, clock):
    return 1410


def nvmlSystemGetDriverVersion():
    return "0.0-simulated"
