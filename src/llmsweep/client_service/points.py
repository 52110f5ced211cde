"""Load points running in the background, followed by callers through long polls."""

from __future__ import annotations

import asyncio
import threading
import time
import uuid

from llmsweep.loadgen import patterns, runner, workers
from llmsweep.loadgen.session import InFlight
from llmsweep.metrics import client as live


class Point:
    def __init__(self, request: dict, server: runner.Server, labels: dict):
        """`request`: a completed point request (loadgen.point_request.complete)."""
        self.id = uuid.uuid4().hex[:12]
        self.request = request
        self.server = server
        self.labels = labels
        self.records: list[dict] = []
        self.state = "running"
        self.error: str | None = None
        self.started_at = time.time()
        self.finished_at: float | None = None
        self.cancel = threading.Event()
        self.changed = threading.Condition()
        gauge = live.IN_FLIGHT.labels(*(str(labels[k]) for k in live.LABELS))
        self.in_flight = InFlight(lambda d: gauge.inc(d))
        self.client_stats: dict | None = None

    @property
    def total(self) -> int | None:
        """Requests the point sends at most, warm-up included."""
        measured = patterns.pattern(self.request["pattern"]).total(self.request["sweep"])
        return measured + self.request["warmup"]["requests"]

    def add(self, rec: dict) -> None:
        live.observe(self.labels, rec)
        with self.changed:
            self.records.append(rec)
            self.changed.notify_all()

    def _run(self) -> None:
        try:
            args = (self.server, self.request, self.add, self.cancel, self.in_flight)
            if self.request["client"]["workers"] > 1:
                self.client_stats = workers.run(*args)
            else:
                self.client_stats = asyncio.run(runner.run(*args))
            state = "cancelled" if self.cancel.is_set() else "done"
        except Exception as exc:  # noqa: BLE001 - reported to the caller, never lost
            self.error = f"{type(exc).__name__}: {exc}"
            state = "failed"
        with self.changed:
            self.state = state
            self.finished_at = time.time()
            self.changed.notify_all()

    def start(self) -> None:
        threading.Thread(target=self._run, name=f"point-{self.id}", daemon=True).start()

    def view(self, offset: int, limit: int, wait: float) -> dict:
        """Records from `offset`, waiting up to `wait` s for new ones while running."""
        with self.changed:
            self.changed.wait_for(
                lambda: len(self.records) > offset or self.state != "running", timeout=wait
            )
            records = self.records[offset : offset + limit]
            return {
                "id": self.id,
                "state": self.state,
                "error": self.error,
                "total": self.total,
                "completed": len(self.records),
                "in_flight": self.in_flight.now,
                "peak_in_flight": self.in_flight.peak,
                "client": self.client_stats,
                "started_at": self.started_at,
                "finished_at": self.finished_at,
                "records": records,
                "next_offset": offset + len(records),
            }


class Points:
    """The points of this service; one runs at a time so points never share the server."""

    def __init__(self):
        self._lock = threading.Lock()
        self._points: dict[str, Point] = {}

    def start(self, request: dict, server: runner.Server, labels: dict) -> Point | None:
        with self._lock:
            if any(p.state == "running" for p in self._points.values()):
                return None
            point = Point(request, server, labels)
            self._points[point.id] = point
        point.start()
        return point

    def get(self, point_id: str) -> Point | None:
        return self._points.get(point_id)

    def running(self) -> Point | None:
        return next((p for p in self._points.values() if p.state == "running"), None)
