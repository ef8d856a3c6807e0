"""Stopping training cleanly: the first Ctrl-C (SIGINT) or SIGTERM (a scheduler's preemption,
`docker stop`, `systemctl stop`) asks the loop to stop after the current step and save; a second
one interrupts at once."""

from __future__ import annotations

import contextlib
import signal
import threading
from collections.abc import Iterator
from dataclasses import dataclass
from typing import Any

STOP_SIGNALS = (signal.SIGINT, signal.SIGTERM)


class Interrupted(KeyboardInterrupt):
    """Training stopped on a signal; `signal_number` says which (exit code 128 + it)."""

    def __init__(self, signal_number: int = signal.SIGINT) -> None:
        super().__init__(signal.Signals(signal_number).name)
        self.signal_number = int(signal_number)


@dataclass
class StopRequest:
    requested: bool = False  # a stop signal came once: stop after this step
    in_step: bool = False  # a step is running (its state would be half updated)
    agreed: bool = False  # several processes: one of them was asked to stop, all stop now
    signal_number: int = signal.SIGINT  # the signal that asked (SIGINT when another process did)


@contextlib.contextmanager
def deferred_interrupt() -> Iterator[StopRequest]:
    """The first SIGINT or SIGTERM asks the loop to stop after the current step; a second one
    interrupts (raises `Interrupted`). The previous handlers are put back afterwards."""
    stop = StopRequest()
    if threading.current_thread() is not threading.main_thread():
        yield stop
        return
    previous = {number: signal.getsignal(number) for number in STOP_SIGNALS}

    def handler(signum: int, frame: Any) -> None:
        if stop.requested:
            raise Interrupted(signum)
        stop.requested = True
        stop.signal_number = signum

    for number in STOP_SIGNALS:
        signal.signal(number, handler)
    try:
        yield stop
    finally:
        for number, previous_handler in previous.items():
            signal.signal(number, previous_handler)
