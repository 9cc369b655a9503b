"""One partition's pipeline: parse -> join -> counts, with snapshot and restore.

Both topics are co-partitioned by inference id, so partition p of captures and of labels
are processed by the same PartitionPipeline and its state moves between instances as a unit.
"""
from __future__ import annotations

from collections import Counter
from collections.abc import Callable, Hashable, Iterable, Mapping, Sequence
from dataclasses import dataclass, field
from typing import Any, Protocol

from pipelines import metrics as m
from pipelines.aggregate import Aggregator
from pipelines.datum import Datum
from pipelines.comparison.config import Comparison
from pipelines.comparison.counter import ComparisonCounter
from pipelines.comparison.tally import ComparisonTally
from pipelines.join import CODEC, JoinPolicy, JoinState
from pipelines.parse import ParseLimits, parse_capture, parse_label
from pipelines.pending import PendingStore
from pipelines.records import BadRecord, Capture, Label, Source
from pipelines.datum import Dimensions
from pipelines.series import NameCap, SegmentCap, Series, dimension_sets
from pipelines.window import SlidingWindow

SNAPSHOT_VERSION = 1
#: the reason code of a record that parsed but tripped a later stage (a bug, never a crash)
PROCESSING_FAILED = "processing_failed"


#: one record of a poll batch: (value, offset, headers, record timestamp in ms)
Row = tuple[bytes, int, Mapping[str, bytes] | None, int | None]

#: (is_error, prediction) -> the counts a new capture adds, in this order
_CAPTURE_COUNTS: dict[tuple[bool, int | None], tuple[tuple[str, int], ...]] = {
    (is_error, prediction): (
        ((m.INVOCATIONS, 1),) + (((m.ERRORS, 1),) if is_error else ())
        + (() if prediction is None else ((m.PREDICTIONS, 1), (m.POSITIVE_PREDICTIONS, prediction))))
    for is_error in (False, True) for prediction in (None, 0, 1)
}


class WindowSink(Protocol):
    """The sliding-window gauges' side of the fan-out (pipelines.window.SlidingWindow)."""

    def add_many(self, keys: Iterable[Hashable], event_ms: int, counts: Sequence[tuple[str, int]],
                 latency_ms: float | None = None) -> None:
        """Each (name, value) of `counts` and, unless None, `latency_ms`, under each of `keys`."""
        ...


@dataclass(frozen=True)
class PipelineConfig:
    captures_topic: str = "captures"
    labels_topic: str = "labels"
    tick_ms: int = 60_000
    join: JoinPolicy = JoinPolicy()
    limits: ParseLimits = ParseLimits()
    score_threshold: float = 0.5
    score_thresholds: Mapping[str, float] = field(default_factory=dict)
    #: the window (gauges) keeps segment copies too; the counts always have them
    segment_gauges: bool = False
    #: comparisons whose evidence this pipeline counts (pipelines.comparison)
    comparisons: tuple[Comparison, ...] = ()

    def threshold(self, endpoint: str) -> float:
        return self.score_thresholds.get(endpoint, self.score_threshold)


