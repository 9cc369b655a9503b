"""The record rate: a cumulative counter's rate over the last minute, from samples."""
from __future__ import annotations

import threading
from collections import deque

#: the records/s figure is the rate over this many seconds
RATE_WINDOW_SECONDS = 60.0
#: how often the sampler reads the record counter (12 samples per rate window)
RATE_SAMPLE_SECONDS = 5.0


class RateMeter:
    """The rate of a cumulative counter over the last ``window_s`` seconds, from samples.

    ``sample(t, value)`` with non-decreasing ``t``; :meth:`rate` uses the newest sample and
    the newest one at least ``window_s`` older than it (else the oldest kept), so with
    samples every few seconds it is the rate over the last minute. A counter that went
    down (a restart) starts the history again. Thread-safe.
    """

    def __init__(self, window_s: float = RATE_WINDOW_SECONDS) -> None:
        if window_s <= 0:
            raise ValueError(f"window_s must be > 0, got {window_s}")
        self.window_s = window_s
        self._samples: deque[tuple[float, float]] = deque()
        self._lock = threading.Lock()

    def sample(self, t: float, value: float) -> None:
        with self._lock:
            if self._samples and (value < self._samples[-1][1] or t < self._samples[-1][0]):
                self._samples.clear()
            self._samples.append((t, value))
            # keep exactly one sample at or before the window's start, as the baseline
            while len(self._samples) >= 2 and self._samples[1][0] <= t - self.window_s:
                self._samples.popleft()

    def rate(self) -> float | None:
        """Per-second rate, or None before two samples at different times exist."""
        with self._lock:
            if len(self._samples) < 2:
                return None
            (t0, v0), (t1, v1) = self._samples[0], self._samples[-1]
        if t1 <= t0:
            return None
        return (v1 - v0) / (t1 - t0)
