"""Injected time: the core never reads the wall clock itself."""
from __future__ import annotations

from typing import Protocol


class Clock(Protocol):
    def now_ms(self) -> int:
        """Current time in epoch milliseconds."""
        ...


class MockedClock:
    """A clock that only moves when told to (tests, backtests)."""

    def __init__(self, start_ms: int = 0) -> None:
        self._now = start_ms

    def now_ms(self) -> int:
        return self._now

    def advance(self, ms: int) -> None:
        if ms < 0:
            raise ValueError(f"a clock only moves forward, got advance({ms})")
        self._now += ms

    def set(self, now_ms: int) -> None:
        self._now = max(self._now, now_ms)
