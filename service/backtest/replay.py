"""The replay: stored lines in event-time order through the daemon's pipeline on a simulated clock. Pure."""
from __future__ import annotations

from collections.abc import Iterable, Mapping, Sequence
from dataclasses import dataclass

from pipelines.clock import MockedClock
from pipelines.datum import Datum
from pipelines.parse import parse_capture, parse_label
from pipelines.processor import PartitionPipeline, PipelineConfig
from pipelines.records import BadRecord, Capture, Label
from pipelines.series import SegmentCap
from pipelines.window import SlidingWindow, gauge_datums
from service.backtest.comparisons import ComparisonResult, ComparisonTracker
from service.backtest.inputs import Line

MAX_BAD_EXAMPLES = 5
# Far enough ahead that the parser's "too far in the future" check can never fire while the
# event time is read for ordering; the real check runs again on the simulated clock.
_FAR_FUTURE_MS = 1 << 62
_RANK: dict[str, int] = {"capture": 0, "label": 1}  # at equal event time a capture goes first


@dataclass(frozen=True, slots=True)
class Timed:
    """A line and its event time (None when it has none: a bad line); ``seq`` is input order."""

    event_ms: int | None
    seq: int
    line: Line

    def sort_key(self) -> tuple[int, int, int, int]:
        if self.event_ms is None:
            return (0, 0, 0, self.seq)
        return (1, self.event_ms, _RANK[self.line.kind], self.seq)


def event_time(line: Line, config: PipelineConfig) -> int | None:
    """The line's event time as the pipeline's own parser reads it (capture: inference time;
    label: label time), or None when the parser refuses the line."""
    headers = dict(line.headers)
    record: Capture | Label | BadRecord
    if line.kind == "capture":
        record = parse_capture(
            line.raw, now_ms=_FAR_FUTURE_MS, headers=headers, record_ts_ms=line.record_ts_ms,
            limits=config.limits, threshold=config.threshold,
        )
    else:
        record = parse_label(line.raw, now_ms=_FAR_FUTURE_MS, record_ts_ms=line.record_ts_ms, limits=config.limits)
    return None if isinstance(record, BadRecord) else record.timestamp_ms


def order_stream(lines: Iterable[Line], config: PipelineConfig) -> list[Timed]:
    """Captures and labels as one stream in event-time order (see the module doc for ties)."""
    timed = [Timed(event_time(line, config), seq, line) for seq, line in enumerate(lines)]
    timed.sort(key=Timed.sort_key)
    return timed


@dataclass(frozen=True)
class Replay:
    """What the replay produced: every datum the daemon would have published, each comparison's
    state changes, and counters."""

    datums: tuple[Datum, ...]
    drained_ms: tuple[int, ...]  # when the tick that drained each of ``datums`` ran (simulated clock)
    captures: int
    labels: int
    bad: Mapping[str, int]  # reason -> lines
    bad_examples: tuple[str, ...]  # "uri:line: reason: detail", the first few
    start_ms: int | None  # first event time (None: no line had one)
    end_ms: int | None  # last event time
    ticks: int
    join: Mapping[str, int]  # JoinStats of the pipeline
    pending_captures: int  # held by the join at the end (labelled ones stay until label_ttl, for corrections)
    pending_labels: int  # labels still waiting for their capture
    comparisons: tuple[ComparisonResult, ...] = ()  # one per comparison of the config, in its order

    @property
    def bad_total(self) -> int:
        return sum(self.bad.values())


def replay(
    stream: Sequence[Timed], config: PipelineConfig, segments: SegmentCap | None = None,
    window: SlidingWindow | None = None,
) -> Replay:
    """Feed ``stream`` (ordered, see :func:`order_stream`) through one PartitionPipeline on a simulated clock.

    The clock is set to each record's event time before it is submitted; the pipeline ticks at
    every multiple of ``config.tick_ms`` the clock reaches, and once more at the next multiple
    after the last record, which drains everything. ``window``, when given, also yields the
    daemon's gauges at every tick. The config's comparisons are decided after every tick from
    the pipeline's tallies (:class:`~service.backtest.comparisons.ComparisonTracker`); with no
    line that has an event time there is no tick to judge at and they have no changes. Raises
    ValueError when ``stream`` is not in event-time order.
    """
    tick_ms = config.tick_ms
    timed = [t.event_ms for t in stream if t.event_ms is not None]
    start = min(timed) if timed else None
    end = max(timed) if timed else None
    clock = MockedClock(start or 0)
    pipeline = PartitionPipeline(0, config, segments, window)
    tracker = ComparisonTracker(config.comparisons)
    datums: list[Datum] = []
    drained: list[int] = []
    ticks = 0

    def tick() -> None:
        nonlocal ticks
        now = clock.now_ms()
        datums.extend(pipeline.tick(now))
        if window is not None:
            window.evict(now)
            datums.extend(gauge_datums(window, now, tick_ms))
        drained.extend([now] * (len(datums) - len(drained)))
        if start is not None:
            tracker.observe(now, pipeline.comparison_tallies())
        ticks += 1

    next_tick = ((start or 0) // tick_ms + 1) * tick_ms
    offsets = {"capture": 0, "label": 0}
    topics = {"capture": config.captures_topic, "label": config.labels_topic}
    examples: list[str] = []
    for item in stream:
        if item.event_ms is not None:
            if item.event_ms < clock.now_ms():  # MockedClock.set would silently stay put
                raise ValueError(f"replay: the stream is not in event-time order at {item.line.uri}:{item.line.number}")
            while next_tick <= item.event_ms:
                clock.set(next_tick)
                tick()
                next_tick += tick_ms
            clock.set(item.event_ms)
        line = item.line
        bad = pipeline.submit(
            topics[line.kind], line.raw, offsets[line.kind], clock.now_ms(), dict(line.headers), line.record_ts_ms,
        )
        offsets[line.kind] += 1
        if bad is not None and len(examples) < MAX_BAD_EXAMPLES:
            examples.append(f"{line.uri}:{line.number}: {bad.reason}: {bad.detail}")
    clock.set(next_tick)
    tick()
    return Replay(
        datums=tuple(datums), drained_ms=tuple(drained), captures=offsets["capture"], labels=offsets["label"],
        bad=dict(pipeline.bad_records), bad_examples=tuple(examples), start_ms=start, end_ms=end, ticks=ticks,
        join=pipeline.join.stats.as_dict(), pending_captures=pipeline.join.pending_captures,
        pending_labels=pipeline.join.pending_labels, comparisons=tracker.results(),
    )
