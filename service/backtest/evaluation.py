"""Evaluating spec alarms on the replayed datums with CloudWatch's rules: firings, false alarms, detection. Pure."""
from __future__ import annotations

import bisect
import dataclasses
import itertools
import math
from collections.abc import Iterable, Mapping, Sequence
from dataclasses import dataclass
from typing import Any

from alarms import publish_lag
from alarms import spec as alarm_spec
from alarms.evaluator import Alarm as EvaluatorAlarm
from alarms.evaluator import Datum as CloudWatchDatum
from alarms.evaluator import (State, Transition, datum_from_cloudwatch, default_evaluation_range, evaluate,
                              evaluation_range_for, format_time, timeline)
from pipelines import metrics
from pipelines.comparison.config import Comparison
from pipelines.datum import Datum
from pipelines.heartbeat import heartbeat_stamps
from pipelines.latency import MAX_DISTRIBUTION_VALUES, split_distribution
from pipelines.window import SlidingWindow
from service.backtest.comparisons import ComparisonResult
from service.backtest.inputs import Line
from service.backtest.replay import Replay, order_stream, replay
from service.daemon import pipeline_config, segment_cap
from service.settings import Settings


MetricKey = tuple[str, frozenset[tuple[str, str]]]  # (metric name, dimension set)


class DatumIndex:
    """Published datums by (metric name, dimension set), handed out as the evaluator's MetricDatum values.

    Each datum goes through :func:`alarms.evaluator.datum_from_cloudwatch` in its PutMetricData
    form (distributions of more than 150 values split first, as the publisher does), only when
    an alarm reads its metric: a replay publishes far more series than a spec watches. With
    ``drained_ms`` (when each datum was drained, aligned with ``datums``) a datum reaches
    CloudWatch ``lag_s`` after it was drained (`alarms.publish_lag`); without, at once.
    """

    def __init__(self, datums: Iterable[Datum], drained_ms: Iterable[int] | None = None, lag_s: float = 0.0) -> None:
        self._raw: dict[MetricKey, list[tuple[Datum, float | None]]] = {}
        drained: Iterable[int | None] = drained_ms if drained_ms is not None else itertools.repeat(None)
        for datum, at_ms in zip(datums, drained):
            arrival = None if at_ms is None else at_ms / 1000 + lag_s
            self._raw.setdefault((datum.name, frozenset(datum.dimensions)), []).append((datum, arrival))
        self._converted: dict[MetricKey, tuple[CloudWatchDatum, ...]] = {}

    def get(self, key: MetricKey) -> tuple[CloudWatchDatum, ...]:
        """The datums of one metric, ordered by stored time; () when none was published."""
        found = self._converted.get(key)
        if found is None:
            out: list[CloudWatchDatum] = []
            for datum, arrival in self._raw.get(key, ()):
                for values, counts in _parts(datum):
                    entry = Datum(datum.name, datum.dimensions, datum.timestamp_ms, datum.unit, datum.value,
                                  values, counts).to_cloudwatch()
                    converted = datum_from_cloudwatch(entry, f"{datum.name} datum")
                    out.append(converted if arrival is None else dataclasses.replace(converted, arrival=arrival))
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
    """The most recent window of every evaluation in [start, end], with the alarm's value there once
    all its data has arrived (settled: what the period really was, whatever the publishing lag).

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
        last = evaluate(alarm, sliced, t, evaluation_range=size, settled=True).evaluated[-1]
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
    publish_lag_s: float = 0.0  # how long after its tick a datum reached CloudWatch

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
            "fail_safe": a.fail_safe,
            "publish_lag_seconds": self.publish_lag_s,
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


def default_range(alarm: alarm_spec.Alarm, replayed: Replay, lag_s: float = 0.0) -> tuple[int, int] | None:
    """[first event, last event + Period x EvaluationPeriods + the publishing lag] in epoch seconds;
    None with no events."""
    if replayed.start_ms is None or replayed.end_ms is None:
        return None
    last = -(-replayed.end_ms // 1000) + alarm.period * alarm.evaluation_periods
    return replayed.start_ms // 1000, last + math.ceil(lag_s)


def heartbeats(start: int, end: int, tick_ms: int) -> tuple[list[Datum], list[int]]:
    """What a daemon alive over [start, end] (epoch s) publishes as liveness, ticking at every
    multiple of the tick: the Heartbeat datums (`pipelines.heartbeat`) and when each was drained."""
    datums: list[Datum] = []
    drained: list[int] = []
    previous: int | None = None
    for now in range(-(-start * 1000 // tick_ms) * tick_ms, end * 1000 + 1, tick_ms):
        for stamp in heartbeat_stamps(previous, now, tick_ms):
            datums.append(Datum(metrics.HEARTBEAT, (), stamp, metrics.COUNT_UNIT, 1.0))
            drained.append(now)
        previous = now
    return datums, drained


def backtest_alarm(
    alarm: alarm_spec.Alarm, namespace: str, index: DatumIndex,
    start: int, end: int, bad: BadInterval | None, publish_lag_s: float = 0.0,
) -> AlarmResult:
    """Evaluate one spec alarm over [start, end] (epoch seconds) from INSUFFICIENT_DATA, on the
    datums as they reach CloudWatch (``index``'s lag; ``publish_lag_s`` is only reported).

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
        outcome=summarize(transitions, periods, start, end, bad), publish_lag_s=publish_lag_s,
    )


