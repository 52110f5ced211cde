"""What a deployment job does while one of its points runs: keep the point's live figures
(RunPaths.live, rewritten atomically every LIVE_EVERY_S) for `llmsweep status` and the run
page, and show them on the terminal. Fed by benchmark.follow_point with each view it gets
from the client service, so the load generator does nothing more for it."""

from __future__ import annotations

import math
import time

from llmsweep.live import progress, text
from llmsweep.live.figures import PointFigures, of_summary
from llmsweep.live.terminal import Terminal
from llmsweep.loadgen import patterns, sweep
from llmsweep.paths import RunPaths
from llmsweep.util import write_json_atomic

LIVE_EVERY_S = 2.0  # live.json and the terminal line


class PointWatch:
    """One point of a deployment job, from before it starts (state starting) to its end
    (done or failed). `settings` holds the config's sweep and warmup sections; `terminal`
    is where it is shown (None: only live.json)."""

    def __init__(
        self,
        paths: RunPaths,
        point: dict,
        settings: dict,
        terminal: Terminal | None = None,
        clock=time.time,
    ):
        self.paths, self.terminal, self.clock = paths, terminal, clock
        bounds, warmup = settings["sweep"], settings.get("warmup") or {}
        self.bounds = (
            bounds.get("duration_s"),
            warmup.get("duration_s") or 0,
            bounds.get("max_point_duration_s"),
        )
        started = clock()
        self.figures = PointFigures(*self.bounds, started_at=started)
        module = patterns.of(point)
        self.base = {
            "run": paths.run,
            "deployment": point["deployment"],
            "load": point["load"],
            "describe": sweep.describe_load(point),
            "pattern": module.NAME,
            "level": point[module.LEVEL_KEY],
            "repeat": point["repeat"],
            "started_at": started,
        }
        self.path = paths.live(point["deployment"], point["load"])
        self.total: int | None = None
        self.in_flight: int | None = None
        self.written_at = -math.inf
        self.write("starting")  # its prompts are built, the client service asked

    def begin(self) -> None:
        """The client service runs the point from now."""
        self.base["started_at"] = started = self.clock()
        self.figures = PointFigures(*self.bounds, started_at=started)
        self.write("running")

    @property
    def name(self) -> str:
        return text.point_name(self.base)

    def write(self, state: str, **extra) -> dict:
        now = self.clock()
        live = {
            **self.base,
            **self.figures.figures(now, self.total, self.in_flight),
            "state": state,
            "updated_at": now,
            **extra,
        }
        write_json_atomic(self.path, live)
        self.written_at = now
        return live

    def update(self, view: dict) -> None:
        """A view of the point from the client service (its new records, completed, total,
        in flight): counted at once, written and shown every LIVE_EVERY_S."""
        self.figures.add(view["records"])
        self.total, self.in_flight = view.get("total"), view.get("in_flight")
        now = self.clock()
        if now - self.written_at < LIVE_EVERY_S:
            return
        live = self.write("running")
        if self.terminal is not None:
            self.terminal.show(live, progress.picture(self.paths, now))

    def finished(self, summary: dict) -> None:
        """The point is done: its last figures stay in live.json, its summary line is shown."""
        self.in_flight = 0
        self.write("done", finished_at=self.clock())
        if self.terminal is not None:
            self.terminal.ended(text.summary_line(self.name, of_summary(summary)))

    def failed(self, error: str) -> None:
        """The point failed (or was stopped): said in live.json and on the terminal; never
        raises, the point's own error is what matters."""
        try:
            self.write("failed", finished_at=self.clock(), error=error)
        except OSError:
            pass
        if self.terminal is not None:
            self.terminal.ended(f"{self.name} failed: {error}")
