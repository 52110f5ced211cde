"""Load points running in the background, followed by callers through long polls.

Memory stays bounded: a caller that asks for records from an offset has them up to it,
so they are freed; a finished point read to its end keeps only its final view; the
records nobody read are held up to UNREAD_LIMIT_BYTES across every point (the oldest
finished points are forgotten first, then a running point fails), and at most
KEEP_FINISHED finished points are kept.
"""

from __future__ import annotations

import threading
import time
import uuid

from llmsweep.loadgen import patterns, runner, workers
from llmsweep.loadgen.session import InFlight
from llmsweep.metrics import client as live

KEEP_FINISHED = 8
UNREAD_LIMIT_BYTES = 1 << 30
# A record's memory, measured (tracemalloc): about 1.1 kB, and 32 bytes per ITL gap.
RECORD_BYTES, GAP_BYTES = 1200, 32


def record_bytes(rec: dict) -> int:
    """About what a record takes in memory."""
    return RECORD_BYTES + GAP_BYTES * len(rec.get("itl_s") or ())


class Gone(Exception):
    """Records asked for were read before and freed."""


class Point:
    def __init__(self, request: dict, server: runner.Server, labels: dict, owner: Points):
        """`request`: a completed point request (loadgen.point_request.complete)."""
        self.id = uuid.uuid4().hex[:12]
        self.request: dict | None = request
        self.server = server
        self.labels = labels
        self.owner = owner
        measured = patterns.pattern(request["pattern"]).total(request["sweep"])
        self.total = measured + request["warmup"]["requests"]  # at most, warm-up included
        self.stall_s = request["client"]["stall_s"]
        self.records: list[dict] = []  # those not yet read, from self.base on
        self.base = 0  # the records before it were read and freed
        self.completed = 0
        self.unread_bytes = 0
        self.stalls = 0
        self.silent_s = 0.0
        self.state = "running"
        self.error: str | None = None
        self.failure: str | None = None  # why the service stops a point itself
        self.started_at = time.time()
        self.finished_at: float | None = None
        self.cancel = threading.Event()
        self.changed = threading.Condition()
        gauge = live.IN_FLIGHT.labels(*(str(labels[k]) for k in live.LABELS))
        self.in_flight = InFlight(lambda d: gauge.inc(d))
        self.client_stats: dict | None = None

    def add(self, rec: dict) -> None:
        live.observe(self.labels, rec)
        with self.changed:
            self.records.append(rec)
            self.completed += 1
            self.unread_bytes += record_bytes(rec)
            self.stalls += bool(rec.get("stalled"))
            self.changed.notify_all()
        self.owner.make_room(self)

    def heard(self, silent_s: float) -> None:
        """How long the server has sent nothing while requests waited (runner.run)."""
        self.silent_s = silent_s

    def fail(self, why: str) -> None:
        """Stop the point: it ends failed, saying why."""
        self.failure = self.failure or why
        self.cancel.set()

    def _run(self) -> None:
        try:
            args = (self.server, self.request, self.add, self.cancel, self.in_flight, self.heard)
            self.client_stats = workers.run(*args)
            state = "cancelled" if self.cancel.is_set() else "done"
        except Exception as exc:  # noqa: BLE001 - reported to the caller, never lost
            self.error = f"{type(exc).__name__}: {exc}"
            state = "failed"
        if self.failure:
            self.error, state = self.failure, "failed"
        with self.changed:
            self.state = state
            self.finished_at = time.time()
            self.request = None  # its prompts may be large; the view needs none of it
            self.changed.notify_all()

    def start(self) -> None:
        threading.Thread(target=self._run, name=f"point-{self.id}", daemon=True).start()

    def view(self, offset: int, limit: int, wait: float) -> dict:
        """Records from `offset`, waiting up to `wait` s for new ones while running. The
        records before `offset` are freed (the caller has them), and every record once
        a finished point is read to its end; asking for freed ones raises Gone."""
        with self.changed:
            self._check(offset)
            # Only records handed out can be acknowledged: an offset past the end frees none.
            handed_out = offset <= self.completed
            if handed_out:
                self._free(offset)
            self.changed.wait_for(
                lambda: self.completed > offset or self.state != "running", timeout=wait
            )
            self._check(offset)  # another caller may have read on meanwhile
            start = offset - self.base
            records = self.records[start : start + limit]
            view = {
                "id": self.id,
                "state": self.state,
                "error": self.error,
                "total": self.total,
                "completed": self.completed,
                "in_flight": self.in_flight.now,
                "peak_in_flight": self.in_flight.peak,
                "stalls": self.stalls,
                "server_silent_s": self.silent_s if self.state == "running" else 0.0,
                "warning": self._warning(),
                "client": self.client_stats,
                "started_at": self.started_at,
                "finished_at": self.finished_at,
                "records": records,
                "next_offset": offset + len(records),
            }
            if handed_out and self.state != "running" and view["next_offset"] >= self.completed:
                self._free(self.completed)
            return view

    def _check(self, offset: int) -> None:
        if offset < self.base:
            raise Gone(
                f"records {offset} to {self.base - 1} of point {self.id} were read "
                f"already and are freed; ask from offset {self.base}"
            )

    def _warning(self) -> str | None:
        if self.state == "running" and self.silent_s > self.stall_s:
            return (
                f"the server has sent nothing for {self.silent_s:.0f} s while requests "
                f"waited (client.stall_s is {self.stall_s:g} s): it may have hung"
            )
        if self.stalls:
            return (
                f"{self.stalls} requests stalled: the server sent nothing for longer than "
                f"{self.stall_s:g} s while they waited"
            )
        return None

    def _free(self, upto: int) -> None:
        """Forget the records before `upto` (the caller holds self.changed)."""
        n = upto - self.base
        if n <= 0:
            return
        self.unread_bytes -= sum(record_bytes(r) for r in self.records[:n])
        del self.records[:n]
        self.base += n

    def forget_records(self) -> None:
        with self.changed:
            self._free(self.completed)


