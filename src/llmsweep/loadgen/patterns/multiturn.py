"""Multi-turn conversations: N concurrent users, each holding conversations back to back.
Turn k of a conversation sends the conversation so far, turns 1..k-1 (each user message and
the text the server answered it with), then a new user message; the user pauses (think
time) between an answer and the next turn. A server that keeps the conversation's prefix
cached answers later turns sooner than one that evaluates the whole history again.

Config: sweep.conversations lists the numbers of users; each is a point (folder
m<users>). sweep.turns, sweep.think_time_s (with sweep.think: constant, or exponential
with that mean, drawn per user from the point's seed) and sweep.conversations_per_user
shape each point.

The user messages are the point's prompts: turn k of conversation c sends prompt
c * turns + k - 1, cycling through the prompts, so a re-run sends the same conversations.
A turn that fails ends its conversation (it has no answer to go on with); the user starts
the next one. Each record has its user, conversation (numbered across the point's
worker processes) and turn (from 1); the summary's per_turn lists each turn's figures.
"""

from __future__ import annotations

import asyncio
import random
from collections import defaultdict

from llmsweep.loadgen.patterns.common import Axis, share
from llmsweep.loadgen.stats import distribution

NAME = "multiturn"
SWEEP_KEY = "conversations"  # config: sweep.conversations, the list of levels
LEVEL_KEY = "conversations"  # one point's level: sweep point, request's sweep, summary, table
PREFIX = "m"  # folder m4
LEVEL_REGEX = "[0-9]+"
LEVEL_INTEGER = True  # whole-number levels (a capacity search halves them as such)
# The sweep keys (config and request) that shape a point, its level aside.
SETTINGS = (
    "turns",
    "think_time_s",
    "think",
    "conversations_per_user",
    "duration_s",
    "max_point_duration_s",
    "seed",
)
# The request's sweep keys that config has no key for (a trace's schedule): none.
SCHEDULE = ()
# The request's sweep keys a request must give (their bounds are config's).
REQUIRED = ("conversations", "turns")
AXIS = Axis(
    "conversations",
    "concurrent conversations",
    " (multi-turn)",
    "knee_conversations",
    "conversations",
)


def level_text(users: int) -> str:
    """The level in a folder name and a metric label."""
    return str(users)


def describe(users: int) -> str:
    return f"with {users} concurrent conversations"


def total(sweep: dict) -> int:
    """Measured requests the point sends at most: every turn of every conversation."""
    return sweep["conversations"] * sweep["conversations_per_user"] * sweep["turns"]


def warmup_width(sweep: dict) -> int:
    """Concurrent warm-up clients: one per user (warm-up requests are single turns)."""
    return sweep["conversations"]


def split(sweep: dict, k: int, n: int) -> dict:
    """Worker k's share (of n): its users, numbered on from the users of workers before it
    (`first_user`, set here only; the API has no such key), so conversation numbers are
    unique across the point."""
    return {
        **sweep,
        "conversations": share(sweep["conversations"], k, n),
        "first_user": sum(share(sweep["conversations"], j, n) for j in range(k)),
    }


async def run(send, sweep: dict) -> None:
    """The point's measured load."""
    await converse(
        send,
        sweep["conversations"],
        sweep["conversations_per_user"],
        sweep["turns"],
        sweep["think_time_s"],
        sweep["think"],
        sweep["duration_s"],
        sweep["seed"],
        sweep.get("first_user", 0),
    )


def think_times(seed: int, user: int, mean_s: float, kind: str):
    """A user's pauses: each `mean_s`, or exponential of that mean drawn from a generator
    of its own (the point's seed and the user), so they do not depend on the order in which
    users' turns end."""
    rng = random.Random(f"{seed}/{user}")
    while True:
        yield rng.expovariate(1.0 / mean_s) if kind == "exponential" and mean_s else mean_s


async def converse(
    send,
    n_users: int,
    per_user: int,
    turns: int,
    think_time_s: float,
    think: str,
    duration_s: float | None,
    seed: int,
    first_user: int = 0,
) -> None:
    """Each user (numbered from `first_user`) holds `per_user` conversations of `turns`
    turns, one after another; no turn is sent once `duration_s` has passed.

    send(prompt_index=i, history=h, **extra) sends prompt i after the messages `h` and
    returns the conversation with the prompt and the server's answer added, or None when
    the turn failed."""
    clock = asyncio.get_running_loop()
    end = clock.time() + duration_s if duration_s else None

    async def user(u: int) -> None:
        pauses = think_times(seed, u, think_time_s, think)
        for j in range(per_user):
            conversation = u * per_user + j
            history: list[dict] | None = []
            for turn in range(1, turns + 1):
                if turn > 1 and think_time_s:
                    pause = next(pauses)
                    # Never sleep past the point's end: it would only delay the point's end.
                    await asyncio.sleep(pause if end is None else min(pause, end - clock.time()))
                if end is not None and clock.time() >= end:
                    return
                history = await send(
                    prompt_index=conversation * turns + turn - 1,
                    history=history,
                    user=u,
                    conversation=conversation,
                    turn=turn,
                )
                if history is None:
                    break

    await asyncio.gather(*(user(first_user + i) for i in range(n_users)))


def _mean(values) -> float | None:
    known = [v for v in values if v is not None]
    return sum(known) / len(known) if known else None


def figures(measured: list[dict]) -> dict:
    """The pattern's own summary figures, per_turn: for each turn, its requests (and those
    that succeeded), TTFT p50 and mean, input and cached tokens' means (cached where the
    server reports them: cached_tokens_requests of them), the share of input tokens that
    were cached, and TTFT p50 over turn 1's."""
    by_turn: dict[int, list[dict]] = defaultdict(list)
    for r in measured:
        if r.get("turn") is not None:
            by_turn[r["turn"]].append(r)
    rows = []
    for turn in sorted(by_turn):
        ok = [r for r in by_turn[turn] if r["ok"]]
        ttft = distribution(r["ttft_s"] for r in ok)
        both = [r for r in ok if r.get("cached_tokens") is not None and r["input_tokens"]]
        rows.append(
            {
                "turn": turn,
                "requests": len(by_turn[turn]),
                "successful": len(ok),
                "ttft_p50_s": ttft["p50"],
                "ttft_mean_s": ttft["mean"],
                "input_tokens_mean": _mean(r["input_tokens"] for r in ok),
                "cached_tokens_mean": _mean(r.get("cached_tokens") for r in ok),
                "cached_tokens_requests": sum(r.get("cached_tokens") is not None for r in ok),
                "cached_share": (
                    sum(r["cached_tokens"] for r in both) / sum(r["input_tokens"] for r in both)
                    if both
                    else None
                ),
            }
        )
    first = rows[0]["ttft_p50_s"] if rows and rows[0]["turn"] == 1 else None
    for row in rows:
        p50 = row["ttft_p50_s"]
        row["ttft_p50_vs_turn1"] = p50 / first if first and p50 is not None else None
    return {"per_turn": rows}
