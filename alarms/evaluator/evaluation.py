"""CloudWatch's evaluation of an alarm over time: the M-of-N rule with missing data, the state
at an instant (:func:`evaluate`) and the state changes over a span (:func:`timeline`)."""
from __future__ import annotations

import math
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field
from datetime import datetime, timezone
from enum import Enum
from typing import Any, Literal, Union

from alarms.evaluator.datums import Datum
from alarms.evaluator.definition import COMPARISONS, Alarm, AlarmConfigError, TreatMissingData
from alarms.evaluator.period_stats import Index, percentile_of
from alarms.evaluator.timestamps import format_time, parse_time
from alarms.metric_math import Series, resolve
from pipelines import cloudwatch_rules as rules


class State(str, Enum):
    OK = "OK"
    ALARM = "ALARM"
    INSUFFICIENT_DATA = "INSUFFICIENT_DATA"


Point = Union[bool, None]  # True breaching, False not breaching, None missing


@dataclass(frozen=True, slots=True)
class Decision:
    """The outcome of the M-of-N rule on one evaluation range (oldest first).

    ``used`` are indices of real points evaluated, ``filled`` indices of missing points filled
    by TreatMissingData; ``rule`` names the case for the reason text.
    """

    state: State
    used: tuple[int, ...]
    filled: tuple[int, ...]
    breaching: int
    rule: Literal["threshold", "filled", "all_missing", "premature", "retained", "insufficient"]


def decide(
    points: Sequence[Point],
    evaluation_periods: int,
    datapoints_to_alarm: int,
    treat_missing_data: TreatMissingData,
    current: State,
) -> Decision:
    """CloudWatch's M-of-N rule with missing data over one evaluation range (oldest first)."""
    n, m = evaluation_periods, datapoints_to_alarm
    real = [i for i, p in enumerate(points) if p is not None]
    if len(real) >= n:
        used = tuple(real[-n:])
        breaching = sum(1 for i in used if points[i])
        return Decision(State.ALARM if breaching >= m else State.OK, used, (), breaching, "threshold")
    if not real:
        filled = tuple(range(len(points)))[-n:]
        if treat_missing_data == "missing":
            return Decision(State.INSUFFICIENT_DATA, (), (), 0, "all_missing")
        if treat_missing_data == "ignore":
            return Decision(current, (), (), 0, "retained")
        if treat_missing_data == "breaching":
            return Decision(State.ALARM, (), filled, n, "all_missing")  # N filled breaching >= M
        return Decision(State.OK, (), filled, 0, "all_missing")
    used = tuple(real)
    real_breaching = sum(1 for i in used if points[i])
    if treat_missing_data in ("breaching", "notBreaching"):
        # "CloudWatch uses missing data points only as few times as possible": the most recent gaps.
        missing = [i for i, p in enumerate(points) if p is None]
        filled = tuple(missing[-(n - len(used)):])
        breaching = real_breaching + (len(filled) if treat_missing_data == "breaching" else 0)
        return Decision(State.ALARM if breaching >= m else State.OK, used, filled, breaching, "filled")
    if real_breaching >= m:
        return Decision(State.ALARM, used, (), real_breaching, "threshold")
    if real_breaching < len(used):
        return Decision(State.OK, used, (), real_breaching, "threshold")
    if treat_missing_data == "ignore":
        return Decision(current, used, (), real_breaching, "retained")
    oldest_age = len(points) - used[0]  # 1 for the most recent period
    if oldest_age >= m:
        return Decision(State.ALARM, used, (), real_breaching, "premature")
    return Decision(State.INSUFFICIENT_DATA, used, (), real_breaching, "insufficient")


@dataclass(frozen=True, slots=True)
class EvaluatedPeriod:
    """One period of the evaluation range, oldest first."""

    start: int
    end: int
    value: float | None
    breaching: bool | None
    used: bool
    filled: bool
    sample_count: float | None = None

    def to_json(self) -> dict[str, Any]:
        return {
            "timestamp": format_time(self.start),
            "end": format_time(self.end),
            "value": self.value,
            "breaching": self.breaching,
            "used": self.used,
            "filled": self.filled,
        }


