"""A small GPU exporter on nvidia-ml-py, for sites without DCGM's exporter.

Its metrics carry DCGM exporter names (DCGM_FI_DEV_*, same units, same gpu label), so one
dashboard serves both; DCGM's camelCase labels (UUID, modelName, Hostname) are written in
snake_case (uuid, model_name, hostname), which Prometheus's linter (promtool check metrics)
asks for. Without a GPU or driver it still runs,
reports llmsweep_gpus 0 and llmsweep_gpu_exporter_error 1 with the reason, and never
crashes; NVML is read at scrape time, each GPU call guarded.

It answers only requests with the run's token (llmsweep.secret), read from the file
--secret-file names.

Usage: python -m llmsweep.metrics.gpu_exporter --host ADDR --port PORT --secret-file FILE
"""

from __future__ import annotations

import argparse
import signal
import socket
import sys
import threading
from socketserver import ThreadingMixIn
from wsgiref.simple_server import WSGIRequestHandler, WSGIServer, make_server

from prometheus_client import make_wsgi_app
from prometheus_client.core import REGISTRY, GaugeMetricFamily
from prometheus_client.registry import Collector

from llmsweep import secret

try:
    import pynvml
except ImportError:  # pragma: no cover - nvidia-ml-py is a dependency
    pynvml = None

LABELS = ["gpu", "uuid", "model_name", "hostname"]
# name -> (help, function of (pynvml, handle) giving the value in DCGM's unit)
FIELDS = {
    "DCGM_FI_DEV_GPU_UTIL": (
        "GPU utilisation (%)",
        lambda nv, h: nv.nvmlDeviceGetUtilizationRates(h).gpu,
    ),
    "DCGM_FI_DEV_FB_USED": (
        "Framebuffer memory used (MiB)",
        lambda nv, h: nv.nvmlDeviceGetMemoryInfo(h).used / 2**20,
    ),
    "DCGM_FI_DEV_FB_FREE": (
        "Framebuffer memory free (MiB)",
        lambda nv, h: nv.nvmlDeviceGetMemoryInfo(h).free / 2**20,
    ),
    "DCGM_FI_DEV_POWER_USAGE": (
        "Power draw (W)",
        lambda nv, h: nv.nvmlDeviceGetPowerUsage(h) / 1000,
    ),
    "DCGM_FI_DEV_GPU_TEMP": (
        "GPU temperature (C)",
        lambda nv, h: nv.nvmlDeviceGetTemperature(h, nv.NVML_TEMPERATURE_GPU),
    ),
    "DCGM_FI_DEV_SM_CLOCK": (
        "SM clock (MHz)",
        lambda nv, h: nv.nvmlDeviceGetClockInfo(h, nv.NVML_CLOCK_SM),
    ),
}


class GpuCollector(Collector):
    def __init__(self):
        self.host = socket.gethostname()
        self.error = ""
        self.ready = False

    def _init(self) -> bool:
        if self.ready:
            return True
        if pynvml is None:
            self.error = "nvidia-ml-py is not installed"
            return False
        try:
            pynvml.nvmlInit()
        except pynvml.NVMLError as exc:
            self.error = f"NVML: {exc}"
            return False
        self.ready = True
        return True

    def collect(self):
        count = GaugeMetricFamily("llmsweep_gpus", "GPUs this exporter sees")
        error = GaugeMetricFamily(
            "llmsweep_gpu_exporter_error", "1 when NVML could not be read", labels=["reason"]
        )
        families = {
            name: GaugeMetricFamily(name, text, labels=LABELS) for name, (text, _) in FIELDS.items()
        }
        n = 0
        if self._init():
            try:
                n = pynvml.nvmlDeviceGetCount()
                self.error = ""
            except pynvml.NVMLError as exc:
                self.error = f"NVML: {exc}"
            for i in range(n):
                try:
                    h = pynvml.nvmlDeviceGetHandleByIndex(i)
                    labels = [
                        str(i),
                        pynvml.nvmlDeviceGetUUID(h),
                        pynvml.nvmlDeviceGetName(h),
                        self.host,
                    ]
                except pynvml.NVMLError as exc:
                    self.error = f"NVML, GPU {i}: {exc}"
                    continue
                for name, (_, read) in FIELDS.items():
                    try:
                        families[name].add_metric(labels, float(read(pynvml, h)))
                    except pynvml.NVMLError:
                        pass  # a field this GPU does not report
        count.add_metric([], n)
        error.add_metric([self.error], 1.0 if self.error else 0.0)
        yield count
        yield error
        yield from families.values()


class _Threads(ThreadingMixIn, WSGIServer):
    daemon_threads = True


class _Quiet(WSGIRequestHandler):
    def log_message(self, *args) -> None:  # Prometheus scrapes it every few seconds
        pass


def main(argv: list[str] | None = None) -> None:
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("--host", required=True, help="address to bind (never all by default)")
    parser.add_argument("--port", type=int, required=True)
    parser.add_argument("--secret-file", required=True, help="the run's token (mode 0600)")
    args = parser.parse_args(argv)
    REGISTRY.register(GpuCollector())
    app = secret.guard(make_wsgi_app(), secret.read(args.secret_file))
    server = make_server(args.host, args.port, app, _Threads, _Quiet)
    threading.Thread(target=server.serve_forever, daemon=True).start()
    done = threading.Event()
    signal.signal(signal.SIGTERM, lambda *_: done.set())
    signal.signal(signal.SIGINT, lambda *_: done.set())
    done.wait()
    server.shutdown()
    sys.exit(0)


if __name__ == "__main__":
    main()
