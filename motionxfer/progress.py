"""How library functions report progress without knowing about terminals.

A long-running library function takes `progress: ProgressCallback | None` and calls
`progress(description, done, total, rate_text)`. The CLI passes a rich progress bar; Python
callers pass their own function or nothing.
"""

from __future__ import annotations

import time
from collections.abc import Callable

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