@dataclass(frozen=True)
class Backtest:
    replay: Replay
    results: tuple[AlarmResult, ...]

    @property
    def comparisons(self) -> tuple[ComparisonResult, ...]:
        return self.replay.comparisons


def added_segment_attributes(
    settings: Settings, alarms: Sequence[alarm_spec.Alarm], comparisons: Sequence[Comparison] = (),
) -> tuple[str, ...]:
    """Segment attributes the alarms read or the comparisons judge that ROLLGUARD_SEGMENT_ATTRIBUTES
    does not list."""
    wanted = dict.fromkeys(a.segment[0] for a in alarms if a.segment is not None)
    wanted.update(dict.fromkeys(attr for c in comparisons for attr in c.segments))
    return tuple(attr for attr in wanted if attr not in settings.segment_attributes)


def added_segment_gauges(settings: Settings, alarms: Sequence[alarm_spec.Alarm]) -> bool:
    """Whether a gauge alarm reads a segment gauge, which ROLLGUARD_SEGMENT_GAUGES leaves unpublished."""
    return not settings.segment_gauges and any(a.kind == "gauge" and a.segment is not None for a in alarms)


def run_backtest(
    alarms: Sequence[alarm_spec.Alarm], lines: Iterable[Line], settings: Settings, *, namespace: str,
    start: float | None = None, end: float | None = None, bad: BadInterval | None = None,
    publish_lag_s: float | None = None, comparisons: Sequence[Comparison] = (),
) -> Backtest:
    """Replay ``lines`` as the daemon configured by ``settings`` would, then backtest every alarm.

    ``comparisons`` are counted by the replayed pipeline and decided at every tick
    (:attr:`Backtest.comparisons`); [start, end] does not bound them.

    A datum reaches CloudWatch ``publish_lag_s`` after the replay's tick drains it (default: one
    tick plus `alarms.publish_lag.DEFAULT_PUBLISH_DELAY_S`), and the daemon publishes its
    heartbeat throughout. [start, end] (epoch seconds) defaults per alarm to :func:`default_range`. Raises ValueError
    (one line) when there is nothing to evaluate or the settings cannot make the gauges' window,
    and AlarmLimitError / AlarmConfigError for an alarm CloudWatch would refuse.
    """
    # the daemon's own builder, so a backtest parses, joins and ticks exactly as `rollguard run`
    config = pipeline_config(settings, comparisons)
    if added_segment_gauges(settings, alarms):
        config = dataclasses.replace(config, segment_gauges=True)
    segments = segment_cap(settings, added_segment_attributes(settings, alarms, comparisons))
    window = None
    if any(a.kind == "gauge" for a in alarms):
        try:
            window = SlidingWindow(int(settings.window_seconds * 1000), config.tick_ms, settings.min_samples)
        except ValueError as ex:
            raise ValueError(f"ROLLGUARD_WINDOW_SECONDS / ROLLGUARD_TICK_SECONDS: {ex}") from None
    replayed = replay(order_stream(lines, config), config, segments, window)
    lag = publish_lag_s if publish_lag_s is not None else publish_lag.publish_lag_s(settings.tick_seconds)
    ranges: list[tuple[int, int]] = []
    for alarm in alarms:
        default = default_range(alarm, replayed, lag)
        if default is None and (start is None or end is None):
            raise ValueError("no line has a usable event time, so there is nothing to evaluate; give --from and --to")
        lo = int(start) if start is not None else default[0]  # type: ignore[index]  # checked just above
        hi = int(math.ceil(end)) if end is not None else default[1]  # type: ignore[index]
        ranges.append((lo, hi))
    datums, drained = list(replayed.datums), list(replayed.drained_ms)
    if ranges:
        # the daemon was up before the first evaluation looks back, and after the last record
        lookback = max(evaluation_range_for(a.evaluation_periods) * a.period for a in alarms) + math.ceil(lag)
        beats, beat_times = heartbeats(min(lo for lo, _ in ranges) - lookback, max(hi for _, hi in ranges), config.tick_ms)
        datums += beats
        drained += beat_times
    index = DatumIndex(datums, drained, lag)
    results = [backtest_alarm(a, namespace, index, lo, hi, bad, lag) for a, (lo, hi) in zip(alarms, ranges)]
    return Backtest(replayed, tuple(results))
