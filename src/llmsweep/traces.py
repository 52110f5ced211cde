"""Trace files (workload.trace): requests recorded with their arrival times, replayed by
the trace load pattern (loadgen.patterns.trace). Read here, and checked whole before any
job starts (config), so a bad trace names its file and its row or column then.

Two layouts, JSONL (one object a line) or CSV (a header row):
- llmsweep's own: arrival_s (seconds) or timestamp (a date-time), input_tokens,
  output_tokens, and optionally session_id and prompt;
- the public Azure LLM inference traces': TIMESTAMP (a date-time), ContextTokens,
  GeneratedTokens.
Column names are matched without regard to case. Arrivals count from the first row's and
must not go back in time; token lengths are whole numbers, never negative, clamped to
1..MAX_TOKENS as drawn synthetic lengths are (a request asks for at least one token).

A trace travels whole in its point's request to the client service (loadgen.point_
request), so it is held to that request's bounds: at most MAX_ROWS rows, and MAX_TEXT
characters of prompts and session ids, a row without a prompt counted at
SYNTHETIC_CHARS_PER_TOKEN characters a token (its synthetic prompt is cut from plain
prose, whose tokens are at most a word and its space).
"""

from __future__ import annotations

import csv
import json
import math
import random
import sys
from datetime import datetime, timedelta
from pathlib import Path
from typing import NamedTuple

# A point request takes five values a row (its prompt's object, text and max_tokens, its
# arrival and session) within config.MAX_VALUES (100,000), the rest of the request aside;
# and a row's numbers fit in what its longest body allows for its prompts' frames
# (point_request.MAX_BODY_BYTES).
MAX_ROWS = 18_000
# Characters of prompts and session ids in all, within what a point request's prompts may
# hold (point_request.MAX_PROMPTS_TEXT); tests/test_loadgen.py checks both fit.
MAX_TEXT = 3_990_000
MAX_PROMPT_CHARS = 1_000_000  # config's workload.prompt maxLength
MAX_TOKENS = 131_072  # config's workload.max_tokens maximum
SYNTHETIC_CHARS_PER_TOKEN = 12
MAX_SESSION_CHARS = 256
MAX_ARRIVAL_S = 604_800.0  # a week, as sweep.max_point_duration_s
MAX_FILE_BYTES = 64 * 2**20
SUFFIXES = (".jsonl", ".csv")

# The columns of each field, by layout (matched lower-cased). An arrival is seconds under
# arrival_s, and a date-time (or seconds) under timestamp.
ARRIVAL_S, TIMESTAMP = "arrival_s", "timestamp"
COLUMNS = {
    "input_tokens": ("input_tokens", "contexttokens"),
    "output_tokens": ("output_tokens", "generatedtokens"),
}
# Each field's columns as a message names them.
SHOWN = {
    "arrival_s": "arrival_s (or timestamp, or Azure's TIMESTAMP)",
    "input_tokens": "input_tokens (or Azure's ContextTokens)",
    "output_tokens": "output_tokens (or Azure's GeneratedTokens)",
}


class TraceError(ValueError):
    """A trace that cannot be replayed; the message names the file, and the row or column."""


class Row(NamedTuple):
    arrival_s: float  # from the first row's arrival
    input_tokens: int
    output_tokens: int
    session_id: str | None
    prompt: str | None  # None: a synthetic prompt of input_tokens tokens


class _Columns(NamedTuple):
    """Where a layout keeps each field: the names as the file spells them."""

    arrival: str
    timestamp: bool  # a date-time column, not seconds
    input_tokens: str
    output_tokens: str
    session_id: str | None
    prompt: str | None


def _columns(names, where: str) -> _Columns:
    """The layout of a file whose columns (or first object's keys) are `names`."""
    by_lower = {}
    for name in names:
        by_lower.setdefault(str(name).strip().lower(), name)
    found = {}
    for field, choices in COLUMNS.items():
        found[field] = next((by_lower[c] for c in choices if c in by_lower), None)
    arrival = by_lower.get(ARRIVAL_S) or by_lower.get(TIMESTAMP)
    missing = [f for f, name in found.items() if name is None]
    if arrival is None:
        missing.insert(0, "arrival_s")
    if missing:
        shown = ", ".join(str(n)[:40] for n in list(names)[:8]) or "none"
        raise TraceError(
            f"{where}: no column {', '.join(SHOWN[m] for m in missing)}; its columns: {shown}"
        )
    return _Columns(
        arrival=arrival,
        timestamp=ARRIVAL_S not in by_lower,
        input_tokens=found["input_tokens"],
        output_tokens=found["output_tokens"],
        session_id=by_lower.get("session_id"),
        prompt=by_lower.get("prompt"),
    )


