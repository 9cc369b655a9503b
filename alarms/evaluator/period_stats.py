"""Period statistics as CloudWatch computes them from datums: SampleCount, Sum, Average,
Minimum, Maximum and percentiles (values with counts, statistic sets)."""
from __future__ import annotations

import bisect
import math
from collections.abc import Iterable, Sequence
from dataclasses import dataclass

from alarms.evaluator.datums import Datum
from pipelines import cloudwatch_rules as rules
from pipelines.stats import percentile_from_distribution


@dataclass(frozen=True, slots=True)
class PeriodStats:
    """The statistics of one period. ``distribution`` is None when percentiles are unavailable."""

    sample_count: float
    sum: float
    minimum: float
    maximum: float
    distribution: tuple[tuple[float, float], ...] | None  # sorted (value, count)

    @property
    def average(self) -> float:
        return self.sum / self.sample_count

    def statistic(self, name: str) -> float | None:
        """``SampleCount``, ``Sum``, ``Average``, ``Minimum``, ``Maximum`` or ``pNN[.N]``; None if unavailable."""
        if name == "SampleCount":
            return self.sample_count
        if name == "Sum":
            return self.sum
        if name == "Average":
            return self.average
        if name == "Minimum":
            return self.minimum
        if name == "Maximum":
            return self.maximum
        q = percentile_of(name)
        if q is None:
            raise ValueError(f"unsupported statistic {name!r}")
        if self.distribution is None:
            return None
        return percentile(self.distribution, q)


def percentile_of(statistic: str) -> float | None:
    """``p99.9`` -> 99.9; None if ``statistic`` is not a percentile."""
    match = rules.PERCENTILE_RE.match(statistic)
    if match is None:
        return None
    q = float(match.group(1))
    return q if 0.0 <= q <= 100.0 else None


def percentile(distribution: Sequence[tuple[float, float]], q: float) -> float:
    """The q-th percentile (0..100) of values with counts, numpy's "linear" method.

    With integer counts this equals ``numpy.percentile(numpy.repeat(values, counts), q)``:
    rank h = (N - 1) * q / 100 over the sorted expanded sample, interpolated between the
    values at floor(h) and floor(h) + 1. Non-integer counts act as weights on the same scale.
    """
    pairs = [(v, c) for v, c in distribution if c > 0]
    value = percentile_from_distribution([v for v, _ in pairs], [c for _, c in pairs], q)
    if value is None:
        raise ValueError("percentile of an empty distribution")
    return value


def aggregate(data: Iterable[Datum]) -> PeriodStats | None:
    """The statistics of everything in ``data`` (one period); None if it holds no samples."""
    count = total = 0.0
    low, high = math.inf, -math.inf
    weights: dict[float, float] = {}
    percentiles_ok = True
    for datum in data:
        if datum.statistics is not None:
            s = datum.statistics
            count += s.sample_count
            total += s.sum
            low, high = min(low, s.minimum), max(high, s.maximum)
            # Documented: percentiles of a statistic set only when SampleCount is 1 or Min == Max.
            if s.sample_count == 1 or s.minimum == s.maximum:
                weights[s.minimum] = weights.get(s.minimum, 0.0) + s.sample_count
            else:
                percentiles_ok = False
            continue
        for value, c in zip(datum.values, datum.counts):
            if c <= 0:
                continue
            count += c
            total += value * c
            low, high = min(low, value), max(high, value)
            weights[value] = weights.get(value, 0.0) + c
    if count <= 0:
        return None
    # Documented: "Percentile statistics aren't available for metrics when any of the values are negative."
    if low < 0:
        percentiles_ok = False
    distribution = tuple(sorted(weights.items())) if percentiles_ok else None
    return PeriodStats(count, total, low, high, distribution)


def aggregate_periods(data: Iterable[Datum], period: int) -> dict[int, PeriodStats]:
    """Epoch-aligned buckets ``[k * period, (k + 1) * period)`` -> their statistics."""
    buckets: dict[int, list[Datum]] = {}
    for datum in data:
        buckets.setdefault(datum.stored_at // period * period, []).append(datum)
    out: dict[int, PeriodStats] = {}
    for start in sorted(buckets):
        stats = aggregate(buckets[start])
        if stats is not None:
            out[start] = stats
    return out


class Index:
    """One metric's data sorted by stored timestamp, for quick window look-ups."""

    def __init__(self, data: Iterable[Datum]) -> None:
        ordered = sorted(data, key=lambda d: d.stored_at)
        self.data = ordered
        self.stamps = [d.stored_at for d in ordered]

    def window(self, start: int, end: int, seen_at: float | None = None) -> PeriodStats | None:
        """The statistics of ``[start, end)``, from the datums that arrived by ``seen_at`` (None: all)."""
        lo = bisect.bisect_left(self.stamps, start)
        hi = bisect.bisect_left(self.stamps, end)
        data = self.data[lo:hi]
        if seen_at is not None:
            data = [d for d in data if d.arrival is None or d.arrival <= seen_at]
        return aggregate(data)
