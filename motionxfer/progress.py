"""How library functions report progress without knowing about terminals.

A long-running library function takes `progress: ProgressCallback | None` and calls
`progress(description, done, total, rate_text)`. The CLI passes a rich progress bar on a terminal
and `ProgressLines` in logs; Python callers pass their own function or nothing.
"""

from __future__ import annotations

import time
from collections.abc import Callable
from dataclasses import dataclass

ProgressCallback = Callable[[str, int, "int | None", str], None]


class RateMeter:
    """Reports `done/total` with an items-per-second text, at most every `interval` seconds."""

    def __init__(
        self, callback: ProgressCallback | None, description: str, total: int | None,
        unit: str = "frames", interval: float = 0.25,
    ) -> None:
        self.callback = callback
        self.description = description
        self.total = total
        self.unit = unit
        self.interval = interval
        self.started = time.perf_counter()
        self._last = 0.0
        self.done = 0

    def advance(self, count: int = 1) -> None:
        self.done += count
        now = time.perf_counter()
        if self.callback is not None and (now - self._last >= self.interval or self.done == self.total):
            self._last = now
            self.callback(self.description, self.done, self.total, self.rate_text())

    def rate(self) -> float:
        elapsed = time.perf_counter() - self.started
        return self.done / elapsed if elapsed > 0 else 0.0

    def rate_text(self) -> str:
        return f"{self.rate():.1f} {self.unit}/s"

    def finish(self) -> None:
        if self.callback is not None:
            self.callback(self.description, self.done, self.total or self.done, self.rate_text())


class ProgressLines:
    """A `ProgressCallback` that writes plain lines for logs (nohup, CI), not a bar:
    `poses 120/600 35.2 frames/s ETA 0:00:14`, for each task at most every `interval` seconds
    after its first report, and once when it is done."""

    def __init__(self, write: Callable[[str], None], interval: float = 5.0,
                 clock: Callable[[], float] = time.monotonic) -> None:
        self.write = write
        self.interval = interval
        self.clock = clock
        self._tasks: dict[str, _Task] = {}

    def __call__(self, description: str, done: int, total: int | None, rate: str = "") -> None:
        now = self.clock()
        task = self._tasks.get(description)
        finished = total is not None and done >= total
        if task is None or done < task.done:  # a new task, or the same name starting over
            task = self._tasks[description] = _Task(started=now, first=done, printed=now,
                                                    done=done)
            if not finished:
                return
        elif task.finished or not (finished or now - task.printed >= self.interval):
            task.done = done
            return
        task.done, task.printed, task.finished = done, now, finished
        count = f"{done}/{total}" if total is not None else f"{done}"
        parts = [description, count, rate]
        if not finished and total is not None and done > task.first and now > task.started:
            seconds = (total - done) * (now - task.started) / (done - task.first)
            parts.append(f"ETA {duration_text(seconds)}")
        self.write(" ".join(part for part in parts if part))


@dataclass
class _Task:
    started: float  # clock of the first report
    first: int  # its count: the rate and ETA count from there
    printed: float  # clock of the last line
    done: int
    finished: bool = False


def duration_text(seconds: float) -> str:
    """`H:MM:SS`, rounded to the second."""
    minutes, second = divmod(round(seconds), 60)
    hours, minute = divmod(minutes, 60)
    return f"{hours}:{minute:02d}:{second:02d}"
