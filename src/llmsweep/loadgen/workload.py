"""The prompts of a point: one prompt, a prompt file, or synthetic prompts of a given
token length built with the server's own tokenizer; for a trace point, one prompt per row
of the trace and the trace's schedule."""

from __future__ import annotations

import csv
import json
import random
from pathlib import Path

from llmsweep import traces
from llmsweep.loadgen.point_request import MAX_PROMPTS, MAX_PROMPTS_TEXT, MAX_TOKENS, PROMPT
from llmsweep.util import http_json

# Synthetic prompts per point, requests cycling through them; fewer when they are long, as
# a point's prompts have at most MAX_PROMPTS_TEXT characters in all (4,000,000: 256 of
# 15,000 characters, about 3,000 tokens; 26 of 32,768 tokens).
DISTINCT_PROMPTS = 256
# Plain text to cut synthetic prompts from; a random offset per prompt keeps servers from
# answering from a shared prompt cache.
BASE_TEXT = (
    "The lighthouse stood at the end of a long spit of rock, and every evening the keeper "
    "climbed its hundred and twelve steps to light the lamp. Ships passed far out on the "
    "grey water, their lights moving slowly from north to south. In winter the wind came "
    "from the sea for weeks on end, and salt crusted the windows of the lantern room. "
)


class WorkloadError(ValueError):
    pass


def _length(rng: random.Random, spec: dict) -> int:
    """A token length drawn from `spec` (mean ± stdev), within MAX_TOKENS' bounds."""
    if not spec.get("stdev"):
        n = int(spec["mean"])
    else:
        n = round(rng.gauss(spec["mean"], spec["stdev"]))
    return min(max(MAX_TOKENS["minimum"], n), MAX_TOKENS["maximum"])


def read_prompt_file(path: str | Path) -> list[dict]:
    """JSONL lines {"prompt": ..., "max_tokens": ...} or CSV columns prompt[, max_tokens]."""
    path = Path(path)
    if path.suffix == ".jsonl":
        with open(path) as f:
            rows = [json.loads(line) for line in f if line.strip()]
    else:
        with open(path, newline="") as f:
            rows = list(csv.DictReader(f))
    prompts = []
    for i, row in enumerate(rows, start=1):
        if not isinstance(row, dict) or not str(row.get("prompt") or "").strip():
            raise WorkloadError(f"workload.prompt_file: entry {i} of {path} has no prompt")
        entry = {"prompt": str(row["prompt"])}
        if len(entry["prompt"]) > PROMPT["maxLength"] or "\0" in entry["prompt"]:
            raise WorkloadError(
                f"workload.prompt_file: entry {i} of {path} has more than "
                f"{PROMPT['maxLength']:,} characters, or a NUL character"
            )
        if row.get("max_tokens") not in (None, ""):
            entry["max_tokens"] = int(row["max_tokens"])
        prompts.append(entry)
    if not prompts:
        raise WorkloadError(f"workload.prompt_file: {path} holds no prompts")
    text = sum(len(p["prompt"]) for p in prompts)
    if len(prompts) > MAX_PROMPTS or text > MAX_PROMPTS_TEXT:
        raise WorkloadError(
            f"workload.prompt_file: {path} holds {len(prompts):,} prompts of {text:,} "
            f"characters; a point takes at most {MAX_PROMPTS:,} prompts of "
            f"{MAX_PROMPTS_TEXT:,} characters in all"
        )
    return prompts


def _tokenizer(url: str, model: str, headers: dict | None = None):
    """(tokenize, detokenize) through the server: llama.cpp's and vLLM's endpoints."""

    def tokenize(text: str) -> list[int]:
        status, body = http_json(
            url + "/tokenize",
            {"content": text, "model": model, "prompt": text},
            headers=headers,
        )
        if status != 200 or not isinstance(body, dict) or "tokens" not in body:
            raise WorkloadError(
                "workload.input_tokens needs the server's tokenizer (/tokenize, as llama.cpp "
                f"and vLLM have); {url} answered {status}"
            )
        return body["tokens"]

    def detokenize(tokens: list[int]) -> str:
        status, body = http_json(
            url + "/detokenize", {"tokens": tokens, "model": model}, headers=headers
        )
        if status != 200 or not isinstance(body, dict):
            raise WorkloadError(f"{url}/detokenize answered {status}")
        # llama.cpp says content, vLLM prompt, SGLang text.
        return body.get("content", body.get("prompt", body.get("text", "")))

    return tokenize, detokenize


