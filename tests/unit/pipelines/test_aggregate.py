"""Latency as published: exact values while they fit one datum, else a 1 % grid."""
from __future__ import annotations

import numpy as np

from pipelines.aggregate import Aggregator
from pipelines.latency import MAX_DISTRIBUTION_VALUES, quantise

SERIES = ("ep", "v", None, ())
NOW = 1_790_000_000_000


def latency_datums(agg: Aggregator) -> list[tuple[tuple[float, ...], tuple[float, ...]]]:
    return [(d.values, d.counts) for d in agg.drain(NOW) if d.name == "Latency"]


def test_up_to_150_distinct_latencies_are_published_exactly() -> None:
    agg = Aggregator(60_000)
    raw = [36.8 + i * 0.031 for i in range(MAX_DISTRIBUTION_VALUES)]  # (36.76, 41.45] was one value before
    for ms in raw + raw[:10]:
        agg.latency(SERIES, NOW - 1000, ms)
    ((values, counts),) = latency_datums(agg)
    assert values == tuple(sorted(raw)) and sum(counts) == len(raw) + 10
    assert [v for v in values if v > 40] == [v for v in raw if v > 40]  # a p99 > 40 alarm sees the truth


def test_more_distinct_values_go_on_a_grid_that_moves_a_threshold_by_at_most_1_percent() -> None:
    agg = Aggregator(60_000)
    raw = np.geomspace(1.0, 1000.0, 2000)
    for ms in raw:
        agg.latency(SERIES, NOW - 1000, float(ms))
    ((values, counts),) = latency_datums(agg)  # the publisher splits it into datums of <= 150 values
    assert sum(counts) == len(raw) and len(values) > MAX_DISTRIBUTION_VALUES
    for threshold in (40.0, 100.0, 250.0):
        for x in np.linspace(threshold * 0.7, threshold * 1.3, 5001):
            q = quantise(float(x))
            if x > threshold * 1.01:
                assert q > threshold, (threshold, x, q)
            if x <= threshold * 0.99:
                assert q <= threshold, (threshold, x, q)