def _seconds(value, column: str, timestamp: bool, where: str) -> float | datetime:
    """A row's arrival: seconds (a number), or under a timestamp column a date-time."""
    if isinstance(value, (int, float)) and not isinstance(value, bool):
        number = float(value)
    elif isinstance(value, str) and value.strip():
        try:
            number = float(value)
        except ValueError:
            if not timestamp:
                raise TraceError(f"{where}: {column}: {value[:40]!r} is not a number") from None
            try:
                return datetime.fromisoformat(value.strip())
            except ValueError:
                raise TraceError(
                    f"{where}: {column}: {value[:40]!r} is neither seconds nor a date-time "
                    "(ISO 8601, as 2023-11-16 18:15:46.680)"
                ) from None
    else:
        raise TraceError(f"{where}: {column}: {_shown(value)} is not a number")
    if not math.isfinite(number):
        raise TraceError(f"{where}: {column}: {value} is not a finite number")
    return number


def _tokens(value, column: str, where: str) -> int:
    """A token length: a whole number, never negative, clamped to 1..MAX_TOKENS."""
    number = None
    if isinstance(value, (int, float)) and not isinstance(value, bool):
        number = value
    elif isinstance(value, str) and value.strip():
        try:
            number = float(value)
        except ValueError:
            number = None
    if number is None or not math.isfinite(number):
        raise TraceError(f"{where}: {column}: {_shown(value)} is not a number of tokens")
    if number < 0:
        raise TraceError(f"{where}: {column}: {_shown(value)} is negative")
    if number != int(number):
        raise TraceError(f"{where}: {column}: {_shown(value)} is not a whole number of tokens")
    return min(max(1, int(number)), MAX_TOKENS)


def _shown(value) -> str:
    return repr(value)[:40] if value not in (None, "") else "nothing"


def _text(value, column: str, limit: int, where: str) -> str | None:
    """An optional text field: None when empty."""
    if value is None or value == "":
        return None
    if isinstance(value, (int, float)) and not isinstance(value, bool):
        value = str(value)
    if not isinstance(value, str):
        raise TraceError(f"{where}: {column}: {_shown(value)} is not text")
    if len(value) > limit or "\0" in value:
        raise TraceError(f"{where}: {column}: more than {limit:,} characters, or a NUL character")
    return value


def _records(path: Path, f):
    """(line number, fields, layout) of each data row of an open file."""
    if path.suffix == ".jsonl":
        for line_number, line in enumerate(f, start=1):
            if not line.strip():
                continue
            where = f"line {line_number}"
            try:
                value = json.loads(line)
            except ValueError as exc:
                raise TraceError(f"{where}: not JSON ({str(exc)[:80]})") from None
            if not isinstance(value, dict):
                raise TraceError(f"{where}: not a JSON object")
            yield line_number, value, _columns(list(value), where)
        return
    csv.field_size_limit(max(csv.field_size_limit(), MAX_PROMPT_CHARS + 1))
    reader = csv.reader(f)
    try:
        header = next(reader, None)
        if header is None:
            return
        layout = _columns(header, "line 1 (the header)")
        for fields in reader:
            if not any(field.strip() for field in fields):
                continue
            where = f"line {reader.line_num}"
            if len(fields) > len(header):
                raise TraceError(f"{where}: {len(fields)} fields, the header has {len(header)}")
            yield reader.line_num, dict(zip(header, fields, strict=False)), layout
    except csv.Error as exc:
        raise TraceError(f"line {reader.line_num}: {exc}") from None


def read(path: str | Path) -> list[Row]:
    """The rows of the trace at `path`, every one checked; TraceError, its message starting
    with the file's name, for the first problem. Reads at most MAX_FILE_BYTES and stops at
    the first row past the bounds, so a bad file costs bounded memory."""
    path = Path(path)
    try:
        return _read(path)
    except TraceError as exc:
        raise TraceError(f"{path}: {exc}") from None


def _read(path: Path) -> list[Row]:
    if path.suffix not in SUFFIXES:
        raise TraceError("neither .jsonl nor .csv")
    try:
        size = path.stat().st_size
        f = open(path, encoding="utf-8", newline="")
    except OSError as exc:
        raise TraceError(exc.strerror or str(exc)) from None
    if size > MAX_FILE_BYTES:
        f.close()
        raise TraceError(f"larger than {MAX_FILE_BYTES >> 20} MiB")
    rows: list[Row] = []
    text = 0
    first = previous = None
    with f:
        try:
            for line, fields, layout in _records(path, f):
                where = f"row {len(rows) + 1} (line {line})"
                if len(rows) == MAX_ROWS:
                    raise TraceError(
                        f"{where}: more than {MAX_ROWS:,} rows, the most a point request takes"
                    )
                row, at = _row(fields, layout, where)
                if previous is not None:
                    _check_order(at, previous, where)
                first = at if first is None else first
                previous = at
                offset = at - first
                seconds = offset.total_seconds() if isinstance(offset, timedelta) else offset
                if seconds > MAX_ARRIVAL_S:
                    raise TraceError(
                        f"{where}: arrives {seconds:,.0f} s after the first row; a trace spans "
                        f"at most {MAX_ARRIVAL_S:,.0f} s"
                    )
                row = row._replace(arrival_s=float(seconds))
                text += row_text(row)
                if text > MAX_TEXT:
                    raise TraceError(
                        f"{where}: the trace's prompts pass {MAX_TEXT:,} characters, the most a "
                        "point request takes (a row without a prompt counted at "
                        f"{SYNTHETIC_CHARS_PER_TOKEN} characters a token); cut the trace"
                    )
                rows.append(row)
        except UnicodeDecodeError as exc:
            raise TraceError(f"not UTF-8 text ({exc.reason})") from None
    if not rows:
        raise TraceError("holds no rows")
    return rows