def _synthetic(tokenize, detokenize):
    """make(rng, n, tag=None): a synthetic prompt of n tokens, cut at a random offset from
    BASE_TEXT as the server's tokenizer splits it, each within the API's length. With a
    `tag` (a trace's row), its first tokens spell the tag in the text's own tokens, so that
    no two rows share a prefix a server could cache (the text repeats, and so would its
    cuts)."""
    base = tokenize(BASE_TEXT * 4)
    digits = sorted(set(base))
    width = 1
    while len(digits) > 1 and len(digits) ** width < traces.MAX_ROWS:
        width += 1

    def make(rng: random.Random, n: int, tag: int | None = None) -> str:
        start = rng.randrange(len(base))
        tokens = [base[(start + i) % len(base)] for i in range(n)]
        if tag is not None and len(digits) > 1:
            spelled = [digits[tag // len(digits) ** k % len(digits)] for k in range(width)]
            tokens[: min(n, width)] = spelled[: min(n, width)]
        return detokenize(tokens)[: PROMPT["maxLength"]]

    return make


def build_prompts(
    workload: dict, llm_url: str, model: str, seed: int, headers: dict | None = None
) -> list[dict]:
    """The point's prompts, each with its max_tokens (the server's tokenizer asked with
    `headers`, the run's token)."""
    rng = random.Random(seed)
    if workload["prompt_file"]:
        prompts = read_prompt_file(workload["prompt_file"])
    elif workload["input_tokens"]:
        make = _synthetic(*_tokenizer(llm_url, model, headers))
        prompts, text = [], 0
        for _ in range(DISTINCT_PROMPTS):
            prompt = make(rng, _length(rng, workload["input_tokens"]))
            if prompts and text + len(prompt) > MAX_PROMPTS_TEXT:
                break
            prompts.append({"prompt": prompt})
            text += len(prompt)
    else:
        prompts = [{"prompt": workload["prompt"]}]
    out_spec = workload["output_tokens"]
    for p in prompts:
        if out_spec:
            p["max_tokens"] = _length(rng, out_spec)
        else:
            p.setdefault("max_tokens", workload["max_tokens"])
    return prompts


def build_trace(
    workload: dict, llm_url: str, model: str, seed: int, headers: dict | None = None
) -> tuple[list[dict], dict]:
    """A trace point's prompts, one per row of workload.trace in its order (the row's own
    text, or a synthetic prompt of its input tokens through the server's tokenizer, asked
    with `headers`), each with max_tokens its output tokens; and its schedule, the trace
    pattern's SCHEDULE keys (arrivals_s, and session_ids where the trace has sessions)."""
    try:
        rows = traces.read(workload["trace"])
    except traces.TraceError as exc:
        raise WorkloadError(f"workload.trace: {exc}") from None
    rng = random.Random(seed)
    make = None
    prompts, text = [], 0
    for i, row in enumerate(rows, start=1):
        if row.prompt is not None:
            prompt = row.prompt
        else:
            make = make or _synthetic(*_tokenizer(llm_url, model, headers))
            prompt = make(rng, row.input_tokens, tag=i)
        text += len(prompt) + len(row.session_id or "")
        if text > MAX_PROMPTS_TEXT:  # a tokenizer of longer tokens than traces counts on
            raise WorkloadError(
                f"workload.trace: {workload['trace']}: row {i}: its prompts pass "
                f"{MAX_PROMPTS_TEXT:,} characters, the most a point request takes; cut the trace"
            )
        prompts.append({"prompt": prompt, "max_tokens": row.output_tokens})
    schedule = {"arrivals_s": [row.arrival_s for row in rows]}
    if any(row.session_id is not None for row in rows):
        schedule["session_ids"] = [row.session_id for row in rows]
    return prompts, schedule
