"""Sliding-window gauges over event time (Precision, Recall, LatencyP99, ...).

The window is a ring of fixed buckets per series, each holding additive
counters and a latency histogram, so adding an event is O(1) and a gauge is a
sum over ``window_ms / bucket_ms`` buckets. No clock of its own: ``now_ms`` is
always passed in.

Window edge, exactly: an event at ``event_ms`` lands in the bucket starting at
``floor(event_ms / bucket_ms) * bucket_ms``. At ``now_ms`` the window is the set
of buckets whose start ``s`` satisfies ``now_ms - window_ms < s <= now_ms``.
With ``window_ms`` a multiple of ``bucket_ms`` (required) that is exactly
``window_ms / bucket_ms`` buckets, the newest being the one containing
``now_ms``; events are in the window iff
``floor_b(now_ms) - window_ms + bucket_ms <= event_ms < floor_b(now_ms) + bucket_ms``.
So at a tick edge ``now_ms = k·bucket_ms`` the just-opened bucket ``[now_ms,
now_ms + bucket_ms)`` is in and the bucket starting at ``now_ms - window_ms``
has just left. Events stamped after ``now_ms`` but inside the current bucket
count; later buckets wait until ``now_ms`` reaches them.
"""
from __future__ import annotations

import math
from collections.abc import Hashable, Iterable, Sequence
from dataclasses import dataclass
from typing import Any

from pipelines import metrics
from pipelines.datum import Datum
from pipelines.latency import Histogram, quantise
from pipelines.stats import ratio, wilson_lower_bound

#: Key of the latency sample size in :meth:`SlidingWindow.samples`.
LATENCY_SAMPLES = "LatencySamples"

_SNAPSHOT_VERSION = 1


@dataclass(slots=True)
class _Bucket:
    counters: dict[str, float]
    latency: Histogram