class Points:
    """The points of this service; one runs at a time so points never share the server."""

    def __init__(self, keep_finished: int = KEEP_FINISHED, unread_limit: int = UNREAD_LIMIT_BYTES):
        self._lock = threading.Lock()
        self._points: dict[str, Point] = {}
        self.keep_finished = keep_finished
        self.unread_limit = unread_limit

    def start(self, request: dict, server: runner.Server, labels: dict) -> Point | None:
        with self._lock:
            if self._running():
                return None
            point = Point(request, server, labels, self)
            self._points[point.id] = point
            self._forget(keep=self.keep_finished)
        point.start()
        return point

    def get(self, point_id: str) -> Point | None:
        return self._points.get(point_id)

    def running(self) -> Point | None:
        with self._lock:
            return self._running()

    def _running(self) -> Point | None:
        return next((p for p in self._points.values() if p.state == "running"), None)

    def _finished(self) -> list[Point]:
        """The finished points, oldest first."""
        done = [p for p in self._points.values() if p.state != "running"]
        return sorted(done, key=lambda p: p.finished_at or 0)

    def _forget(self, keep: int) -> None:
        """Forget the oldest finished points beyond `keep` (the caller holds the lock)."""
        finished = self._finished()
        for point in finished[: max(0, len(finished) - keep)]:
            del self._points[point.id]

    def make_room(self, adding: Point) -> None:
        """Keep the unread records of every point within the limit: free those of the
        oldest finished points first; if that is not enough, fail the point adding more."""
        if sum(p.unread_bytes for p in list(self._points.values())) <= self.unread_limit:
            return
        with self._lock:
            for point in self._finished():
                if point.unread_bytes:
                    point.forget_records()
                    del self._points[point.id]
                if sum(p.unread_bytes for p in self._points.values()) <= self.unread_limit:
                    return
        adding.fail(
            f"its records were not read: {adding.unread_bytes / 1e6:.0f} MB waiting, over the "
            f"client service's limit of {self.unread_limit / 1e6:.0f} MB; follow a point "
            "with GET /benchmark/<id>?offset="
        )
