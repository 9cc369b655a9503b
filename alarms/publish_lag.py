"""When what rollguard publishes reaches CloudWatch: the lag model `backtest` and `alarms simulate` share.

A tick drains every count stamped before it, so a tick bucket ``[b, b + tick)`` is complete at
the first tick after ``b + tick``. The daemon's ticks are not aligned to the bucket edges, so that
is up to one tick later; then the publisher sends the datums and CloudWatch stores them (the
publish delay). A datum drained at ``d`` is therefore in CloudWatch by ``d + tick + delay`` at
the latest, and a bucket's counts are whole by ``b + 2 * tick + delay``: the model takes that
worst case, so an alarm that works under it works at any tick phase. An evaluation at ``e``
sees only what has arrived by ``e`` (`alarms.evaluator`, :attr:`Datum.arrival`).
"""
from __future__ import annotations

import dataclasses
import math

from alarms.evaluator import Datum

#: seconds from a PutMetricData call until an alarm evaluation can see the data, as modelled
DEFAULT_PUBLISH_DELAY_S = 10.0


def publish_lag_s(tick_s: float, delay_s: float = DEFAULT_PUBLISH_DELAY_S) -> float:
    """How long after it is drained (by an aligned tick) a datum reaches CloudWatch: one tick of
    phase plus the publish delay."""
    return tick_s + delay_s


def arriving(datum: Datum, drained_s: float, lag_s: float) -> Datum:
    """``datum`` as it reaches CloudWatch ``lag_s`` after it was drained at ``drained_s``."""
    return dataclasses.replace(datum, arrival=drained_s + lag_s)


def minute_end(datum: Datum) -> int:
    """The end of the minute a datum is stamped in: when a 60 s tick drains it (aligned)."""
    return (math.floor(datum.timestamp) // 60 + 1) * 60
