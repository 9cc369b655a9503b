"""Additive counts per (tick, series, metric) and latency distributions per (tick, series),
kept until the next publish drains them into CloudWatch datums."""
from __future__ import annotations

from typing import Any

from pipelines.datum import Datum, Dimensions
from pipelines.latency import quantise
from pipelines.series import Series, dimension_sets

CLOUDWATCH_MAX_AGE_MS = 14 * 86_400_000
# stay clear of the 2-week edge: a datum may wait in the publisher's buffer for a while
AGE_MARGIN_MS = 3_600_000
# metrics that only feed the sliding-window gauges, never published as counts
WINDOW_ONLY = frozenset({"Predictions", "PositivePredictions"})


class Aggregator:
    """One partition's unpublished counts. Pure: times come in as arguments."""

    def __init__(self, tick_ms: int) -> None:
        self.tick_ms = tick_ms
        self._counts: dict[tuple[int, Series, str], int] = {}
        self._latency: dict[tuple[int, Series], dict[float, int]] = {}

    def count(self, series: Series, ts_ms: int, name: str, delta: int = 1) -> None:
        key = (ts_ms - ts_ms % self.tick_ms, series, name)
        self._counts[key] = self._counts.get(key, 0) + delta

    def latency(self, series: Series, ts_ms: int, ms: float) -> None:
        key = (ts_ms - ts_ms % self.tick_ms, series)
        hist = self._latency.get(key)
        if hist is None:
            hist = self._latency[key] = {}
        q = quantise(ms)
        hist[q] = hist.get(q, 0) + 1

    def __len__(self) -> int:
        return len(self._counts) + len(self._latency)

    def drain(self, now_ms: int) -> list[Datum]:
        """All counts so far as datums (base dimensions plus segment copies), then forget them.

        Timestamps older than CloudWatch accepts are moved up to the oldest accepted tick, so
        the count is still published once rather than rejected.
        """
        oldest = now_ms - CLOUDWATCH_MAX_AGE_MS + AGE_MARGIN_MS
        oldest -= oldest % self.tick_ms
        oldest += self.tick_ms
        sums: dict[tuple[str, Dimensions, int], int] = {}
        for (tick, series, name), value in self._counts.items():
            if name in WINDOW_ONLY:
                continue
            ts = max(tick, oldest)
            for dims in dimension_sets(series):
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
        out = [Datum(name, dims, ts, "Count", float(v)) for (name, dims, ts), v in sums.items()]
        for (dims, ts), merged in hists.items():
            items = sorted(merged.items())
            out.append(
                Datum("Latency", dims, ts, "Milliseconds", values=tuple(v for v, _ in items), counts=tuple(float(c) for _, c in items))
            )
        return out

    def snapshot(self) -> dict[str, Any]:
        return {"counts": dict(self._counts), "latency": {k: dict(v) for k, v in self._latency.items()}}

    @classmethod
    def restore(cls, tick_ms: int, data: dict[str, Any]) -> "Aggregator":
        agg = cls(tick_ms)
        agg._counts = dict(data["counts"])
        agg._latency = {k: dict(v) for k, v in data["latency"].items()}
        return agg
