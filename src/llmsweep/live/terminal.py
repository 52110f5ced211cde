"""The terminal view of a deployment job (its stdout is the terminal that started the sweep;
its stderr is its log file).

On a TTY: one live line, redrawn in place by rich (transient: it disappears when the point
ends), and a summary line per finished point. Otherwise (a batch job's output, a file, the
web front end's driver log), and on a TTY while several deployments of the run run side by
side (their jobs share the terminal): plain lines, at most one per PLAIN_EVERY_S per point,
each with the time, and the same summary lines. Every line starts with the point's
deployment and load, so the lines of deployments running side by side stay readable.
"""

from __future__ import annotations

import math
import sys
import time
from typing import TextIO

from rich.console import Console
from rich.live import Live
from rich.text import Text

from llmsweep.live import text

PLAIN_EVERY_S = 5.0
PREFIX = "llmsweep: "


class Terminal:
    """Where a deployment job shows its points: `out` (default stdout)."""

    def __init__(self, out: TextIO | None = None, plain_every_s: float = PLAIN_EVERY_S):
        self.out = out or sys.stdout
        self.tty = self.out.isatty()
        self.plain_every_s = plain_every_s
        self.console = Console(file=self.out, highlight=False) if self.tty else None
        self.live: Live | None = None
        self.last_plain: dict[str, float] = {}

    def show(self, live: dict, run: dict | None = None, now: float | None = None) -> None:
        """The running point's figures (and the run's line): redrawn in place on a TTY, else
        a plain line when the last one for this point is PLAIN_EVERY_S old. While another
        deployment of the run also runs, its job writes to the same terminal: one line
        redrawn in place by two processes would garble, so both write plain lines then."""
        line = text.live_line(live)
        tail = f" | {text.run_line(run)}" if run else ""
        others = {p["deployment"] for p in (run or {}).get("running", [])} - {live["deployment"]}
        if self.console is not None and not others:
            self.redraw(Text.assemble(PREFIX, (line, "bold"), (tail, "dim")))
            return
        self.stop_live()
        now = time.monotonic() if now is None else now
        name = text.point_name(live)
        if now - self.last_plain.get(name, -math.inf) >= self.plain_every_s:
            self.last_plain[name] = now
            self.say(line + tail, stamp=True)

    def redraw(self, shown: Text) -> None:
        shown.no_wrap, shown.overflow = True, "ellipsis"  # one line: it is redrawn in place
        if self.live is None:
            self.live = Live(
                console=self.console,
                auto_refresh=False,  # redrawn when figures change, no thread of its own
                transient=True,
                redirect_stdout=False,
                redirect_stderr=False,
            )
            self.live.start()
            # Other processes write to this terminal too, and a job killed outright could
            # not show the cursor again: it stays shown.
            self.console.show_cursor(True)
        self.live.update(shown, refresh=True)

    def stop_live(self) -> None:
        if self.live is not None:
            self.live.stop()
            self.live = None

    def ended(self, line: str) -> None:
        """A point ended: its live line goes, `line` (its summary) stays."""
        self.stop_live()
        self.say(line)

    def say(self, line: str, stamp: bool = False) -> None:
        """A line that stays; with the time when it is one of a series of plain lines (and
        always without a terminal: logs read better with times)."""
        if self.console is None or stamp:
            line = f"{text.clock(time.time())} {line}"
        if self.console is not None:
            self.console.print(PREFIX + line, soft_wrap=True, markup=False)
        else:
            print(PREFIX + line, file=self.out, flush=True)


_terminal: Terminal | None = None


def terminal() -> Terminal:
    """This process's terminal view, on stdout (one per process: one live line)."""
    global _terminal
    if _terminal is None:
        _terminal = Terminal()
    return _terminal
