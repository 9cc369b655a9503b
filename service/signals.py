"""Stop signals: SIGTERM and SIGINT set an Event, so a command stops in order instead of
being interrupted wherever it is."""
from __future__ import annotations

import signal
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
