"""`rollguard backtest`: replay stored captures and labels through the daemon's pipeline on a
simulated clock, then evaluate an alarm spec with CloudWatch's rules.

    rollguard backtest --captures PATH --labels PATH --spec F [--from T --to T]
        [--bad-from T [--bad-to T]] [--json] [--plot DIR] [--namespace N]
        [--model-version VARIANT=VERSION]... [--shadow-variant VARIANT]... [--fail-on-false-alarm]

Inputs. PATH is a JSON-lines file, a directory of them (searched recursively for ``*.jsonl``,
``*.json`` and ``*.ndjson``; other files are ignored) or an ``s3://bucket/prefix/`` (boto3 with
ROLLGUARD_AWS_ENDPOINT_URL). Lines may be in rollguard's own capture/label form or in SageMaker's:

- Data Capture lines take endpoint and variant from the key layout
  ``{endpoint}/{variant}/yyyy/mm/dd/hh/file.jsonl`` (:func:`service.s3_import.parse_key`), passed to
  the parser as the Kafka headers ``endpoint``/``variant`` exactly as `import-s3` does. The layout
  cannot tell model versions or shadow variants: ``--model-version`` / ``--shadow-variant`` add
  those headers, as for `import-s3`.
- Model Monitor ground-truth lines carry no time. Their label time is taken from the file's path
  ``.../yyyy/mm/dd/hh/file.jsonl`` *and* its line order: the i-th of the n non-blank lines of a
  file is stamped ``hour + i * 3600 s / n``. The hour alone would put a whole hour of outcomes into
  one tick (a burst no per-minute alarm would ever see in production), while spreading lines over
  the hour keeps the file's order and the hour's volume per period. It is passed as the Kafka
  record timestamp, which is where the parser looks for it; a ground-truth file outside the
  layout has no time and its lines are counted as bad (``missing_field``). Lines of several files
  of one hour interleave. Data Capture lines without ``inferenceTime`` get the same stamp.

Replay. Captures (by inference time) and labels (by label time) are merged into one stream in
event-time order; ties put captures first, then input order (file key, line number). Lines
without a usable event time go first: they are bad, and counted, whatever their position. The
stream goes through ONE :class:`pipelines.processor.PartitionPipeline` built from the settings
like the daemon's, on a :class:`pipelines.clock.MockedClock` set to each record's event time; the
pipeline ticks at every multiple of ROLLGUARD_TICK_SECONDS the clock passes and once more at the
next multiple after the last record, so label TTL/wait expiry follows simulated time. A
``future_timestamp`` cannot happen here: the clock is each record's own time. The whole input is
held in memory to be sorted. When the spec has gauge alarms the daemon's sliding-window gauges
are computed at every tick too.

Segments. The segment attributes of the spec's alarms are added to ROLLGUARD_SEGMENT_ATTRIBUTES
for the replay (with a note on stderr: the daemon needs them configured to publish them).

Evaluation. Each alarm's PutMetricAlarm request (:func:`alarms.spec.to_put_metric_alarm`) reads,
for each MetricStat, exactly the datums with that namespace, metric name and dimension set (no
superset: CloudWatch never aggregates across dimensions for an alarm). It is run through
:func:`alarms.evaluator.timeline` from INSUFFICIENT_DATA over [--from, --to], by default from the
first record's event time to the last one's plus Period x EvaluationPeriods. Every datum is taken
as visible when its period is evaluated: outcome counts are stamped at label time, so they are
published when they become known; the up-to-one-tick publishing delay is ignored.

Definitions (per alarm):

- *evaluated period*: at each evaluation instant e (CloudWatch's cadence: every minute, every
  10 s for high resolution, hourly for alarms over more than a day) the most recent window
  [e - Period, e) and the alarm's value there; it is labelled with its start, as CloudWatch does.
- *bad interval*: [--bad-from, --bad-to], both ends included; --bad-to defaults to "open".
- *first bad datapoint*: the earliest evaluated period whose value breaches the threshold and
  whose start lies in the bad interval; with no bad interval, the earliest breaching period.
- *detected at*: the first instant at or after the first bad datapoint's start at which the alarm
  is in ALARM (its start when it is already in ALARM then); *detection delay* is that minus the
  first bad datapoint's start, so it is at least one Period unless the alarm was already firing.
- *false alarm*: an ALARM entry (a transition into ALARM) whose time lies outside the bad
  interval; with no bad interval every ALARM entry is a false alarm (the history is taken as good).
- *time in ALARM*: seconds in ALARM within the evaluated range.

Output: a table for people on stdout, after the replay summary (lines read, bad lines per reason
with the first few named by file and line, join counters). With --json, stdout is a JSON list
with one object per alarm (:meth:`AlarmResult.to_json`) and the replay summary goes to stderr.
--plot DIR writes ``DIR/{alarm name}.png`` per alarm (matplotlib, Agg, no pyplot state).

Exit codes: 0 the backtest ran (whatever the alarms did); 1 with --fail-on-false-alarm when any
alarm fired outside the bad interval; 2 bad arguments, settings, spec or unreadable inputs (one
line on stderr). Bad lines are never fatal: they are counted per reason and reported.
"""
from __future__ import annotations

