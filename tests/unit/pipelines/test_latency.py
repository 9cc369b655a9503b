"""Latency quantisation, the Histogram, and splitting distributions for CloudWatch."""
from __future__ import annotations

import json
import math
import pickle

import numpy as np
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from pipelines.latency import (
    ALPHA,
    GAMMA,
    MAX_DISTRIBUTION_VALUES,
    Histogram,
    bucket_index,
    quantise,
    split_distribution,
)

# Float rounding in log/pow can move a value across a bucket edge; the error bound then holds to ~1e-15.
TOLERANCE = ALPHA * (1 + 1e-9)
positive_latencies = st.floats(min_value=1e-6, max_value=1e9, allow_nan=False, allow_infinity=False)


def test_zero_is_exact() -> None:
    assert quantise(0.0) == 0.0
    assert quantise(-0.0) == 0.0


@pytest.mark.parametrize("bad", [-1.0, -1e-12, math.nan, math.inf])
def test_rejects_negative_and_non_finite(bad: float) -> None:
    with pytest.raises(ValueError, match="latency"):
        quantise(bad)


@given(positive_latencies)
def test_relative_error_is_bounded(ms: float) -> None:
    assert abs(quantise(ms) - ms) <= TOLERANCE * ms


@given(positive_latencies)
def test_idempotent(ms: float) -> None:
    q = quantise(ms)
    assert quantise(q) == q


@given(positive_latencies, positive_latencies)
def test_monotone(a: float, b: float) -> None:
    lo, hi = sorted((a, b))
    assert quantise(lo) <= quantise(hi)


def test_measured_error_and_bucket_count_over_typical_range() -> None:
    # Dense log-spaced sweep of 0.01 ms .. 10 min: the worst error reaches ALPHA at bucket edges.
    xs = np.geomspace(0.01, 600_000.0, 400_000)
    qs = np.array([quantise(float(x)) for x in xs])
    worst = float(np.max(np.abs(qs - xs) / xs))
    assert 0.0099 < worst <= TOLERANCE
    assert len(set(qs.tolist())) == 897 == bucket_index(600_000.0) - bucket_index(0.01) + 1
    assert bucket_index(50.0) - bucket_index(5.0) + 1 == 116 <= MAX_DISTRIBUTION_VALUES  # one datum
    assert GAMMA == pytest.approx(1.01 / 0.99)


def test_histogram_add_merge_items_total() -> None:
    h = Histogram()
    h.add(10.0)
    h.add(10.05, count=2)  # same bucket as 10.0
    h.add(0.0)
    h.add(500.0, count=0)  # no-op
    assert h.total == 4
    assert h.items() == [(0.0, 1.0), (quantise(10.0), 3.0)]
    other = Histogram()
    other.add(200.0, 4)
    h.merge(other)
    assert h.total == 8
    assert h.items() == [(0.0, 1.0), (quantise(10.0), 3.0), (quantise(200.0), 4.0)]
    assert other.items() == [(quantise(200.0), 4.0)]
    assert h.distribution() == ((0.0, quantise(10.0), quantise(200.0)), (1.0, 3.0, 4.0))
    with pytest.raises(ValueError, match="counts"):
        h.add(1.0, -1)


def test_empty_histogram_has_no_percentile() -> None:
    assert Histogram().percentile(50) is None
    assert Histogram().total == 0


@settings(max_examples=200)
@given(
    st.lists(st.floats(min_value=0.0, max_value=600_000.0), min_size=1, max_size=300),
    st.sampled_from([0.0, 1.0, 50.0, 90.0, 99.0, 99.9, 100.0]),
)
def test_percentiles_within_quantisation_error_of_numpy(samples: list[float], q: float) -> None:
    h = Histogram()
    for s in samples:
        h.add(s)
    expected = float(np.percentile(np.array(samples), q))
    got = h.percentile(q)
    assert got is not None
    assert abs(got - expected) <= TOLERANCE * expected + 1e-12


def test_percentiles_of_a_realistic_latency_sample() -> None:
    rng = np.random.default_rng(7)
    samples = rng.lognormal(mean=math.log(12.0), sigma=0.6, size=50_000)
    h = Histogram()
    for s in samples:
        h.add(float(s))
    for q in (50, 90, 99):
        expected = float(np.percentile(samples, q))
        got = h.percentile(q)
        assert got is not None and abs(got - expected) <= TOLERANCE * expected
    assert len(h) < 2 * MAX_DISTRIBUTION_VALUES  # a whole day of such traffic: at most two datums


def test_snapshot_restore_round_trips_through_json_and_pickle() -> None:
    h = Histogram()
    for ms in (0.0, 0.013, 1.0, 12.5, 12.6, 999.0, 123456.0):
        h.add(ms, 3)
    data = h.snapshot()
    assert Histogram.restore(json.loads(json.dumps(data))) == h
    assert Histogram.restore(pickle.loads(pickle.dumps(data))) == h
    assert Histogram.restore(dict(data)) == h
    assert Histogram.restore(data).total == h.total


def test_split_distribution() -> None:
    values = [float(i) for i in range(400)]
    counts = [float(i % 7 + 1) for i in range(400)]
    parts = split_distribution(values, counts)
    assert [len(v) for v, _ in parts] == [150, 150, 100]
    assert all(len(v) == len(c) for v, c in parts)
    assert [x for v, _ in parts for x in v] == values
    assert [x for _, c in parts for x in c] == counts
    assert split_distribution([], []) == []
    assert split_distribution([1.0], [2.0]) == [((1.0,), (2.0,))]
    assert [len(v) for v, _ in split_distribution(values[:150], counts[:150])] == [150]
    assert [len(v) for v, _ in split_distribution(values[:10], counts[:10], max_values=3)] == [3, 3, 3, 1]
    with pytest.raises(ValueError, match="same length"):
        split_distribution([1.0], [])
    with pytest.raises(ValueError, match="max_values"):
        split_distribution([1.0], [1.0], max_values=0)