def _row(fields: dict, layout: _Columns, where: str) -> tuple[Row, float | datetime]:
    """A row (its arrival still absolute) and its arrival."""
    for column in (layout.arrival, layout.input_tokens, layout.output_tokens):
        if column not in fields:
            raise TraceError(f"{where}: no {column}")
    at = _seconds(fields[layout.arrival], layout.arrival, layout.timestamp, where)
    row = Row(
        arrival_s=0.0,
        input_tokens=_tokens(fields[layout.input_tokens], layout.input_tokens, where),
        output_tokens=_tokens(fields[layout.output_tokens], layout.output_tokens, where),
        session_id=_text(fields.get(layout.session_id), "session_id", MAX_SESSION_CHARS, where),
        prompt=_text(fields.get(layout.prompt), "prompt", MAX_PROMPT_CHARS, where),
    )
    return row, at


def _check_order(at, previous, where: str) -> None:
    """Arrivals never go back in time; seconds and date-times are never mixed."""
    if isinstance(at, datetime) != isinstance(previous, datetime):
        raise TraceError(f"{where}: arrival {at} mixes seconds and date-times")
    if isinstance(at, datetime) and (at.tzinfo is None) != (previous.tzinfo is None):
        raise TraceError(f"{where}: arrival {at} mixes date-times with and without a time zone")
    if at < previous:
        raise TraceError(
            f"{where}: arrival {at} is before the row above's ({previous}); the rows must "
            "be sorted by arrival"
        )


def row_text(row: Row) -> int:
    """The characters a row takes in its point request, at most: its prompt (a synthetic
    one's at SYNTHETIC_CHARS_PER_TOKEN a token) and its session id."""
    prompt = (
        len(row.prompt)
        if row.prompt is not None
        else min(MAX_PROMPT_CHARS, row.input_tokens * SYNTHETIC_CHARS_PER_TOKEN)
    )
    return prompt + len(row.session_id or "")


def sample(rows: int = 300, seed: int = 0) -> list[Row]:
    """A made-up trace in the manner of recorded chat traffic, the same for the same seed:
    arrivals of a Poisson process whose rate drifts (2.5 requests/s on average, with a
    burst at three times that), lognormal prompt and answer lengths, and sessions that
    come back (about half the requests continue an earlier session)."""
    rng = random.Random(seed)
    at, out, sessions = 0.0, [], []
    for i in range(rows):
        burst = 3.0 if rows * 0.4 <= i < rows * 0.55 else 1.0
        at += rng.expovariate(2.5 * burst) if i else 0.0
        if sessions and rng.random() < 0.5:
            session = rng.choice(sessions)
        else:
            session = f"s{len(sessions) + 1:03d}"
            sessions.append(session)
        input_tokens = min(2048, max(16, round(rng.lognormvariate(math.log(200), 0.8))))
        output_tokens = min(512, max(4, round(rng.lognormvariate(math.log(64), 0.7))))
        out.append(Row(round(at, 3), input_tokens, output_tokens, session, None))
    return out


def write_csv(rows: list[Row], f) -> None:
    """`rows` in llmsweep's own CSV layout (a prompt column only when a row has one)."""
    prompts = any(r.prompt is not None for r in rows)
    columns = ["arrival_s", "input_tokens", "output_tokens", "session_id"]
    writer = csv.writer(f, lineterminator="\n")
    writer.writerow(columns + (["prompt"] if prompts else []))
    for r in rows:
        fields = [f"{r.arrival_s:.3f}", r.input_tokens, r.output_tokens, r.session_id or ""]
        writer.writerow(fields + ([r.prompt or ""] if prompts else []))


SAMPLE_PATH = Path(__file__).resolve().parents[2] / "config" / "trace-sample.csv"

if __name__ == "__main__":
    # Regenerates the shipped sample: python -m llmsweep.traces > config/trace-sample.csv
    write_csv(sample(), sys.stdout)
