"""Latency values for CloudWatch ``Values``/``Counts`` distributions.

CloudWatch takes at most 150 distinct values per MetricDatum and aggregates datums that share
name, dimensions and timestamp, so a distribution is published exactly when it has at most 150
distinct values (pipelines/aggregate.py) and otherwise snapped to a log-scale grid with a
bounded *relative* error at any magnitude, split into datums of at most 150 values.

Grid (DDSketch-style): with ``ALPHA = 0.01``, ``GAMMA = (1 + ALPHA) / (1 - ALPHA)``
(≈ 1.0202), a latency ``x > 0`` falls in bucket ``i = ceil(log_GAMMA(x))``, i.e.
``(GAMMA**(i-1), GAMMA**i]``, whose representative ``2·GAMMA**i / (GAMMA + 1)``
is within ``ALPHA`` (1 %) of every point of the bucket. So an alarm threshold such as
``p99 > 40`` moves by at most 1 % (a 6 % grid once made it fire only above 41.45 ms).
1 ms .. 1 s spans 349 buckets, 5 .. 50 ms 116 (one datum); the sliding-window percentile
gauges use the same grid.
"""
from __future__ import annotations

import math
from collections.abc import Iterable, Mapping, Sequence

from pipelines.stats import percentile_from_distribution

#: Guaranteed bound on ``|quantise(x) - x| / x`` (up to float rounding, ~1e-15).
ALPHA = 0.01
GAMMA = (1.0 + ALPHA) / (1.0 - ALPHA)
_LOG_GAMMA = math.log(GAMMA)
_SCALE = 2.0 / (GAMMA + 1.0)
#: CloudWatch's limit on distinct values in one MetricDatum.
MAX_DISTRIBUTION_VALUES = 150

HistogramSnapshot = list[tuple[float, float]]


def bucket_index(ms: float) -> int:
    """Index ``i`` of the grid bucket ``(GAMMA**(i-1), GAMMA**i]`` holding ``ms > 0``."""
    return math.ceil(math.log(ms) / _LOG_GAMMA)


def representative(index: int) -> float:
    """The value that stands for every latency in bucket ``index``."""
    return _SCALE * GAMMA**index


def quantise(ms: float) -> float:
    """Snap a latency (ms, finite, >= 0) to its bucket representative; ``0`` stays exactly ``0``.

    ``abs(quantise(x) - x) <= ALPHA * x``; monotone non-decreasing and idempotent
    (a representative lies strictly inside its bucket, so float rounding at the
    bucket edges cannot move it). Raises ``ValueError`` for negative or non-finite input.
    """
    if not math.isfinite(ms) or ms < 0:
        raise ValueError(f"latency must be a finite number of ms >= 0, got {ms!r}")
    if ms == 0:
        return 0.0
    return _SCALE * GAMMA ** math.ceil(math.log(ms) / _LOG_GAMMA)  # representative(bucket_index(ms)), inlined


class Histogram:
    """A mutable latency histogram: quantised value -> count.

    Not thread-safe; owned by one stage. Counts are non-negative numbers
    (integers in practice; floats so CloudWatch ``Counts`` round-trip).
    """

    __slots__ = ("_counts", "_total")

    def __init__(self, items: Iterable[tuple[float, float]] = ()) -> None:
        self._counts: dict[float, float] = {}
        self._total = 0.0
        for value, count in items:
            self.add(value, count)

    def add(self, ms: float, count: float = 1) -> None:
        """Count ``count`` observations of latency ``ms`` (quantised on the way in)."""
        if not (math.isfinite(count) and count >= 0):
            raise ValueError(f"histogram counts must be finite and >= 0, got {count!r}")
        if count == 0:
            return
        key = quantise(ms)
        self._counts[key] = self._counts.get(key, 0.0) + count
        self._total += count

    def add_representative(self, value: float) -> None:
        """Count one observation already quantised (`quantise`'s output): the sliding window
        quantises a latency once for every dimension set it keeps it under."""
        self._counts[value] = self._counts.get(value, 0.0) + 1
        self._total += 1

    def merge(self, other: Histogram) -> None:
        """Add every observation of ``other`` to this histogram (``other`` is unchanged)."""
        for value, count in other._counts.items():
            self._counts[value] = self._counts.get(value, 0.0) + count
        self._total += other._total

    def items(self) -> list[tuple[float, float]]:
        """``(value, count)`` pairs sorted by value; counts are all > 0."""
        return sorted(self._counts.items())

    @property
    def total(self) -> float:
        """Number of observations."""
        return self._total

    def __len__(self) -> int:
        """Number of distinct (quantised) values."""
        return len(self._counts)

    def __eq__(self, other: object) -> bool:
        return isinstance(other, Histogram) and self._counts == other._counts

    def __repr__(self) -> str:
        return f"Histogram({self.items()!r})"

    def percentile(self, q: float) -> float | None:
        """The ``q``-th percentile (``q`` in [0, 100]), ``None`` when empty.

        Same rule as :func:`pipelines.stats.percentile_from_distribution` (numpy's
        "linear"), so it is within ``ALPHA`` of numpy's percentile of the raw samples.
        """
        values = list(self._counts)
        return percentile_from_distribution(values, [self._counts[v] for v in values], q)

    def distribution(self) -> tuple[tuple[float, ...], tuple[float, ...]]:
        """``(values, counts)`` sorted by value, ready for a Datum."""
        items = self.items()
        return tuple(v for v, _ in items), tuple(c for _, c in items)

    def snapshot(self) -> HistogramSnapshot:
        """Plain data (a list of ``(value, count)`` tuples) that :meth:`restore` accepts."""
        return self.items()

    @classmethod
    def restore(cls, data: Iterable[Sequence[float]] | Mapping[float, float]) -> Histogram:
        """Rebuild from :meth:`snapshot` output (or a value->count mapping).

        Values are re-quantised, which is a no-op for representatives, so a
        snapshot taken under this grid restores exactly.
        """
        pairs = data.items() if isinstance(data, Mapping) else data
        hist = cls()
        for pair in pairs:
            value, count = pair
            hist.add(float(value), float(count))
        return hist


def split_distribution(
    values: Sequence[float], counts: Sequence[float], max_values: int = MAX_DISTRIBUTION_VALUES
) -> list[tuple[tuple[float, ...], tuple[float, ...]]]:
    """Split one distribution into consecutive chunks of at most ``max_values`` entries.

    CloudWatch aggregates datums with the same name, dimensions and timestamp,
    so publishing the chunks as separate datums is exact (sums, counts,
    percentiles). Order and duplicates are preserved; an empty input gives ``[]``.
    Raises ``ValueError`` for mismatched lengths or ``max_values < 1``.
    """
    if len(values) != len(counts):
        raise ValueError(f"values and counts must have the same length, got {len(values)} and {len(counts)}")
    if max_values < 1:
        raise ValueError(f"max_values must be >= 1, got {max_values}")
    return [
        (tuple(values[i : i + max_values]), tuple(counts[i : i + max_values]))
        for i in range(0, len(values), max_values)
    ]