import argparse
import bisect
import json
import math
import re
import sys
from collections.abc import Callable, Iterable, Iterator, Mapping, Sequence
from dataclasses import dataclass
from datetime import datetime, timezone
from pathlib import Path
from typing import Any, Literal, NoReturn, Protocol, TextIO

from alarms import spec as alarm_spec
from alarms.evaluator import Alarm as EvaluatorAlarm
from alarms.evaluator import AlarmConfigError, State, Transition
from alarms.evaluator import Datum as CloudWatchDatum
from alarms.evaluator import datum_from_cloudwatch, default_evaluation_range, evaluate, format_time, parse_time, timeline
from pipelines.clock import MockedClock
from pipelines.datum import Datum
from pipelines.latency import MAX_DISTRIBUTION_VALUES, split_distribution
from pipelines.parse import parse_capture, parse_label
from pipelines.processor import PartitionPipeline, PipelineConfig
from pipelines.records import BadRecord, Capture, Label
from pipelines.series import SegmentCap
from pipelines.window import SlidingWindow, gauge_datums
from service.daemon import pipeline_config
from service.s3_import import (
    CaptureKey,
    ConfigError,
    ObjectStore,
    S3Prefix,
    SourceError,
    VariantTags,
    iter_lines,
    parse_key,
    parse_prefix,
)
from service.settings import Settings, SettingsError, load_settings

PROG = "rollguard backtest"
HOUR_MS = 3_600_000
INPUT_SUFFIXES = (".jsonl", ".json", ".ndjson")
MAX_BAD_EXAMPLES = 5
# Far enough ahead that the parser's "too far in the future" check can never fire while the
# event time is read for ordering; the real check runs again on the simulated clock.
_FAR_FUTURE_MS = 1 << 62

Kind = Literal["capture", "label"]
_RANK: dict[str, int] = {"capture": 0, "label": 1}  # at equal event time a capture goes first


class InputError(ValueError):
    """An input location that cannot be read: one line naming it."""


class UsageError(ValueError):
    """Bad command-line arguments: one line, exit code 2."""


class PlotError(RuntimeError):
    """A plot cannot be written (matplotlib missing); one line."""


# ---------------------------------------------------------------- pure: input lines


@dataclass(frozen=True, slots=True)
class InputFile:
    """One file to read: ``key`` is its path ('/'-separated) used for the layout, ``uri`` names it."""

    uri: str
    key: str
    read: Callable[[], Iterable[bytes]]


@dataclass(frozen=True, slots=True)
class Line:
    """One non-blank input line, with what its location says about it."""

    kind: Kind
    raw: bytes
    uri: str
    number: int  # 1-based line number in its file
    headers: tuple[tuple[str, bytes], ...] = ()
    record_ts_ms: int | None = None  # stands in for the Kafka record timestamp


def hour_of(key: str) -> int | None:
    """Epoch ms of the hour in ``.../yyyy/mm/dd/hh/file`` (UTC), or None when the key has no such hour."""
    parts = key.split("/")
    if len(parts) < 5:
        return None
    year, month, day, hour = parts[-5:-1]
    if not (re.fullmatch(r"[0-9]{4}", year) and all(re.fullmatch(r"[0-9]{2}", p) for p in (month, day, hour))):
        return None
    try:
        moment = datetime(int(year), int(month), int(day), int(hour), tzinfo=timezone.utc)
    except ValueError:
        return None
    return int(moment.timestamp()) * 1000