@dataclass(frozen=True)
class Evaluation:
    """The state an alarm evaluates to at ``at`` (aligned to CloudWatch's evaluation cadence)."""

    state: State
    reason: str
    at: int
    evaluated: tuple[EvaluatedPeriod, ...] = field(default_factory=tuple)

    def to_json(self) -> dict[str, Any]:
        return {
            "state": self.state.value,
            "reason": self.reason,
            "evaluated": [p.to_json() for p in self.evaluated],
        }


@dataclass(frozen=True, slots=True)
class Transition:
    """A state change at ``timestamp`` (epoch seconds)."""

    timestamp: int
    previous: State
    state: State
    reason: str


Data = Mapping[str, Sequence[Datum]]


def default_evaluation_range(alarm: Alarm) -> int:
    """N + 2: the documented examples (N = 3, range 5); AWS does not publish the exact rule."""
    return evaluation_range_for(alarm.evaluation_periods)


def evaluation_range_for(evaluation_periods: int) -> int:
    """The evaluation range of an alarm with ``evaluation_periods`` (see :func:`default_evaluation_range`)."""
    return evaluation_periods + 2


def evaluate(
    alarm: Alarm,
    datapoints: Data,
    at: float | datetime | str,
    initial_state: State = State.INSUFFICIENT_DATA,
    evaluation_range: int | None = None,
    settled: bool = False,
) -> Evaluation:
    """The alarm's state when CloudWatch evaluates it at ``at``, starting from ``initial_state``.

    ``datapoints`` is keyed by metric name (single-metric alarm) or MetricStat id (math alarm);
    a missing key means no data. Only datums that have arrived by the evaluation instant count
    (:attr:`Datum.arrival`); ``settled`` counts every datum, as a later look at the same
    periods would. Raises AlarmConfigError for a bad ``evaluation_range``.
    """
    indexes = _indexes(alarm, datapoints)
    return _evaluate(alarm, indexes, parse_time(at), initial_state, _range(alarm, evaluation_range), settled)


def timeline(
    alarm: Alarm,
    datapoints: Data,
    start: float | datetime | str,
    end: float | datetime | str,
    initial_state: State = State.INSUFFICIENT_DATA,
    step: int | None = None,
    evaluation_range: int | None = None,
) -> tuple[Transition, ...]:
    """Evaluate at every CloudWatch evaluation instant in [start, end]; return the state changes.

    ``step`` defaults to the alarm's cadence (60 s, 10 s for high resolution, 3600 s multi-day).
    Each evaluation sees the datums arrived by then, as :func:`evaluate` does.
    """
    cadence = step if step is not None else alarm.cadence
    if cadence <= 0:
        raise ValueError(f"step must be positive, got {cadence}")
    indexes = _indexes(alarm, datapoints)
    size = _range(alarm, evaluation_range)
    t = math.ceil(parse_time(start) / cadence) * cadence
    stop = parse_time(end)
    state = initial_state
    changes: list[Transition] = []
    while t <= stop:
        result = _evaluate(alarm, indexes, t, state, size)
        if result.state != state:
            changes.append(Transition(t, state, result.state, result.reason))
            state = result.state
        t += cadence
    return tuple(changes)


def _range(alarm: Alarm, evaluation_range: int | None) -> int:
    size = default_evaluation_range(alarm) if evaluation_range is None else evaluation_range
    if size < alarm.evaluation_periods:
        raise AlarmConfigError(
            f"evaluation range {size} is shorter than EvaluationPeriods ({alarm.evaluation_periods})"
        )
    return size


def _indexes(alarm: Alarm, datapoints: Data) -> dict[str, Index]:
    return {key: Index(datapoints.get(key, ())) for key in alarm.data_keys}


