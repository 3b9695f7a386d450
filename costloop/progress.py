"""Progress of a long run, by stage, on the command line (stderr, so stdout stays the report).

The engine calls ``progress(stage, done, total)`` at each stage boundary
(`costloop.engine.pipeline.run.RUN_STAGES`); this draws it:

- on a terminal, one line redrawn in place: ``[#####.....] 2/4 forecast  12.3 s``;
- anywhere else (a CI log, a pipe), a plain line per finished stage:
  ``costloop: run done in 8.1 s (2/4)``.

Short runs stay quiet: nothing is shown until a run has taken ``after`` seconds
(1 on a terminal, 10 in a log, where a line per stage of a two-second run is
noise). ``COSTLOOP_PROGRESS=always`` or ``never`` overrides that.
"""

from __future__ import annotations

import os
import sys
import time
from typing import TextIO

STAGE_WORDS = {
    "read+check": "reading and checking",
    "run": "allocating and charging",
    "forecast": "forecasting",
    "write": "writing",
}
WIDTH = 20


class StageProgress:
    """A `costloop.engine.pipeline.run.Progress` callback that draws on a stream."""

    def __init__(self, stream: TextIO | None = None, after: float | None = None):
        self.stream = stream if stream is not None else sys.stderr
        self.terminal = bool(getattr(self.stream, "isatty", lambda: False)())
        mode = os.environ.get("COSTLOOP_PROGRESS", "").strip().lower()
        if mode == "never":
            after = float("inf")
        elif mode == "always":
            after = 0.0
        self.after = after if after is not None else (1.0 if self.terminal else 10.0)
        self.started = time.perf_counter()
        self.stage_started = self.started
        self.current = ""
        self.drawn = False
        self.waiting: list[str] = []
        """Lines of stages that ended before the run was long enough to show them."""

    def __call__(self, stage: str, done: int, total: int) -> None:
        now = time.perf_counter()
        finished, seconds = self.current, now - self.stage_started
        self.current, self.stage_started = stage, now
        if finished and not self.terminal:
            words = STAGE_WORDS.get(finished, finished)
            self.waiting.append(f"costloop: {words} done in {seconds:.1f} s ({done}/{total})\n")
        if now - self.started < self.after:
            return
        if self.terminal:
            bar = "#" * (WIDTH * done // total) + "." * (WIDTH - WIDTH * done // total)
            doing = STAGE_WORDS.get(stage, stage) if stage else "done"
            line = f"[{bar}] {done}/{total} {doing}  {now - self.started:.1f} s"
            self.stream.write("\r" + line.ljust(60))
            self.drawn = True
            if not stage:
                self.close()
        else:
            # Once the run is long enough, the stages that ended before are shown too.
            self.stream.write("".join(self.waiting))
            self.waiting = []
        self.stream.flush()

    def close(self) -> None:
        """End the redrawn line (a run that stops early, on errors, leaves it open)."""
        if self.drawn:
            self.stream.write("\n")
            self.stream.flush()
            self.drawn = False