def file_lines(kind: Kind, key: str, uri: str, chunks: Iterable[bytes], tags: VariantTags = VariantTags()) -> list[Line]:
    """The non-blank lines of one file, with headers and record timestamps from its key (see module doc).

    Captures in the Data Capture layout get the ``endpoint``/``variant`` headers (plus what
    ``tags`` says about the variant); every line of a file under a ``yyyy/mm/dd/hh`` directory
    gets ``hour + i * 3600 s / n`` as its record timestamp.
    """
    numbered = [(n, line) for n, line in enumerate(iter_lines(chunks), start=1) if line.strip()]
    headers: tuple[tuple[str, bytes], ...] = ()
    if kind == "capture":
        parsed = parse_key(key)
        if isinstance(parsed, CaptureKey):
            headers = (("endpoint", parsed.endpoint.encode("utf-8")), ("variant", parsed.variant.encode("utf-8")))
            headers += tags.headers(parsed.variant)
    hour = hour_of(key)
    total = len(numbered)
    return [
        Line(kind, raw, uri, number, headers, None if hour is None else hour + i * HOUR_MS // total)
        for i, (number, raw) in enumerate(numbered)
    ]


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


# ---------------------------------------------------------------- pure: replay


@dataclass(frozen=True)
class Replay:
    """What the replay produced: every datum the daemon would have published, and counters."""

    datums: tuple[Datum, ...]
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
    daemon's gauges at every tick. Raises ValueError when ``stream`` is not in event-time order.
    """
    tick_ms = config.tick_ms
    timed = [t.event_ms for t in stream if t.event_ms is not None]
    start = min(timed) if timed else None
    end = max(timed) if timed else None
    clock = MockedClock(start or 0)
    pipeline = PartitionPipeline(0, config, segments, window)
    datums: list[Datum] = []
    ticks = 0

    def tick() -> None:
        nonlocal ticks
        now = clock.now_ms()
        datums.extend(pipeline.tick(now))
        if window is not None:
            window.evict(now)
            datums.extend(gauge_datums(window, now, tick_ms))
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
        datums=tuple(datums), captures=offsets["capture"], labels=offsets["label"],
        bad=dict(pipeline.bad_records), bad_examples=tuple(examples), start_ms=start, end_ms=end, ticks=ticks,
        join=pipeline.join.stats.as_dict(), pending_captures=pipeline.join.pending_captures,
        pending_labels=pipeline.join.pending_labels,
    )


# ---------------------------------------------------------------- pure: datums -> datapoints

MetricKey = tuple[str, frozenset[tuple[str, str]]]  # (metric name, dimension set)


class DatumIndex:
    """Published datums by (metric name, dimension set), handed out as the evaluator's MetricDatum values.

    Each datum goes through :func:`alarms.evaluator.datum_from_cloudwatch` in its PutMetricData
    form (distributions of more than 150 values split first, as the publisher does), only when
    an alarm reads its metric: a replay publishes far more series than a spec watches.
    """

    def __init__(self, datums: Iterable[Datum]) -> None:
        self._raw: dict[MetricKey, list[Datum]] = {}
        for datum in datums:
            self._raw.setdefault((datum.name, frozenset(datum.dimensions)), []).append(datum)
        self._converted: dict[MetricKey, tuple[CloudWatchDatum, ...]] = {}

    def get(self, key: MetricKey) -> tuple[CloudWatchDatum, ...]:
        """The datums of one metric, ordered by stored time; () when none was published."""
        found = self._converted.get(key)
        if found is None:
            out: list[CloudWatchDatum] = []
            for datum in self._raw.get(key, ()):
                for values, counts in _parts(datum):
                    entry = Datum(datum.name, datum.dimensions, datum.timestamp_ms, datum.unit, datum.value,
                                  values, counts).to_cloudwatch()
                    out.append(datum_from_cloudwatch(entry, f"{datum.name} datum"))
            found = self._converted[key] = tuple(sorted(out, key=lambda d: d.stored_at))
        return found


def _parts(datum: Datum) -> list[tuple[tuple[float, ...], tuple[float, ...]]]:
    if len(datum.values) <= MAX_DISTRIBUTION_VALUES:
        return [(datum.values, datum.counts)]
    return split_distribution(datum.values, datum.counts)


def datapoints_for(alarm: EvaluatorAlarm, index: DatumIndex, namespace: str) -> dict[str, tuple[CloudWatchDatum, ...]]:
    """The evaluator's datapoint input for ``alarm``: by MetricStat id (math) or metric name (single).

    A metric gets exactly the datums published under ``namespace`` with its metric name and its
    dimension set (order-insensitive, no superset or subset); anything else gets no data.
    """
    out: dict[str, tuple[CloudWatchDatum, ...]] = {}
    for metric in alarm.metrics:
        if metric.namespace != namespace or metric.metric_name is None:
            out[metric.key] = ()
        else:
            out[metric.key] = index.get((metric.metric_name, frozenset(metric.dimensions)))
    return out


# ---------------------------------------------------------------- pure: evaluation and report


@dataclass(frozen=True, slots=True)
class BadInterval:
    """When the history is known to be bad: [start, end], epoch seconds, end None for open-ended."""

    start: float
    end: float | None = None

    def contains(self, t: float) -> bool:
        return self.start <= t and (self.end is None or t <= self.end)


@dataclass(frozen=True, slots=True)
class PeriodValue:
    """An evaluated period: the window [start, end) that ends at one evaluation instant."""

    start: int
    end: int
    value: float | None
    breaching: bool | None


@dataclass(frozen=True)
class Outcome:
    """The alarm-level facts of a backtest (see the module doc for the definitions)."""

    alarm_entries: tuple[int, ...]
    alarm_intervals: tuple[tuple[int, int], ...]
    alarm_seconds: float
    false_alarms: int
    first_bad: PeriodValue | None
    detected_at: int | None
    final_state: State

    @property
    def detection_delay(self) -> int | None:
        if self.first_bad is None or self.detected_at is None:
            return None
        return self.detected_at - self.first_bad.start


def evaluated_periods(
    alarm: EvaluatorAlarm, data: Mapping[str, Sequence[CloudWatchDatum]], start: float, end: float,
) -> tuple[PeriodValue, ...]:
    """The most recent window of every evaluation in [start, end], with the alarm's value there.

    Uses :func:`alarms.evaluator.evaluate` on the data of the evaluation range only (``data`` must
    be ordered by stored time, as :class:`DatumIndex` hands it out), so a long history stays cheap.
    """
    size = default_evaluation_range(alarm)
    stamps = {key: [d.stored_at for d in items] for key, items in data.items()}
    cadence = alarm.cadence
    out: list[PeriodValue] = []
    t = math.ceil(start / cadence) * cadence
    while t <= end:
        lo = t - size * alarm.period
        sliced = {
            key: items[bisect.bisect_left(stamps[key], lo):bisect.bisect_left(stamps[key], t)]
            for key, items in data.items()
        }
        last = evaluate(alarm, sliced, t, evaluation_range=size).evaluated[-1]
        out.append(PeriodValue(last.start, last.end, last.value, last.breaching))
        t += cadence
    return tuple(out)


def summarize(
    transitions: Sequence[Transition], periods: Sequence[PeriodValue], start: float, end: float,
    bad: BadInterval | None, initial_state: State = State.INSUFFICIENT_DATA,
) -> Outcome:
    """ALARM entries, intervals and time, false alarms, first bad datapoint and detection (module doc)."""
    entries = tuple(t.timestamp for t in transitions if t.state is State.ALARM)
    intervals: list[tuple[int, int]] = []
    state, since = initial_state, int(start)
    for tr in transitions:
        if tr.state is State.ALARM and state is not State.ALARM:
            since = tr.timestamp
        elif state is State.ALARM and tr.state is not State.ALARM:
            intervals.append((since, tr.timestamp))
        state = tr.state
    if state is State.ALARM:
        intervals.append((since, max(since, int(end))))
    first_bad = next(
        (p for p in periods if p.breaching and (bad is None or bad.contains(p.start))), None,
    )
    detected_at = None
    if first_bad is not None:
        for enter, leave in intervals:
            if leave > first_bad.start:
                detected_at = max(enter, first_bad.start)
                break
    return Outcome(
        alarm_entries=entries,
        alarm_intervals=tuple(intervals),
        alarm_seconds=float(sum(leave - enter for enter, leave in intervals)),
        false_alarms=sum(1 for t in entries if bad is None or not bad.contains(t)),
        first_bad=first_bad,
        detected_at=detected_at,
        final_state=state,
    )


@dataclass(frozen=True)
class AlarmResult:
    """One alarm's backtest: what it is, what it saw, what it did."""

    alarm: alarm_spec.Alarm
    request: Mapping[str, Any]
    start: int
    end: int
    bad: BadInterval | None
    data_found: Mapping[str, int]  # MetricStat id or metric name -> datums matched
    periods: tuple[PeriodValue, ...]
    transitions: tuple[Transition, ...]
    outcome: Outcome

    def to_json(self) -> dict[str, Any]:
        a, o = self.alarm, self.outcome
        return {
            "alarm": a.name,
            "spec_alarm": a.short_name,
            "endpoint": a.endpoint,
            "variant": a.variant,
            "model_version": a.model_version,
            "segment": None if a.segment is None else {a.segment[0]: a.segment[1]},
            "kind": a.kind,
            "metric": a.metric,
            "threshold": a.threshold,
            "comparison": a.comparison,
            "period": a.period,
            "evaluation_periods": a.evaluation_periods,
            "datapoints_to_alarm": a.datapoints_to_alarm,
            "treat_missing_data": a.treat_missing_data,
            "evaluated_from": format_time(self.start),
            "evaluated_to": format_time(self.end),
            "bad_interval": None if self.bad is None else {
                "from": format_time(self.bad.start),
                "to": None if self.bad.end is None else format_time(self.bad.end),
            },
            "data_found": dict(self.data_found),
            "evaluated_periods": len(self.periods),
            "breaching_periods": sum(1 for p in self.periods if p.breaching),
            "fired": len(o.alarm_entries),
            "alarm_entries": [format_time(t) for t in o.alarm_entries],
            "first_alarm": format_time(o.alarm_entries[0]) if o.alarm_entries else None,
            "first_bad_datapoint": None if o.first_bad is None else format_time(o.first_bad.start),
            "first_bad_value": None if o.first_bad is None else o.first_bad.value,
            "detected_at": None if o.detected_at is None else format_time(o.detected_at),
            "detection_delay_seconds": o.detection_delay,
            "false_alarms": o.false_alarms,
            "alarm_seconds": o.alarm_seconds,
            "alarm_intervals": [[format_time(s), format_time(e)] for s, e in o.alarm_intervals],
            "final_state": o.final_state.value,
        }


def default_range(alarm: alarm_spec.Alarm, replayed: Replay) -> tuple[int, int] | None:
    """[first event, last event + Period x EvaluationPeriods] in epoch seconds; None with no events."""
    if replayed.start_ms is None or replayed.end_ms is None:
        return None
    return replayed.start_ms // 1000, -(-replayed.end_ms // 1000) + alarm.period * alarm.evaluation_periods


def backtest_alarm(
    alarm: alarm_spec.Alarm, namespace: str, index: DatumIndex,
    start: int, end: int, bad: BadInterval | None,
) -> AlarmResult:
    """Evaluate one spec alarm over [start, end] (epoch seconds) from INSUFFICIENT_DATA.

    Raises AlarmLimitError / AlarmConfigError when the spec alarm is not a valid CloudWatch alarm.
    """
    request = alarm_spec.to_put_metric_alarm(alarm, namespace)
    evaluator_alarm = EvaluatorAlarm.from_request(request)
    data = datapoints_for(evaluator_alarm, index, namespace)
    transitions = timeline(evaluator_alarm, data, start, end, initial_state=State.INSUFFICIENT_DATA)
    periods = evaluated_periods(evaluator_alarm, data, start, end)
    return AlarmResult(
        alarm=alarm, request=request, start=start, end=end, bad=bad,
        data_found={key: len(items) for key, items in data.items()},
        periods=periods, transitions=transitions,
        outcome=summarize(transitions, periods, start, end, bad),
    )


# ---------------------------------------------------------------- pure: the whole backtest


@dataclass(frozen=True)
class Backtest:
    replay: Replay
    results: tuple[AlarmResult, ...]


def added_segment_attributes(settings: Settings, alarms: Sequence[alarm_spec.Alarm]) -> tuple[str, ...]:
    """Segment attributes the alarms read that ROLLGUARD_SEGMENT_ATTRIBUTES does not list."""
    wanted = dict.fromkeys(a.segment[0] for a in alarms if a.segment is not None)
    return tuple(attr for attr in wanted if attr not in settings.segment_attributes)


def run_backtest(
    alarms: Sequence[alarm_spec.Alarm], lines: Iterable[Line], settings: Settings, *, namespace: str,
    start: float | None = None, end: float | None = None, bad: BadInterval | None = None,
) -> Backtest:
    """Replay ``lines`` as the daemon configured by ``settings`` would, then backtest every alarm.

    [start, end] (epoch seconds) defaults per alarm to :func:`default_range`. Raises ValueError
    (one line) when there is nothing to evaluate or the settings cannot make the gauges' window,
    and AlarmLimitError / AlarmConfigError for an alarm CloudWatch would refuse.
    """
    # the daemon's own builder, so a backtest parses, joins and ticks exactly as `rollguard run`
    config = pipeline_config(settings)
    attributes = settings.segment_attributes + added_segment_attributes(settings, alarms)
    segments = SegmentCap(attributes, settings.segment_cardinality_cap)
    window = None
    if any(a.kind == "gauge" for a in alarms):
        try:
            window = SlidingWindow(int(settings.window_seconds * 1000), config.tick_ms, settings.min_samples)
        except ValueError as ex:
            raise ValueError(f"ROLLGUARD_WINDOW_SECONDS / ROLLGUARD_TICK_SECONDS: {ex}") from None
    replayed = replay(order_stream(lines, config), config, segments, window)
    index = DatumIndex(replayed.datums)
    results: list[AlarmResult] = []
    for alarm in alarms:
        default = default_range(alarm, replayed)
        if default is None and (start is None or end is None):
            raise ValueError("no line has a usable event time, so there is nothing to evaluate; give --from and --to")
        lo = int(start) if start is not None else default[0]  # type: ignore[index]  # checked just above
        hi = int(math.ceil(end)) if end is not None else default[1]  # type: ignore[index]
        results.append(backtest_alarm(alarm, namespace, index, lo, hi, bad))
    return Backtest(replayed, tuple(results))


# ---------------------------------------------------------------- pure: rendering


def duration(seconds: float | None) -> str:
    """``1h05m``, ``12m``, ``45s``; ``-`` for None."""
    if seconds is None:
        return "-"
    s = int(round(seconds))
    hours, rest = divmod(s, 3600)
    minutes, secs = divmod(rest, 60)
    if hours:
        return f"{hours}h{minutes:02d}m"
    if minutes:
        return f"{minutes}m{secs:02d}s" if secs else f"{minutes}m"
    return f"{secs}s"


def render_replay(replayed: Replay, tick_seconds: float) -> str:
    """The replay summary for people."""
    lines = []
    if replayed.start_ms is None or replayed.end_ms is None:
        span = "no line had a usable event time"
    else:
        span = f"{format_time(replayed.start_ms / 1000)} .. {format_time(replayed.end_ms / 1000)}"
    lines.append(
        f"replayed {replayed.captures} capture lines and {replayed.labels} label lines, {span} "
        f"(simulated clock, {replayed.ticks} ticks of {tick_seconds:g} s)"
    )
    if replayed.bad:
        reasons = ", ".join(f"{reason} {n}" for reason, n in sorted(replayed.bad.items(), key=lambda kv: (-kv[1], kv[0])))
        lines.append(f"bad lines: {replayed.bad_total} ({reasons})")
        lines += [f"  {example}" for example in replayed.bad_examples]
    else:
        lines.append("bad lines: 0")
    j = replayed.join
    lines.append(
        f"join: {j.get('captures', 0)} captures, {j.get('labels', 0)} labels, "
        f"{j.get('duplicate_captures', 0)} duplicate captures, {j.get('corrections', 0)} corrections, "
        f"{j.get('expired', 0)} expired, {j.get('orphan_labels', 0)} orphan labels; the join still holds "
        f"{replayed.pending_captures} captures (kept for label_ttl) and {replayed.pending_labels} labels (label_wait)"
    )
    return "\n".join(lines)


def render_table(results: Sequence[AlarmResult]) -> str:
    """One row per alarm for people, plus a line per alarm that matched no data."""
    header = ("alarm", "fired", "first ALARM", "first bad datapoint", "delay", "false", "in ALARM")
    rows = [header]
    for r in results:
        o = r.outcome
        delay = duration(o.detection_delay)
        if o.first_bad is not None and o.detected_at is None:
            delay = "missed"
        rows.append((
            r.alarm.name,
            str(len(o.alarm_entries)),
            format_time(o.alarm_entries[0]) if o.alarm_entries else "-",
            format_time(o.first_bad.start) if o.first_bad else "-",
            delay,
            str(o.false_alarms),
            duration(o.alarm_seconds),
        ))
    widths = [max(len(row[i]) for row in rows) for i in range(len(header))]
    out = ["  ".join(cell.ljust(w) for cell, w in zip(row, widths)).rstrip() for row in rows]
    for r in results:
        if not any(r.data_found.values()):
            out.append(
                f"note: {r.alarm.name} matched no datum (dimensions {dict(r.alarm.dimensions)}); "
                "check the spec's endpoint, variant, model_version and segment against the inputs"
            )
    if results and results[0].bad is not None:
        bad = results[0].bad
        to = "open" if bad.end is None else format_time(bad.end)
        out.append(f"bad interval: {format_time(bad.start)} .. {to}; ALARM entries outside it are false alarms")
    elif results:
        out.append("no bad interval given: the history is taken as good, every ALARM entry is a false alarm")
    return "\n".join(out)


def plot_alarm(result: AlarmResult, path: Path) -> None:
    """Write a PNG: the alarm's value per evaluated period vs the threshold, ALARM shaded, bad interval marked."""
    try:
        from matplotlib.backends.backend_agg import FigureCanvasAgg
        from matplotlib.dates import AutoDateLocator, ConciseDateFormatter, date2num
        from matplotlib.figure import Figure
    except ImportError as ex:  # an optional dependency: pip install 'rollguard[plot]'
        raise PlotError(f"--plot needs matplotlib (pip install 'rollguard[plot]'): {ex}") from None

    def when(t: float) -> float:
        # matplotlib's date numbers, so the axis formats UTC times
        return float(date2num(datetime.fromtimestamp(t, tz=timezone.utc)))

    a, o = result.alarm, result.outcome
    # A figure without pyplot: no global state and no backend switch in the caller's process.
    fig = Figure(figsize=(11, 4.2), dpi=100)
    FigureCanvasAgg(fig)
    ax = fig.add_subplot(1, 1, 1)
    xs = [when(p.start) for p in result.periods]
    ys = [math.nan if p.value is None else p.value for p in result.periods]
    ax.plot(xs, ys, color="tab:blue", linewidth=1.2, marker=".", markersize=3, label=f"{a.metric} per period")
    breaching = [(x, y) for x, y, p in zip(xs, ys, result.periods) if p.breaching]
    if breaching:
        ax.scatter([x for x, _ in breaching], [y for _, y in breaching], color="tab:red", s=10, zorder=3,
                   label="breaching period")
    op = {v: k for k, v in alarm_spec.COMPARISONS.items()}.get(a.comparison, a.comparison)
    ax.axhline(a.threshold, color="tab:red", linestyle="--", linewidth=1, label=f"threshold ({op} {a.threshold:g})")
    for i, (enter, leave) in enumerate(o.alarm_intervals):
        ax.axvspan(when(enter), when(leave), color="tab:red", alpha=0.18, linewidth=0,
                   label="in ALARM" if i == 0 else None)
    if result.bad is not None:
        bad_end = result.bad.end if result.bad.end is not None else result.end
        ax.axvspan(when(result.bad.start), when(bad_end), facecolor="tab:orange", alpha=0.12, hatch="//",
                   edgecolor="tab:orange", linewidth=0, label="bad interval")
        for edge in (result.bad.start, result.bad.end):
            if edge is not None:
                ax.axvline(when(edge), color="tab:orange", linewidth=1.5)
    if o.first_bad is not None:
        ax.axvline(when(o.first_bad.start), color="tab:purple", linestyle=":", linewidth=1.2,
                   label="first bad datapoint")
    ax.set_xlim(when(result.start), when(result.end))
    locator = AutoDateLocator()
    ax.xaxis.set_major_locator(locator)
    ax.xaxis.set_major_formatter(ConciseDateFormatter(locator))
    ax.set_xlabel("period start (UTC)")
    # the value the alarm evaluates: with a sample guard, a thin period reads as the safe value
    ax.set_ylabel(a.metric if a.kind != "expression" else "value")
    ax.grid(True, alpha=0.3)
    ax.set_title(
        f"{a.name}\n{a.datapoints_to_alarm} of {a.evaluation_periods} periods of {a.period} s, "
        f"min {a.min_samples} samples, missing data {a.treat_missing_data}; "
        f"fired {len(o.alarm_entries)}x, {o.false_alarms} false, delay {duration(o.detection_delay)}",
        fontsize=10,
    )
    ax.legend(loc="best", fontsize=8, framealpha=0.8)
    fig.tight_layout()
    path.parent.mkdir(parents=True, exist_ok=True)
    fig.savefig(path, format="png")


def plot_name(alarm: alarm_spec.Alarm) -> str:
    """The PNG file name of an alarm: its CloudWatch name with unsafe characters replaced."""
    return re.sub(r"[^A-Za-z0-9._-]", "_", alarm.name) + ".png"


# ---------------------------------------------------------------- I/O edges


class InputSource(Protocol):
    def files(self, location: str) -> list[InputFile]:
        """The input files at ``location`` ordered by key; raises InputError (one line) if it cannot be read."""
        ...


def _wanted(key: str) -> bool:
    name = key.rsplit("/", 1)[-1]
    return not name.startswith(".") and name.lower().endswith(INPUT_SUFFIXES)


class LocalFiles:
    """InputSource over the local file system: a file, or a directory searched recursively."""

    def files(self, location: str) -> list[InputFile]:
        path = Path(location)
        if path.is_file():
            return [self._file(path)]
        if path.is_dir():
            found = sorted(p for p in path.rglob("*") if p.is_file() and _wanted(p.as_posix()))
            return [self._file(p) for p in found]
        raise InputError(f"{location}: no such file or directory")

    @staticmethod
    def _file(path: Path) -> InputFile:
        def read() -> Iterator[bytes]:
            try:
                with path.open("rb") as fh:
                    while chunk := fh.read(1 << 20):
                        yield chunk
            except OSError as ex:
                raise InputError(f"{path}: cannot read: {ex.strerror or ex}") from None

        return InputFile(str(path), path.as_posix(), read)


class S3Files:
    """InputSource over an ObjectStore (:class:`service.s3_import.S3Objects` in production)."""

    def __init__(self, objects: ObjectStore) -> None:
        self.objects = objects

    def files(self, location: str) -> list[InputFile]:
        try:
            parsed = parse_prefix(location)
        except ValueError as ex:
            raise InputError(str(ex).replace("--prefix ", "", 1)) from None
        # parse_prefix makes a directory of it; keep the text as given so one object can be named too
        raw = location[len("s3://") + len(parsed.bucket):].lstrip("/")
        listing = S3Prefix(parsed.bucket, raw)
        try:
            self.objects.check(listing)
            keys = sorted(
                info.key for info in self.objects.list(listing)
                if info.key == raw or ((not raw or raw.endswith("/") or info.key.startswith(raw + "/")) and _wanted(info.key))
            )
        except (ConfigError, SourceError) as ex:
            raise InputError(str(ex)) from None
        return [InputFile(listing.object_uri(key), key, self._reader(parsed.bucket, key)) for key in keys]

    def _reader(self, bucket: str, key: str) -> Callable[[], Iterable[bytes]]:
        def read() -> Iterator[bytes]:
            try:
                opened = self.objects.open(bucket, key)
                if opened is not None:  # deleted since the listing: nothing to read
                    yield from opened.chunks
            except SourceError as ex:
                raise InputError(str(ex)) from None

        return read


class Inputs:
    """Local paths and ``s3://`` prefixes; the S3 side is built on first use only."""

    def __init__(self, local: InputSource, s3: Callable[[], InputSource]) -> None:
        self.local, self._s3_factory = local, s3
        self._s3: InputSource | None = None

    def files(self, location: str) -> list[InputFile]:
        if location.startswith("s3://"):
            if self._s3 is None:
                self._s3 = self._s3_factory()
            return self._s3.files(location)
        return self.local.files(location)


def default_inputs(settings: Settings) -> InputSource:
    """Production inputs: the local file system, and S3 through boto3 (ROLLGUARD_AWS_ENDPOINT_URL)."""

    def s3() -> InputSource:
        from service import aws
        from service.s3_import import S3Objects

        return S3Files(S3Objects(aws.client("s3", settings)))

    return Inputs(LocalFiles(), s3)


def read_lines(source: InputSource, location: str, kind: Kind, tags: VariantTags = VariantTags()) -> list[Line]:
    """Every non-blank line at ``location``; raises InputError when there is no input file there."""
    files = source.files(location)
    if not files:
        raise InputError(f"{location}: no input files ({', '.join('*' + s for s in INPUT_SUFFIXES)})")
    lines: list[Line] = []
    for f in files:
        lines += file_lines(kind, f.key, f.uri, f.read(), tags)
    return lines


# ---------------------------------------------------------------- the command


class _Parser(argparse.ArgumentParser):
    def error(self, message: str) -> NoReturn:
        raise UsageError(message)


def _time(text: str) -> float:
    try:
        return parse_time(text)
    except ValueError as ex:
        raise argparse.ArgumentTypeError(str(ex)) from None


def _version(text: str) -> tuple[str, str]:
    variant, sep, version = text.partition("=")
    if not sep or not variant or not version:
        raise argparse.ArgumentTypeError(f"{text!r} is not VARIANT=MODEL_VERSION")
    return variant, version


def _parser() -> _Parser:
    p = _Parser(
        prog=PROG,
        description="Replay stored captures and labels through rollguard's pipeline on a simulated clock and "
                    "evaluate an alarm spec with CloudWatch's rules: when would each alarm have fired?",
    )
    p.add_argument("--captures", required=True, metavar="PATH",
                   help="JSON-lines file, directory, or s3://bucket/prefix/ of captures (rollguard or Data Capture)")
    p.add_argument("--labels", required=True, metavar="PATH",
                   help="JSON-lines file, directory, or s3://bucket/prefix/ of labels (rollguard or Model Monitor)")
    p.add_argument("--spec", required=True, type=Path, metavar="F", help="alarm spec file (.yaml, .yml, .toml)")
    p.add_argument("--from", dest="start", type=_time, metavar="T",
                   help="evaluate from T (ISO 8601 or epoch seconds; default: the first event)")
    p.add_argument("--to", dest="end", type=_time, metavar="T",
                   help="evaluate up to T (default: the last event plus each alarm's evaluation window)")
    p.add_argument("--bad-from", type=_time, metavar="T", help="the history is bad from T (e.g. a known regression)")
    p.add_argument("--bad-to", type=_time, metavar="T", help="... up to T (default: to the end)")
    p.add_argument("--json", action="store_true", help="print a JSON list, one object per alarm")
    p.add_argument("--plot", type=Path, metavar="DIR", help="write one PNG per alarm into DIR")
    p.add_argument("--namespace", help="CloudWatch namespace (default: ROLLGUARD_NAMESPACE)")
    p.add_argument("--model-version", action="append", default=[], type=_version, metavar="VARIANT=VERSION",
                   help="model version of a Data Capture variant (the key layout cannot tell); repeatable")
    p.add_argument("--shadow-variant", action="append", default=[], metavar="VARIANT",
                   help="mark Data Capture captures of this variant as shadow; repeatable")
    p.add_argument("--fail-on-false-alarm", action="store_true",
                   help="exit 1 when any alarm entered ALARM outside the bad interval")
    return p


def _parse_args(argv: Sequence[str]) -> argparse.Namespace:
    args = _parser().parse_args(list(argv))
    if args.bad_to is not None and args.bad_from is None:
        raise UsageError("--bad-to needs --bad-from")
    if args.bad_from is not None and args.bad_to is not None and args.bad_to < args.bad_from:
        raise UsageError("--bad-to must not be before --bad-from")
    if args.start is not None and args.end is not None and args.end < args.start:
        raise UsageError("--to must not be before --from")
    return args


def main(
    argv: Sequence[str] | None = None, *, settings: Settings | None = None, inputs: InputSource | None = None,
    plotter: Callable[[AlarmResult, Path], None] = plot_alarm, stdout: TextIO | None = None,
    stderr: TextIO | None = None,
) -> int:
    """Run the backtest; returns the exit code (module doc). ``inputs`` defaults to :func:`default_inputs`."""
    out = stdout or sys.stdout
    err = stderr or sys.stderr

    def fail(message: str) -> int:
        print(f"{PROG}: {message}", file=err)
        return 2

    try:
        args = _parse_args(sys.argv[1:] if argv is None else argv)
    except UsageError as ex:
        print(_parser().format_usage().rstrip(), file=err)
        return fail(str(ex))
    try:
        settings = settings or load_settings()
    except SettingsError as ex:
        return fail(str(ex))
    namespace = args.namespace or settings.namespace
    try:
        alarms = alarm_spec.expand(alarm_spec.load_spec(args.spec))
        for alarm in alarms:  # refuse the spec before reading any input
            EvaluatorAlarm.from_request(alarm_spec.to_put_metric_alarm(alarm, namespace))
    except (alarm_spec.SpecError, alarm_spec.AlarmLimitError, AlarmConfigError) as ex:
        return fail(str(ex).splitlines()[0] if str(ex) else type(ex).__name__)

    added = added_segment_attributes(settings, alarms)
    if added:
        print(f"{PROG}: note: segment attribute(s) {', '.join(added)} added for this replay; the daemon needs "
              f"them in ROLLGUARD_SEGMENT_ATTRIBUTES to publish what these alarms read", file=err)
    tags = VariantTags(frozenset(args.shadow_variant), dict(args.model_version))
    source = inputs or default_inputs(settings)
    try:
        lines = read_lines(source, args.captures, "capture", tags) + read_lines(source, args.labels, "label", tags)
    except InputError as ex:
        return fail(str(ex))
    bad = None if args.bad_from is None else BadInterval(args.bad_from, args.bad_to)
    try:
        done = run_backtest(alarms, lines, settings, namespace=namespace, start=args.start, end=args.end, bad=bad)
    except ValueError as ex:
        return fail(str(ex))
    print(render_replay(done.replay, settings.tick_seconds), file=err if args.json else out)
    results = done.results

    if args.json:
        json.dump([r.to_json() for r in results], out, indent=2)
        out.write("\n")
    else:
        print("", file=out)
        print(render_table(results), file=out)
    if args.plot is not None:
        try:
            for r in results:
                plotter(r, args.plot / plot_name(r.alarm))
        except (PlotError, OSError) as ex:
            return fail(f"--plot {args.plot}: {ex}")
        print(f"{PROG}: wrote {len(results)} plot(s) to {args.plot}", file=err)
    if args.fail_on_false_alarm and any(r.outcome.false_alarms for r in results):
        return 1
    return 0


if __name__ == "__main__":
    sys.exit(main())
