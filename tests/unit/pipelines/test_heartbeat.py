"""The heartbeat's stamps: one per tick bucket an instance has completed, whatever its tick phase."""
from __future__ import annotations

import pytest

from pipelines.heartbeat import heartbeat_stamps

TICK = 60_000
T0 = 1_795_251_600_000  # a bucket edge


def test_a_tick_vouches_for_the_buckets_it_completed() -> None:
    assert heartbeat_stamps(None, T0 + 37_000, TICK) == [T0 - TICK]  # the bucket just closed, not its own
    assert heartbeat_stamps(T0 + 37_000, T0 + 97_000, TICK) == [T0]
    assert heartbeat_stamps(T0, T0 + TICK, TICK) == [T0]  # ticks on the edges
    # jitter around an edge: a tick completes no bucket, the next one two
    assert heartbeat_stamps(T0 - 100, T0 + TICK - 200, TICK) == [T0 - TICK]
    assert heartbeat_stamps(T0 + TICK - 200, T0 + 2 * TICK + 100, TICK) == [T0, T0 + TICK]
    assert heartbeat_stamps(T0 + 10, T0 + 20, TICK) == []


def test_over_any_ticks_every_bucket_is_stamped_once() -> None:
    ticks = [T0 + 59_900, T0 + 120_100, T0 + 179_800, T0 + 240_300, T0 + 300_000, T0 + 481_000]
    stamps = [s for prev, now in zip(ticks, ticks[1:]) for s in heartbeat_stamps(prev, now, TICK)]
    assert stamps == [T0 + k * TICK for k in range(8)]  # each bucket ending after the first tick
    with pytest.raises(ValueError, match="tick_ms"):
        heartbeat_stamps(None, T0, 0)
