"""Conversation datasets (workload.dataset) in the common ShareGPT layout: a JSON list of
objects, each with `conversations` (or `conversation`), a list of turns
{"from": "human" | "gpt", "value": text}. Each conversation's first human turn is a
prompt, and the answer right after it gives that prompt's output length (loadgen.workload
counts it with the server's tokenizer). Read here, and checked whole before any job
starts (config), so a bad file names itself and its entry ([3], [3].conversations[1].from)
then.

A conversation whose first human turn is not followed by an answer, or that has no human
turn, is skipped and counted; so is one whose prompt a point request cannot take (more
than MAX_PROMPT_CHARS characters, or a NUL). A file with none left is refused.

JSON has no rows to stream, so the file is parsed whole, and refused by its size before it
is read (MAX_FILE_BYTES). The full ShareGPT set (some 650 MB) is cut first, e.g.
`jq '.[:20000]' sharegpt.json > sharegpt-20k.json`.
"""

from __future__ import annotations

import json
from collections import Counter
from pathlib import Path
from typing import NamedTuple

MAX_FILE_BYTES = 64 * 2**20
MAX_PROMPT_CHARS = 1_000_000  # config's workload.prompt maxLength
CONVERSATION_KEYS = ("conversations", "conversation")
# Speakers as ShareGPT exports name them (and the OpenAI names some copies use); other
# turns (system) are passed over.
HUMAN = ("human", "user")
ANSWER = ("gpt", "assistant", "chatgpt")
NO_PAIR = "no human turn followed by an answer"
TOO_LONG = f"a prompt of more than {MAX_PROMPT_CHARS:,} characters, or with a NUL"


class DatasetError(ValueError):
    """A dataset that cannot be used; the message names the file, and the entry or key."""


class Pair(NamedTuple):
    entry: int  # its index in the file's list
    prompt: str  # the first human turn
    answer: str  # the turn right after it


class Dataset(NamedTuple):
    pairs: list[Pair]  # in the file's order
    entries: int
    skipped: Counter  # conversations skipped, by reason (NO_PAIR, TOO_LONG)


def read(path: str | Path) -> Dataset:
    """The usable conversations of the dataset at `path`, every entry checked; DatasetError,
    its message starting with the file's name, for the first problem."""
    path = Path(path)
    try:
        return _read(path)
    except DatasetError as exc:
        raise DatasetError(f"{path}: {exc}") from None


def _read(path: Path) -> Dataset:
    try:
        size = path.stat().st_size
        if size > MAX_FILE_BYTES:
            raise DatasetError(
                f"larger than {MAX_FILE_BYTES >> 20} MiB; cut it first "
                "(jq '.[:20000]' in.json > out.json)"
            )
        with open(path, "rb") as f:
            raw = f.read(MAX_FILE_BYTES + 1)
    except OSError as exc:
        raise DatasetError(exc.strerror or str(exc)) from None
    try:
        entries = json.loads(raw.decode("utf-8"))
    except UnicodeDecodeError as exc:
        raise DatasetError(f"not UTF-8 text ({exc.reason})") from None
    except json.JSONDecodeError as exc:
        raise DatasetError(f"not JSON (line {exc.lineno} column {exc.colno}: {exc.msg})") from None
    if not isinstance(entries, list):
        raise DatasetError(
            f"not a JSON list but {type(entries).__name__}; a ShareGPT file is a list of "
            "objects with conversations"
        )
    pairs, skipped = [], Counter()
    for i, entry in enumerate(entries):
        pair = _pair(entry, f"[{i}]")
        if isinstance(pair, str):
            skipped[pair] += 1
        else:
            pairs.append(Pair(i, *pair))
    if not pairs:
        raise DatasetError(f"no usable conversation: of {len(entries):,} entries, {_said(skipped)}")
    return Dataset(pairs, len(entries), skipped)


def _pair(entry, where: str) -> tuple[str, str] | str:
    """(prompt, answer) of an entry, or why it is skipped; DatasetError when it is not in
    the layout."""
    if not isinstance(entry, dict):
        raise DatasetError(f"{where}: not an object but {type(entry).__name__}")
    key = next((k for k in CONVERSATION_KEYS if k in entry), None)
    if key is None:
        keys = ", ".join(str(k)[:40] for k in list(entry)[:8]) or "none"
        raise DatasetError(f"{where}: no conversations (or conversation); its keys: {keys}")
    turns = entry[key]
    if not isinstance(turns, list):
        raise DatasetError(f"{where}.{key}: not a list but {type(turns).__name__}")
    for j, turn in enumerate(turns):
        at = f"{where}.{key}[{j}]"
        if not isinstance(turn, dict):
            raise DatasetError(f"{at}: not an object but {type(turn).__name__}")
        for field in ("from", "value"):
            if not isinstance(turn.get(field), str):
                raise DatasetError(f"{at}.{field}: {_shown(turn.get(field))} is not text")
    first = next((j for j, t in enumerate(turns) if t["from"].lower() in HUMAN), None)
    if first is None or first + 1 == len(turns):
        return NO_PAIR
    prompt, answer = turns[first]["value"], turns[first + 1]
    if answer["from"].lower() not in ANSWER or not prompt.strip() or not answer["value"].strip():
        return NO_PAIR
    if len(prompt) > MAX_PROMPT_CHARS or "\0" in prompt:
        return TOO_LONG
    return prompt, answer["value"]


def _shown(value) -> str:
    return repr(value)[:40] if value is not None else "nothing"


def _said(skipped: Counter) -> str:
    """The skipped conversations in words: '3 skipped (2 no human turn ..., 1 a prompt ...)'."""
    if not skipped:
        return "none skipped"
    reasons = ", ".join(f"{n:,} {reason}" for reason, n in skipped.most_common())
    return f"{sum(skipped.values()):,} skipped ({reasons})"


def summary(path: str | Path, dataset: Dataset) -> str:
    """One line for the log: what the file held and what was skipped."""
    usable = len(dataset.pairs)
    return (
        f"{path}: {usable:,} usable conversations of {dataset.entries:,}, {_said(dataset.skipped)}"
    )
