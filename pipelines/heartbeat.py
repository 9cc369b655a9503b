"""The liveness signal's timestamps: an instance vouches for a tick bucket once it has drained it.

Every live instance publishes `pipelines.metrics.HEARTBEAT` (value 1, Count, no dimensions) at
every tick, one datum per tick bucket that became complete since its previous tick: a tick at
``now`` has drained every count stamped before ``now``, so each bucket ``[b, b + tick)`` with
``b + tick <= now`` is complete. A fail-safe alarm reads a period as settled, and the monitor as
up, only where it finds a heartbeat (`alarms.spec.requests`): a heartbeat stamped with the tick's
own time would mark the newest period as settled while its counts are still on their way, and
let a late, FILLed datapoint be judged as if it were whole. Pure: times come in as arguments.
"""
from __future__ import annotations


def heartbeat_stamps(previous_tick_ms: int | None, now_ms: int, tick_ms: int) -> list[int]:
    """Start of every tick bucket completed in ``(previous_tick_ms, now_ms]``, oldest first.

    With no previous tick, the last bucket completed by ``now_ms``. Ticks are not aligned to the
    bucket edges, so a tick may complete no bucket or two; over successive ticks each bucket gets
    exactly one stamp.
    """
    if tick_ms <= 0:
        raise ValueError(f"tick_ms must be positive; got {tick_ms}")
    last = now_ms - now_ms % tick_ms - tick_ms  # the newest bucket whose end is <= now
    if previous_tick_ms is None:
        return [last]
    first = previous_tick_ms - previous_tick_ms % tick_ms  # its end is > previous_tick_ms
    return list(range(first, last + 1, tick_ms))
