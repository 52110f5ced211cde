"""Stalls: the LLM server sends nothing at all, to any request of the point, for longer
than client.stall_s while requests wait for it. A hung server stalls; a busy one does not,
since it still streams to the requests it serves while others wait in its queue.

A request that waited through a stall for its first or next chunk is marked `stalled`,
with `stall_gap_s`, the longest such wait. The point's own view of the server (`Silence`)
also says how long the server has been silent now, so a stall shows while it lasts.
"""

from __future__ import annotations

import itertools
import time
from collections import deque

# The silent spans longer than stall_s a point remembers, for requests still waiting
# through them (a span is longer than stall_s, a wait at most request_timeout_s).
SPANS_KEPT = 1000
NOT_STALLED = {"stalled": False, "stall_gap_s": None}


class Silence:
    """When the server last sent anything to the point's requests, the spans it sent
    nothing for longer than `stall_s`, and the requests waiting for it now."""

    def __init__(self, stall_s: float, clock=time.monotonic):
        self.stall_s = stall_s
        self.clock = clock
        self.heard_at = clock()
        self._spans: deque[tuple[float, float]] = deque(maxlen=SPANS_KEPT)
        self._waiting: dict[int, float] = {}  # request -> since when it waits
        self._keys = itertools.count()

    def wait(self) -> Wait:
        """A request starts waiting for the server (it is being sent)."""
        return Wait(self)

    def heard(self, now: float) -> None:
        """Something came from the server."""
        if now - self.heard_at > self.stall_s:
            self._spans.append((self.heard_at, now))
        self.heard_at = max(self.heard_at, now)

    def silent_during(self, since: float, until: float) -> float:
        """The longest time in [since, until] in which the server sent nothing for longer
        than stall_s."""
        longest = 0.0
        current = (self.heard_at, until)
        for start, end in itertools.chain((current,), reversed(self._spans)):
            if end <= since:
                break
            if end - start > self.stall_s:
                longest = max(longest, min(end, until) - max(start, since))
        return longest

    def silent_now(self) -> float:
        """How long the server has sent nothing while a request waited: 0 with none
        waiting."""
        if not self._waiting:
            return 0.0
        return max(0.0, self.clock() - max(self.heard_at, min(self._waiting.values())))


class Wait:
    """One request's waits for the server: from its sending to its first chunk, between
    chunks, and from its last chunk to its end."""

    def __init__(self, silence: Silence):
        self._silence = silence
        self._key = next(silence._keys)
        self._since = silence.clock()
        self._gap: float | None = None
        silence._waiting[self._key] = self._since

    def heard(self) -> None:
        """Something came from the server for this request (its headers, a chunk)."""
        now = self._silence.clock()
        self._check(now)
        self._silence.heard(now)
        self._since = now
        self._silence._waiting[self._key] = now

    def end(self) -> dict:
        """The request is over (done, failed or cancelled): its stall fields."""
        if self._silence._waiting.pop(self._key, None) is not None:
            self._check(self._silence.clock())
        return {"stalled": self._gap is not None, "stall_gap_s": self._gap}

    def _check(self, now: float) -> None:
        # A wait no longer than stall_s holds no silence longer than it: no need to look.
        stall_s = self._silence.stall_s
        if now - self._since > stall_s and self._silence.silent_during(self._since, now) > stall_s:
            self._gap = max(self._gap or 0.0, now - self._since)
