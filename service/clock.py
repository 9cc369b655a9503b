"""The production clock; the core takes a Clock so tests and backtests can pass their own."""
from __future__ import annotations

import time


class SystemClock:
    def now_ms(self) -> int:
        return int(time.time() * 1000)