class SlidingWindow:
    """Per-series event-time buckets and the gauges computed over them.

    Series keys are opaque hashables (e.g. a ``(endpoint, variant, version, segment)``
    tuple). Not thread-safe: owned by the consumer thread; hand :meth:`gauges`
    results (plain dicts) to other threads.
    """

    def __init__(self, window_ms: int, bucket_ms: int, min_samples: float) -> None:
        if bucket_ms <= 0 or window_ms <= 0:
            raise ValueError(f"window_ms and bucket_ms must be > 0, got window_ms={window_ms}, bucket_ms={bucket_ms}")
        if window_ms % bucket_ms:
            raise ValueError(
                f"window_ms must be a multiple of bucket_ms so the window is whole buckets, "
                f"got window_ms={window_ms}, bucket_ms={bucket_ms}"
            )
        if min_samples < 0:
            raise ValueError(f"min_samples must be >= 0, got {min_samples}")
        self.window_ms = window_ms
        self.bucket_ms = bucket_ms
        self.min_samples = min_samples
        self._series: dict[Hashable, dict[int, _Bucket]] = {}

    # -- writing -----------------------------------------------------------------

    def _bucket(self, series: Hashable, event_ms: int) -> _Bucket:
        return self._bucket_at(series, (event_ms // self.bucket_ms) * self.bucket_ms)

    def _bucket_at(self, series: Hashable, start: int) -> _Bucket:
        buckets = self._series.get(series)
        if buckets is None:
            buckets = self._series[series] = {}
        bucket = buckets.get(start)
        if bucket is None:
            bucket = buckets[start] = _Bucket({}, Histogram())
        return bucket

    def add(self, series: Hashable, event_ms: int, name: str, value: float = 1.0) -> None:
        """Add ``value`` to counter ``name`` of the bucket holding ``event_ms``.

        Negative values are allowed: a corrected label moves a count by
        subtracting it from the outcome it used to feed.
        """
        if not math.isfinite(value):
            raise ValueError(f"counter {name!r} can only be moved by a finite amount, got {value!r}")
        counters = self._bucket(series, event_ms).counters
        counters[name] = counters.get(name, 0.0) + value

    def add_latency(self, series: Hashable, event_ms: int, ms: float) -> None:
        """Record one latency observation (ms >= 0) at event time ``event_ms``."""
        self._bucket(series, event_ms).latency.add(ms)

    def add_many(self, keys: Iterable[Hashable], event_ms: int, counts: Sequence[tuple[str, int]],
                 latency_ms: float | None = None) -> None:
        """`add` of every (name, value) in `counts` (integers) and, unless None, `add_latency` of
        `latency_ms`, under each series of `keys`: one record's fan-out, the bucket found once per
        series and the latency quantised once."""
        q = None if latency_ms is None else quantise(latency_ms)
        start = (event_ms // self.bucket_ms) * self.bucket_ms
        for key in keys:
            bucket = self._bucket_at(key, start)
            counters = bucket.counters
            for name, value in counts:
                counters[name] = counters.get(name, 0.0) + value
            if q is not None:
                bucket.latency.add_representative(q)

    def evict(self, now_ms: int) -> int:
        """Drop buckets that can no longer be in any window at or after ``now_ms``.

        Those are the buckets with start ``<= now_ms - window_ms``; series left
        without buckets disappear. Returns the number of buckets dropped.
        """
        horizon = now_ms - self.window_ms
        dropped = 0
        for key in list(self._series):
            buckets = self._series[key]
            old = [start for start in buckets if start <= horizon]
            for start in old:
                del buckets[start]
            dropped += len(old)
            if not buckets:
                del self._series[key]
        return dropped

    # -- reading -----------------------------------------------------------------

    def _in_window(self, series: Hashable, now_ms: int) -> list[_Bucket]:
        buckets = self._series.get(series)
        if not buckets:
            return []
        lo = now_ms - self.window_ms
        return [b for start, b in buckets.items() if lo < start <= now_ms]

    def samples(self, series: Hashable, now_ms: int) -> dict[str, float]:
        """Raw sums over the window at ``now_ms``: every counter seen, plus ``LatencySamples``."""
        sums: dict[str, float] = {}
        latency_total = 0.0
        for bucket in self._in_window(series, now_ms):
            for name, value in bucket.counters.items():
                sums[name] = sums.get(name, 0.0) + value
            latency_total += bucket.latency.total
        sums[LATENCY_SAMPLES] = latency_total
        return sums

    def histogram(self, series: Hashable, now_ms: int) -> Histogram:
        """The window's latency observations merged into one (new) histogram."""
        merged = Histogram()
        for bucket in self._in_window(series, now_ms):
            merged.merge(bucket.latency)
        return merged

    def gauges(self, series: Hashable, now_ms: int) -> dict[str, float]:
        """Gauges over the window at ``now_ms``; a gauge whose sample is below ``min_samples`` is absent.

        Every rate of :data:`pipelines.metrics.RATES` becomes its gauge (value numerator /
        denominator, sample as defined there), then the Wilson 95 % lower bounds, then the
        latency percentiles of the merged histogram (sample: latency observations). A capped
        rate (label coverage: labels are bucketed by label time, captures by inference time,
        so the raw ratio can exceed 1 in a window) is capped. A gauge with a zero sample is
        absent even when ``min_samples == 0``.
        """
        s = self.samples(series, now_ms)
        sums = {cid: s.get(name, 0.0) for cid, name in metrics.WINDOW_COUNTER_IDS.items()}
        out: dict[str, float] = {}

        def put(name: str, value: float | None, n: float) -> None:
            if value is not None and n > 0 and n >= self.min_samples:
                out[name] = value

        for rate in metrics.RATES.values():
            value = ratio(metrics.numerator(rate, sums), metrics.denominator(rate, sums))
            if value is not None and rate.cap is not None:
                value = min(rate.cap, value)
            put(rate.gauge, value, metrics.sample(rate, sums))
        for rate in metrics.RATES.values():
            if rate.lower_bound:
                n = metrics.sample(rate, sums)
                put(rate.lower_bound, _wilson(metrics.numerator(rate, sums), n), n)
        n_latency = s[LATENCY_SAMPLES]
        if n_latency > 0 and n_latency >= self.min_samples:
            hist = self.histogram(series, now_ms)
            for name, q in metrics.LATENCY_GAUGES.items():
                put(name, hist.percentile(q), n_latency)
        return out

    def series(self) -> list[Hashable]:
        """Series keys that hold at least one bucket, in first-seen order."""
        return list(self._series)

    @classmethod
    def merged(cls, windows: Iterable[SlidingWindow], window_ms: int, bucket_ms: int, min_samples: float) -> SlidingWindow:
        """A new window holding the sums of `windows` (say, one per partition): what one window
        fed by all of them would hold."""
        out = cls(window_ms, bucket_ms, min_samples)
        for window in windows:
            for key, buckets in window._series.items():
                into = out._series.setdefault(key, {})
                for start, bucket in buckets.items():
                    target = into.get(start)
                    if target is None:
                        target = into[start] = _Bucket({}, Histogram())
                    for name, value in bucket.counters.items():
                        target.counters[name] = target.counters.get(name, 0.0) + value
                    target.latency.merge(bucket.latency)
        return out

    # -- state -------------------------------------------------------------------

    def snapshot(self) -> dict[str, Any]:
        """Plain, picklable data (dicts, lists, tuples, numbers, the series keys) for :meth:`restore`."""
        return {
            "version": _SNAPSHOT_VERSION,
            "window_ms": self.window_ms,
            "bucket_ms": self.bucket_ms,
            "min_samples": self.min_samples,
            "series": [
                (key, [(start, dict(b.counters), b.latency.snapshot()) for start, b in sorted(buckets.items())])
                for key, buckets in self._series.items()
            ],
        }

    def load(self, data: dict[str, Any]) -> bool:
        """Add the buckets of a :meth:`snapshot` to this window; False (nothing loaded) when it
        was taken with another bucket size, so its buckets would not line up."""
        if int(data["bucket_ms"]) != self.bucket_ms:
            return False
        other = SlidingWindow.restore(data)
        for key, buckets in other._series.items():
            self._series.setdefault(key, {}).update(buckets)
        return True

    @classmethod
    def restore(cls, data: dict[str, Any]) -> SlidingWindow:
        """Rebuild a window from :meth:`snapshot` output."""
        if data.get("version") != _SNAPSHOT_VERSION:
            raise ValueError(f"unknown SlidingWindow snapshot version {data.get('version')!r}, expected {_SNAPSHOT_VERSION}")
        window = cls(int(data["window_ms"]), int(data["bucket_ms"]), data["min_samples"])
        series_data: Iterable[tuple[Hashable, Iterable[tuple[int, dict[str, float], Any]]]] = data["series"]
        for key, buckets in series_data:
            restored = window._series.setdefault(_hashable(key), {})
            for start, counters, hist in buckets:
                restored[int(start)] = _Bucket({str(k): float(v) for k, v in counters.items()}, Histogram.restore(hist))
        return window


def _hashable(key: object) -> Hashable:
    # A snapshot that went through JSON turns tuple keys into lists.
    if isinstance(key, list):
        return tuple(_hashable(k) for k in key)
    if not isinstance(key, Hashable):
        raise ValueError(f"SlidingWindow snapshot holds an unhashable series key {key!r}")
    return key


def _wilson(successes: float, n: float) -> float | None:
    # Counters can be moved by corrections; a transiently inconsistent window
    # (successes outside [0, n]) yields no bound rather than an exception.
    if not (0 <= successes <= n):
        return None
    return wilson_lower_bound(successes, n)


def gauge_datums(window: SlidingWindow, now_ms: int, tick_ms: int) -> list[Datum]:
    """Every published gauge of every series at ``now_ms``, stamped at the tick; the window is
    keyed by CloudWatch dimension sets, so each key is a datum's dimensions."""
    ts = now_ms - now_ms % tick_ms
    out: list[Datum] = []
    for dims in window.series():
        for name, value in window.gauges(dims, now_ms).items():
            unit = metrics.LATENCY_UNIT if name in metrics.LATENCY_GAUGES else metrics.GAUGE_UNIT
            out.append(Datum(name, dims, ts, unit, value))  # type: ignore[arg-type]
    return out
