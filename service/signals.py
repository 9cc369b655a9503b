"""Stop signals: SIGTERM and SIGINT set an Event, so a command stops in order instead of
being interrupted wherever it is. SIGUSR1 prints every thread's stack (`dump_stacks_on_signal`)."""
from __future__ import annotations

import faulthandler
import signal
import sys
import threading
from collections.abc import Callable
from types import FrameType


def stop_on_signals(stop: threading.Event) -> Callable[[], None]:
    """From now on SIGTERM and SIGINT set ``stop``; returns a function restoring the previous handlers.

    Python installs handlers from the main thread only; elsewhere this does nothing.
    """
    if threading.current_thread() is not threading.main_thread():
        return lambda: None

    def handler(signum: int, frame: FrameType | None) -> None:
        stop.set()

    previous = {sig: signal.signal(sig, handler) for sig in (signal.SIGTERM, signal.SIGINT)}

    def restore() -> None:
        for sig, old in previous.items():
            signal.signal(sig, old)

    return restore


def dump_stacks_on_signal() -> None:
    """From now on SIGUSR1 (`kill -USR1 PID`) prints every thread's stack to stderr (the log) and
    the process carries on: how an instance that is alive but not consuming shows where it waits.
    Written by the interpreter's C handler: it answers even while the loop is stuck."""
    stderr = sys.__stderr__  # fd 2 itself: under a test runner sys.stderr may be a buffer without one
    if stderr is not None:
        faulthandler.register(signal.SIGUSR1, file=stderr, all_threads=True)
