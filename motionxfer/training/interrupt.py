"""Stopping training cleanly: the first Ctrl-C asks the loop to stop after the current step (and
save); a second one interrupts at once."""

from __future__ import annotations

import contextlib
import signal
import threading
from collections.abc import Iterator
from dataclasses import dataclass
from typing import Any


@dataclass
class StopRequest:
    requested: bool = False  # Ctrl-C was pressed once: stop after this step
    in_step: bool = False  # a step is running (its state would be half updated)
    agreed: bool = False  # several processes: one of them was asked to stop, all stop now


@contextlib.contextmanager
def deferred_interrupt() -> Iterator[StopRequest]:
    """The first Ctrl-C asks the loop to stop after the current step; a second one interrupts."""
    stop = StopRequest()
    if threading.current_thread() is not threading.main_thread():
        yield stop
        return
    previous = signal.getsignal(signal.SIGINT)

    def handler(signum: int, frame: Any) -> None:
        if stop.requested:
            raise KeyboardInterrupt
        stop.requested = True

    signal.signal(signal.SIGINT, handler)
    try:
        yield stop
    finally:
        signal.signal(signal.SIGINT, previous)


