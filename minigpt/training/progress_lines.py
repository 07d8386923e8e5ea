"""Training progress as plain lines, for output that is kept line by line: a file, a pipe, a CI log.

There tqdm's bar would keep each of its redraws, a carriage-return frame ten times a second (hundreds of kilobytes
for a long run); ``ProgressLines`` prints one line every few seconds instead, and a last one at the end::

    step 120/3000 (4%), 0:00:41 elapsed, about 0:16:24 left: loss 3.2100, tok_s 12,345, mfu 3.1%
"""

from __future__ import annotations

import datetime
import sys
import time
from collections.abc import Callable
from typing import TextIO

INTERVAL_S = 5.0


def kept_line_by_line(stream: TextIO) -> bool:
    """Whether ``stream`` keeps every line written to it (a file, a pipe), rather than redrawing a line in place as
    a terminal does. A Jupyter notebook's streams also redraw in place, though they say they are no terminal."""
    if type(stream).__module__.split(".")[0] == "ipykernel":
        return False
    isatty = getattr(stream, "isatty", None)
    return not (callable(isatty) and isatty())


def _clock_time(seconds: float) -> str:
    return str(datetime.timedelta(seconds=round(seconds)))


class ProgressLines:
    """The part of tqdm's bar that ``minigpt.training.progress.Progress`` uses (``update``, ``set_postfix``,
    ``write``, ``close``), printed as a line to ``file`` at most every ``interval`` seconds, and once at ``close``.

    ``clock`` (seconds) is a parameter so that tests can drive the time.
    """

    def __init__(
        self,
        total: int,
        initial: int = 0,
        *,
        file: TextIO,
        interval: float = INTERVAL_S,
        clock: Callable[[], float] = time.monotonic,
    ) -> None:
        self.total, self.initial, self.n = total, initial, initial
        self.file, self.interval, self.clock = file, interval, clock
        self.postfix = ""
        self.t_start = self.t_printed = clock()
        self.n_printed = initial

    def update(self, n: int = 1) -> None:
        self.n += n
        if self.clock() - self.t_printed >= self.interval:
            self._print()

    def set_postfix(self, **values: str) -> None:
        self.postfix = ", ".join(f"{name} {value}" for name, value in values.items())

    def write(self, message: str) -> None:
        """A message of its own line, on stdout like ``tqdm.write``."""
        print(message, file=sys.stdout, flush=True)

    def close(self) -> None:
        if self.n != self.n_printed:
            self._print()

    def _print(self) -> None:
        now = self.clock()
        elapsed, done = now - self.t_start, self.n - self.initial
        line = f"step {self.n}/{self.total} ({100 * self.n / max(self.total, 1):.0f}%), {_clock_time(elapsed)} elapsed"
        if 0 < done and self.n < self.total:  # the rate so far, compilation included: a rough estimate
            line += f", about {_clock_time(elapsed / done * (self.total - self.n))} left"
        print(line + (f": {self.postfix}" if self.postfix else ""), file=self.file, flush=True)
        self.t_printed, self.n_printed = now, self.n