class PartitionPipeline:
    """Consumes raw records of one partition of both topics; never raises on bad input."""

    def __init__(
        self,
        partition: int,
        config: PipelineConfig,
        segments: SegmentCap | None = None,
        window: WindowSink | None = None,
        join: JoinState | None = None,
        aggregator: Aggregator | None = None,
        names: NameCap | None = None,
    ) -> None:
        self.partition = partition
        self.config = config
        self.segments = segments or SegmentCap()
        self.window = window
        self.join = join or JoinState(config.join)
        self.aggregator = aggregator or Aggregator(config.tick_ms)
        self.names = names or NameCap()
        self.names.admit_restored(self.join.registry.snapshot())
        self.comparisons: ComparisonCounter | None = None
        if config.comparisons:
            self.comparisons = ComparisonCounter(config.comparisons, CODEC)
            self.join.observer = self.comparisons
        self.offsets: dict[str, int] = {}  # topic -> next offset to read
        self.bad_records: Counter[str] = Counter()
        self._dims: dict[Series, list[Dimensions]] = {}

    def _window_dimension_sets(self, series: Series) -> list[Dimensions]:
        dims = self._dims.get(series)
        if dims is None:
            dims = self._dims[series] = dimension_sets(series, segments=self.config.segment_gauges)
        return dims

    # Sink for the join: counts go to this partition's aggregator and to the shared window,
    # which is keyed by dimension set so base and segment gauges each see their own sample
    def count(self, series: Series, ts_ms: int, name: str, delta: int = 1) -> None:
        self.count_many(series, ts_ms, ((name, delta),))

    def count_many(self, series: Series, ts_ms: int, items: Sequence[tuple[str, int]],
                   latency_ms: float | None = None) -> None:
        """`count` of each (name, delta) in order and, unless None, one latency, in one call
        (pipelines.join.Sink)."""
        self.aggregator.count_many(series, ts_ms, items, latency_ms)
        if self.window is not None:
            self.window.add_many(self._window_dimension_sets(series), ts_ms, items, latency_ms)

    def submit(
        self, topic: str, raw: bytes, offset: int, now_ms: int,
        headers: Mapping[str, bytes] | None = None, record_ts_ms: int | None = None,
    ) -> BadRecord | None:
        """Process one record; returns the BadRecord to dead-letter, if it was bad."""
        parsed = self._parse(self._is_captures(topic), raw, now_ms, headers, record_ts_ms)
        self.offsets[topic] = offset + 1
        return self._apply(topic, raw, offset, now_ms, parsed)

    def submit_many(self, topic: str, rows: Sequence[Row], now_ms: int) -> list[tuple[int, BadRecord]]:
        """`submit` of each row of one topic in order, having parsed them all first so the join
        can read ahead the ids they look up (`JoinState.prefetch`): (index, BadRecord) of the bad."""
        captures = self._is_captures(topic)
        parsed = [self._parse(captures, raw, now_ms, headers, ts) for raw, _, headers, ts in rows]
        try:
            if captures:
                self.join.prefetch([c for c in parsed if isinstance(c, Capture)], ())
            else:
                self.join.prefetch((), [lab for lab in parsed if isinstance(lab, Label)])
        except Exception:  # noqa: BLE001 - a hint: each record's own reads report what is wrong
            pass
        bad: list[tuple[int, BadRecord]] = []
        for i, ((raw, offset, _, _), record) in enumerate(zip(rows, parsed)):
            self.offsets[topic] = offset + 1
            out = self._apply(topic, raw, offset, now_ms, record)
            if out is not None:
                bad.append((i, out))
        return bad

    def _is_captures(self, topic: str) -> bool:
        if topic == self.config.captures_topic:
            return True
        if topic != self.config.labels_topic:
            raise ValueError(f"topic {topic!r} is neither the captures nor the labels topic")
        return False

    def _parse(self, captures: bool, raw: bytes, now_ms: int, headers: Mapping[str, bytes] | None,
               record_ts_ms: int | None) -> Capture | Label | tuple[str, str]:
        """The record, or (reason, detail) of why it is bad."""
        config = self.config
        try:
            if captures:
                record: Capture | Label | BadRecord = parse_capture(
                    raw, now_ms=now_ms, headers=headers, record_ts_ms=record_ts_ms, limits=config.limits,
                    threshold=config.threshold)
            else:
                record = parse_label(raw, now_ms=now_ms, record_ts_ms=record_ts_ms, limits=config.limits)
        except Exception as ex:  # noqa: BLE001
            return PROCESSING_FAILED, f"{type(ex).__name__}: {ex}".splitlines()[0][:300]
        return (record.reason, record.detail) if isinstance(record, BadRecord) else record

    def _apply(self, topic: str, raw: bytes, offset: int, now_ms: int,
               record: Capture | Label | tuple[str, str]) -> BadRecord | None:
        # errors as data along the whole path: whatever a record trips (parse, join, counts)
        # makes it a dead letter, so no record can stop the partition and crash-loop on replay
        try:
            if isinstance(record, tuple):
                reason, detail = record
            elif isinstance(record, Capture):
                refused = self.names.refuse(record.endpoint, record.variant, record.model_version)
                if refused is None:
                    self.add_capture(record, now_ms)
                    return None
                reason, detail = refused
            else:
                refused = self.names.refuse_endpoint(record.endpoint)
                if refused is None:
                    self.join.add_label(record, now_ms, self)
                    return None
                reason, detail = refused
        except Exception as ex:  # noqa: BLE001
            reason, detail = PROCESSING_FAILED, f"{type(ex).__name__}: {ex}".splitlines()[0][:300]
        # a good record never needs its source, so it is made for dead letters only
        self.bad_records[reason] += 1
        return BadRecord(reason, detail, raw, Source(topic, self.partition, offset))

    def add_capture(self, cap: Capture, now_ms: int) -> None:
        attributes = cap.attributes
        series: Series = (cap.endpoint, cap.variant, cap.model_version, self.segments.map(attributes) if attributes else ())
        if not self.join.add_capture(cap, series, now_ms, self):
            return  # a duplicate: counted by the join, not counted again here
        self.count_many(series, cap.timestamp_ms, _CAPTURE_COUNTS[cap.is_error, cap.prediction], cap.latency_ms)

    def tick(self, now_ms: int) -> list[Datum]:
        """Expire what waited too long, then drain this partition's counts as datums."""
        self.join.expire(now_ms, self)
        return self.aggregator.drain(now_ms)

    def snapshot(self) -> dict[str, Any]:
        return {
            "version": SNAPSHOT_VERSION,
            "partition": self.partition,
            "offsets": dict(self.offsets),
            "join": self.join.snapshot(),
            "aggregator": self.aggregator.snapshot(),
            "segments": self.segments.snapshot(),
            "bad_records": dict(self.bad_records),
            # the partition's share of the gauges, so a restart does not blank them for a window
            "window": self.window.snapshot() if isinstance(self.window, SlidingWindow) else None,
            "comparisons": self.comparisons.snapshot() if self.comparisons is not None else {},
        }

    def comparison_tallies(self) -> dict[str, ComparisonTally]:
        """This partition's evidence per comparison (empty without comparisons)."""
        return self.comparisons.tallies() if self.comparisons is not None else {}

    @classmethod
    def restore(
        cls, data: dict[str, Any], config: PipelineConfig, segments: SegmentCap | None = None,
        window: WindowSink | None = None, names: NameCap | None = None, store: PendingStore | None = None,
    ) -> "PartitionPipeline":
        """Resume from a snapshot; `store` holds the pending joins when they are not inline (a
        disk store restored from the same checkpoint), else it receives the inline ones."""
        if data.get("version") != SNAPSHOT_VERSION:
            raise ValueError(f"partition snapshot version {data.get('version')!r} is not supported (expected {SNAPSHOT_VERSION})")
        segments = segments or SegmentCap()
        segments.restore(data["segments"])
        p = cls(
            data["partition"], config, segments, window,
            join=JoinState.restore(data["join"], config.join, store),
            aggregator=Aggregator.restore(config.tick_ms, data["aggregator"]), names=names,
        )
        if isinstance(window, SlidingWindow) and data.get("window") is not None:
            window.load(data["window"])
        saved = data.get("comparisons") or {}
        stale = p.comparisons.restore(saved) if p.comparisons is not None else {
            c["endpoint"]: {c["slot"]} for c in saved.values()}
        for endpoint, slots in stale.items():
            p.join.clear_slot_bits(endpoint, slots)
        p.offsets = dict(data["offsets"])
        p.bad_records = Counter(data["bad_records"])
        return p