def _evaluate(
    alarm: Alarm, indexes: Mapping[str, Index], at: float, current: State, size: int, settled: bool = False,
) -> Evaluation:
    end = int(at // alarm.cadence * alarm.cadence)
    starts = [end - k * alarm.period for k in range(size, 0, -1)]
    values, samples = _window_values(alarm, indexes, starts, None if settled else end)
    points: list[Point] = [None if v is None else alarm.breaches(v) for v in values]
    decision = decide(points, alarm.evaluation_periods, alarm.datapoints_to_alarm, alarm.treat_missing_data, current)
    periods = tuple(
        EvaluatedPeriod(s, s + alarm.period, values[i], points[i], i in decision.used, i in decision.filled, samples[i])
        for i, s in enumerate(starts)
    )
    low = _low_sample(alarm, [samples[i] for i in decision.used])
    if low is not None and decision.state != current:
        reason = f"Low sample count: {low}; EvaluateLowSampleCountPercentile is ignore, so the state is kept"
        return Evaluation(current, reason, end, periods)
    return Evaluation(decision.state, _reason(alarm, decision, periods, current), end, periods)


def _window_values(
    alarm: Alarm, indexes: Mapping[str, Index], starts: Sequence[int], seen_at: float | None
) -> tuple[list[float | None], list[float | None]]:
    """The alarm's value per window (None where missing) and, for single metrics, sample counts,
    from the datums arrived by ``seen_at`` (None: all)."""
    per_metric: dict[str, Series] = {}
    samples: list[float | None] = [None] * len(starts)
    for metric in alarm.metrics:
        index = indexes[metric.key]
        points: dict[int, float] = {}
        for i, start in enumerate(starts):
            stats = index.window(start, start + alarm.period, seen_at)
            if stats is None:
                continue
            value = stats.statistic(metric.stat)
            if value is not None:
                points[start] = value
            if not alarm.is_math:
                samples[i] = stats.sample_count
        per_metric[metric.key] = Series(points)
    if not alarm.is_math:
        series = per_metric[alarm.return_id]
    else:
        result = resolve(dict(alarm.expressions), per_metric, starts)[alarm.return_id]
        assert isinstance(result, Series)  # checked by _dry_run when the alarm was built
        series = result
    return [series.get(s) for s in starts], samples


def _low_sample(alarm: Alarm, samples: Sequence[float | None]) -> str | None:
    """Why the sample is too small for the percentile, or None (only with ``ignore``)."""
    if alarm.evaluate_low_sample_count_percentile != "ignore" or alarm.is_math:
        return None
    q = percentile_of(alarm.metrics[0].stat)
    needed = None if q is None else rules.percentile_min_samples(q)
    if needed is None:
        return None
    for count in samples:
        if count is not None and count < needed:
            return f"{count:g} samples in a period, fewer than the {needed:g} a {alarm.metrics[0].stat} needs"
    return None


def _describe(period: EvaluatedPeriod) -> str:
    when = datetime.fromtimestamp(period.start, tz=timezone.utc).strftime("%d/%m/%y %H:%M:%S")
    return f"{period.value!r} ({when})" if period.value is not None else f"missing ({when})"


def _reason(alarm: Alarm, decision: Decision, periods: Sequence[EvaluatedPeriod], current: State) -> str:
    phrase = COMPARISONS[alarm.comparison][0]
    threshold = f"{alarm.threshold!r}"
    if decision.rule == "all_missing":
        n = len(periods)
        if decision.state is State.INSUFFICIENT_DATA:
            return f"Insufficient Data: {n} datapoints were unknown."
        how = "breaching" if decision.state is State.ALARM else "not breaching"
        return f"Missing data: all {n} datapoints were unknown and are treated as {how} (TreatMissingData)."
    if decision.rule == "retained":
        return (
            f"Missing data ignored: {len(decision.used)} datapoint(s) in the evaluation range, not enough to "
            f"decide; the state stays {current.value} (TreatMissingData: ignore)."
        )
    used = [periods[i] for i in sorted(decision.used)]
    shown = ", ".join(_describe(p) for p in reversed(used))
    if decision.rule == "insufficient":
        return (
            f"Insufficient Data: only {len(used)} recent datapoint(s) [{shown}], all {phrase} the threshold "
            f"({threshold}), too recent to alarm on (premature alarm protection)."
        )
    if decision.rule == "premature":
        return (
            f"Threshold Crossed: datapoints [{shown}] were {phrase} the threshold ({threshold}) and the oldest "
            f"is at least {alarm.datapoints_to_alarm} periods old with only missing data after it."
        )
    total = len(used) + len(decision.filled)
    filled = ""
    if decision.filled:
        how = "breaching" if alarm.treat_missing_data == "breaching" else "not breaching"
        filled = f" plus {len(decision.filled)} missing datapoint(s) treated as {how}"
    verb = "was" if decision.breaching == 1 else "were"
    return (
        f"Threshold Crossed: {decision.breaching} out of the last {total} datapoints [{shown}]{filled} "
        f"{verb} {phrase} the threshold ({threshold}) "
        f"(minimum {alarm.datapoints_to_alarm} datapoint(s) for ALARM)."
    )
