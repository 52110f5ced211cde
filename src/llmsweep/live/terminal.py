"""The terminal view of a deployment job (its stdout is the terminal that started the sweep;
its stderr is its log file).

On a TTY: one live line per job, redrawn in place by rich (transient: it disappears when
the point ends), and a summary line per finished point. Otherwise (a batch job's output, a
file, the web front end's driver log): plain lines, at most one per PLAIN_EVERY_S per point,
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
        """The running point's figures (and the run's line): redrawn on a TTY, else a plain
        line when the last one for this point is PLAIN_EVERY_S old."""
        line = text.live_line(live)
        tail = f" | {text.run_line(run)}" if run else ""
        if self.console is not None:
            shown = Text.assemble(
                PREFIX, (line, "bold"), (tail, "dim"), no_wrap=True, overflow="ellipsis"
            )
            if self.live is None:
                self.live = Live(
                    console=self.console,
                    auto_refresh=False,  # redrawn when figures change, no thread of its own
                    transient=True,
                    redirect_stdout=False,
                    redirect_stderr=False,
                )
                self.live.start()
            self.live.update(shown, refresh=True)
            return
        now = time.monotonic() if now is None else now
        name = text.point_name(live)
        if now - self.last_plain.get(name, -math.inf) >= self.plain_every_s:
            self.last_plain[name] = now
            self.say(line + tail)

    def ended(self, line: str) -> None:
        """A point ended: its live line goes, `line` (its summary) stays."""
        if self.live is not None:
            self.live.stop()
            self.live = None
        self.say(line)

    def say(self, line: str) -> None:
        if self.console is not None:
            self.console.print(PREFIX + line, soft_wrap=True, markup=False)
        else:
            print(f"{PREFIX}{text.clock(time.time())} {line}", file=self.out, flush=True)


_terminal: Terminal | None = None


def terminal() -> Terminal:
    """This process's terminal view, on stdout (one per process: one live line)."""
    global _terminal
    if _terminal is None:
        _terminal = Terminal()
    return _terminal
