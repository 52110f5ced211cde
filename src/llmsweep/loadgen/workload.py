"""The prompts of a point: one prompt, a prompt file, a conversation dataset's first
turns, or synthetic prompts of a given token length (optionally sharing a prefix) built
with the server's own tokenizer; for a trace point, one prompt per row of the trace and
the trace's schedule."""

from __future__ import annotations

import csv
import json
import math
import random
import sys
from pathlib import Path

from llmsweep import datasets, traces
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
# A dataset answer's length where the server has no tokenizer: characters a token, the
# usual estimate for English text.
CHARS_PER_TOKEN = 4


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


def _synthetic(tokenize, detokenize, prefix_tokens: int = 0):
    """make(rng, n, tag=None): a synthetic prompt of n tokens, cut at a random offset from
    BASE_TEXT as the server's tokenizer splits it, each within the API's length. With a
    `tag` (a trace's row, a prompt's index), the first tokens after the prefix spell the tag
    in the text's own tokens, so that no two share more than the prefix a server could
    cache (the text repeats, and so would its cuts). With `prefix_tokens`, every prompt
    starts with the same that many tokens (BASE_TEXT's first, cut as the tokenizer splits
    it), counted within its n."""
    base = tokenize(BASE_TEXT * 4)
    digits = sorted(set(base))
    width = 1
    while len(digits) > 1 and len(digits) ** width < traces.MAX_ROWS:
        width += 1
    prefix = [base[i % len(base)] for i in range(prefix_tokens)]

    def make(rng: random.Random, n: int, tag: int | None = None) -> str:
        own = max(0, n - len(prefix))
        start = rng.randrange(len(base))
        tokens = [base[(start + i) % len(base)] for i in range(own)]
        if tag is not None and len(digits) > 1:
            spelled = [digits[tag // len(digits) ** k % len(digits)] for k in range(width)]
            tokens[: min(own, width)] = spelled[: min(own, width)]
        return detokenize(prefix + tokens)[: PROMPT["maxLength"]]

    return make


def _dataset_prompts(
    workload: dict, rng: random.Random, llm_url: str, model: str, headers: dict | None
) -> list[dict]:
    """workload.dataset_samples conversations of workload.dataset drawn with `rng` (the
    point's seed, so a re-run sends the same), as many as a point's text takes: each its
    first human turn, with max_tokens its answer's length in the server's tokens (or, where
    the server has no tokenizer, CHARS_PER_TOKEN characters a token)."""
    try:
        dataset = datasets.read(workload["dataset"])
    except datasets.DatasetError as exc:
        raise WorkloadError(f"workload.dataset: {exc}") from None
    drawn = rng.sample(dataset.pairs, min(workload["dataset_samples"], len(dataset.pairs)))
    pairs, text = [], 0
    for pair in drawn:
        if pairs and text + len(pair.prompt) > MAX_PROMPTS_TEXT:
            break
        pairs.append(pair)
        text += len(pair.prompt)
    print(
        f"workload.dataset: {datasets.summary(workload['dataset'], dataset)}; "
        f"{len(pairs):,} sampled",
        file=sys.stderr,
    )
    lengths = _answer_lengths([p.answer for p in pairs], llm_url, model, headers)
    return [{"prompt": p.prompt, "max_tokens": n} for p, n in zip(pairs, lengths, strict=True)]


def _answer_lengths(answers: list[str], llm_url: str, model: str, headers) -> list[int]:
    """Each answer's length in the server's tokens, within MAX_TOKENS' bounds; estimated at
    CHARS_PER_TOKEN characters a token where the server has no tokenizer (/tokenize)."""
    tokenize, _ = _tokenizer(llm_url, model, headers)
    try:
        counts = [len(tokenize(answers[0]))]
    except WorkloadError:
        print(
            f"workload.dataset: {llm_url} has no tokenizer (/tokenize): answer lengths "
            f"estimated at {CHARS_PER_TOKEN} characters a token",
            file=sys.stderr,
        )
        counts = [math.ceil(len(a) / CHARS_PER_TOKEN) for a in answers]
    else:
        counts += [len(tokenize(a)) for a in answers[1:]]
    return [min(max(MAX_TOKENS["minimum"], n), MAX_TOKENS["maximum"]) for n in counts]


def build_prompts(
    workload: dict, llm_url: str, model: str, seed: int, headers: dict | None = None
) -> list[dict]:
    """The point's prompts, each with its max_tokens (the server's tokenizer asked with
    `headers`, the run's token). Synthetic prompts with workload.shared_prefix_tokens share
    that many leading tokens, counted within their lengths, which are at least one more
    (config holds the prefix below input_tokens.mean)."""
    rng = random.Random(seed)
    prefix = workload.get("shared_prefix_tokens") or 0
    if workload["prompt_file"]:
        prompts = read_prompt_file(workload["prompt_file"])
    elif workload.get("dataset"):
        prompts = _dataset_prompts(workload, rng, llm_url, model, headers)
    elif workload["input_tokens"]:
        make = _synthetic(*_tokenizer(llm_url, model, headers), prefix_tokens=prefix)
        prompts, text = [], 0
        for i in range(DISTINCT_PROMPTS):
            n = _length(rng, workload["input_tokens"])
            # With a prefix, each prompt keeps a part of its own, starting with its index.
            prompt = make(rng, max(prefix + 1, n), tag=i) if prefix else make(rng, n)
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
