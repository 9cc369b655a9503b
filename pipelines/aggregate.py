"""Additive counts per (tick, series, metric) and latency distributions per (tick, series),
kept until the next publish drains them into CloudWatch datums."""
from __future__ import annotations

from collections.abc import Iterable
from typing import Any

from pipelines import cloudwatch_rules, metrics
from pipelines.datum import Datum, Dimensions
from pipelines.latency import MAX_DISTRIBUTION_VALUES, quantise
from pipelines.series import Series, dimension_sets

CLOUDWATCH_MAX_AGE_MS = cloudwatch_rules.MAX_DATUM_AGE_MS
# stay clear of the 2-week edge: a datum may wait in the publisher's buffer for a while
AGE_MARGIN_MS = 3_600_000


class Aggregator:
    """One partition's unpublished counts. Pure: times come in as arguments."""

    def __init__(self, tick_ms: int) -> None:
        self.tick_ms = tick_ms
        # (tick, series) -> metric -> count: one tuple hash per record, not one per metric
        self._counts: dict[tuple[int, Series], dict[str, int]] = {}
        self._latency: dict[tuple[int, Series], dict[float, int]] = {}
        self._coarse: set[tuple[int, Series]] = set()  # latency keys already on the grid

    def count(self, series: Series, ts_ms: int, name: str, delta: int = 1) -> None:
        self.count_many(series, ts_ms, ((name, delta),))

    def count_many(self, series: Series, ts_ms: int, items: Iterable[tuple[str, int]], latency_ms: float | None = None) -> None:
        """`count` for several metrics of one series and time, then `latency` unless None."""
        key = (ts_ms - ts_ms % self.tick_ms, series)
        counts = self._counts.get(key)
        if counts is None:
            counts = self._counts[key] = {}
        for name, delta in items:
            counts[name] = counts.get(name, 0) + delta
        if latency_ms is not None:
            self._add_latency(key, latency_ms)

    def latency(self, series: Series, ts_ms: int, ms: float) -> None:
        """Exact values while they fit one datum (150 distinct), then the 1 % grid."""
        self._add_latency((ts_ms - ts_ms % self.tick_ms, series), ms)

    def _add_latency(self, key: tuple[int, Series], ms: float) -> None:
        hist = self._latency.get(key)
        if hist is None:
            hist = self._latency[key] = {}
        if key in self._coarse:
            ms = quantise(ms)
        elif ms not in hist and len(hist) >= MAX_DISTRIBUTION_VALUES:
            hist = self._latency[key] = _quantised(hist)
            self._coarse.add(key)
            ms = quantise(ms)
        hist[ms] = hist.get(ms, 0) + 1

    def __len__(self) -> int:
        return sum(len(c) for c in self._counts.values()) + len(self._latency)

    def drain(self, now_ms: int) -> list[Datum]:
        """All counts so far as datums (base dimensions plus segment copies), then forget them.

        Timestamps older than CloudWatch accepts are moved up to the oldest accepted tick, so
        the count is still published once rather than rejected.
        """
        oldest = now_ms - CLOUDWATCH_MAX_AGE_MS + AGE_MARGIN_MS
        oldest -= oldest % self.tick_ms
        oldest += self.tick_ms
        sums: dict[tuple[str, Dimensions, int], int] = {}
        for (tick, series), counts in self._counts.items():
            ts = max(tick, oldest)
            for name, value in counts.items():
                if name in metrics.WINDOW_ONLY:
                    continue
                for dims in dimension_sets(series, segments=name not in metrics.NOT_PER_SEGMENT):
                    key = (name, dims, ts)
                    sums[key] = sums.get(key, 0) + value
        hists: dict[tuple[Dimensions, int], dict[float, int]] = {}
        for (tick, series), hist in self._latency.items():
            ts = max(tick, oldest)
            for dims in dimension_sets(series):
                merged = hists.setdefault((dims, ts), {})
                for v, c in hist.items():
                    merged[v] = merged.get(v, 0) + c
        self._counts = {}
        self._latency = {}
        self._coarse = set()
        out = [Datum(name, dims, ts, metrics.COUNT_UNIT, float(v)) for (name, dims, ts), v in sums.items()]
        for (dims, ts), merged in hists.items():
            if len(merged) > MAX_DISTRIBUTION_VALUES:
                merged = _quantised(merged)
            items = sorted(merged.items())
            out.append(
                Datum(metrics.LATENCY, dims, ts, metrics.LATENCY_UNIT, values=tuple(v for v, _ in items), counts=tuple(float(c) for _, c in items))
            )
        return out

    def snapshot(self) -> dict[str, Any]:
        counts = {(tick, series, name): v for (tick, series), c in self._counts.items() for name, v in c.items()}
        return {"counts": counts, "latency": {k: dict(v) for k, v in self._latency.items()}}

    @classmethod
    def restore(cls, tick_ms: int, data: dict[str, Any]) -> "Aggregator":
        agg = cls(tick_ms)
        for (tick, series, name), value in data["counts"].items():
            agg._counts.setdefault((tick, series), {})[name] = value
        agg._latency = {k: dict(v) for k, v in data["latency"].items()}
        return agg


def _quantised(hist: dict[float, int]) -> dict[float, int]:
    """The same observations on the 1 % grid (a no-op for values already on it)."""
    out: dict[float, int] = {}
    for value, count in hist.items():
        q = quantise(value)
        out[q] = out.get(q, 0) + count
    return out
