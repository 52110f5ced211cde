"""What GPUs the LLM server had, read from the GPU exporter running beside it."""

from __future__ import annotations

import json
import urllib.request
from pathlib import Path

from prometheus_client.parser import text_string_to_metric_families


def gpu_info(target_file: str | Path, headers: dict | None = None) -> dict:
    """{"gpus": n, "models": [...], "error": reason or None}, asked with `headers` (the
    run's token); {} when there is no exporter."""
    try:
        target = json.loads(Path(target_file).read_text())[0]
        address = target["targets"][0]
        req = urllib.request.Request(f"http://{address}/metrics", headers=headers or {})
        with urllib.request.urlopen(req, timeout=10) as resp:
            text = resp.read().decode()
    except (OSError, ValueError, LookupError):
        return {}
    info: dict = {"gpus": 0, "models": [], "error": None}
    for family in text_string_to_metric_families(text):
        for sample in family.samples:
            if sample.name == "llmsweep_gpus":
                info["gpus"] = int(sample.value)
            elif sample.name == "llmsweep_gpu_exporter_error" and sample.value:
                info["error"] = sample.labels.get("reason")
            elif sample.name == "DCGM_FI_DEV_FB_FREE":
                info["models"].append(
                    sample.labels.get("model_name") or sample.labels.get("modelName")
                )
    return info
