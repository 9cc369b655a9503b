"""An alarm definition validated as PutMetricAlarm would: single-metric or metric math, with
what CloudWatch refuses refused here (:class:`AlarmConfigError`)."""
from __future__ import annotations

import operator
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass
from typing import Any, Literal

from pydantic import ValidationError

from alarms.evaluator.period_stats import percentile_of
from alarms.evaluator.shapes import DimensionIn, PutMetricAlarmIn, first_error
from alarms.metric_math import ID_PATTERN, Expression, MetricMathError, Series, SeriesArray, parse, resolve
from pipelines import cloudwatch_rules as rules

TreatMissingData = Literal["missing", "notBreaching", "breaching", "ignore"]
TREAT_MISSING_DATA: tuple[TreatMissingData, ...] = ("missing", "notBreaching", "breaching", "ignore")

_OPERATORS = rules.COMPARISON_OPERATORS
#: ComparisonOperator -> (its words in a state reason, the test of a value against the threshold)
COMPARISONS: Mapping[str, tuple[str, Callable[[float, float], bool]]] = {
    _OPERATORS[">"]: ("greater than", operator.gt),
    _OPERATORS[">="]: ("greater than or equal to", operator.ge),
    _OPERATORS["<"]: ("less than", operator.lt),
    _OPERATORS["<="]: ("less than or equal to", operator.le),
}


class AlarmConfigError(ValueError):
    """The alarm definition is one CloudWatch would reject (or this simulator can't run)."""


@dataclass(frozen=True, slots=True)
class MetricStat:
    """One metric an alarm reads: ``key`` is where its data is found (metric name or query id)."""

    key: str
    namespace: str | None
    metric_name: str | None
    dimensions: tuple[tuple[str, str], ...]
    period: int
    stat: str


@dataclass(frozen=True)
class Alarm:
    """A validated alarm, single-metric or metric math. Build it with ``Alarm.from_request``."""

    name: str
    threshold: float
    comparison: str
    evaluation_periods: int
    datapoints_to_alarm: int
    treat_missing_data: TreatMissingData
    period: int
    metrics: tuple[MetricStat, ...]
    expressions: tuple[tuple[str, Expression], ...] = ()
    return_id: str = ""
    evaluate_low_sample_count_percentile: Literal["evaluate", "ignore"] = "evaluate"
    is_math: bool = False  # defined with a Metrics array: data keyed by MetricStat id
    evaluation_interval: int | None = None  # EvaluationInterval as DescribeAlarms reports it

    @property
    def data_keys(self) -> tuple[str, ...]:
        """The keys the datapoints mapping is read by: the metric name, or each MetricStat id."""
        return tuple(m.key for m in self.metrics)

    @property
    def cadence(self) -> int:
        """Seconds between evaluations: EvaluationInterval when given, else CloudWatch's
        (10 s high resolution, hourly over more than a day, else 60 s)."""
        if self.evaluation_interval is not None:
            return self.evaluation_interval
        return rules.evaluation_interval(self.period, self.evaluation_periods)

    def breaches(self, value: float) -> bool:
        return COMPARISONS[self.comparison][1](value, self.threshold)

    @classmethod
    def from_request(cls, request: Mapping[str, Any]) -> Alarm:
        """Validate a PutMetricAlarm request as CloudWatch would; AlarmConfigError if it wouldn't."""
        try:
            req = PutMetricAlarmIn.model_validate(request)
        except ValidationError as exc:
            raise AlarmConfigError(first_error(exc)) from None
        return _build_alarm(req)


def _build_alarm(req: PutMetricAlarmIn) -> Alarm:
    if req.EvaluationCriteria is not None:
        raise AlarmConfigError(
            "EvaluationCriteria: PromQL alarms are valid in CloudWatch but not simulated here; "
            "use MetricName or Metrics"
        )
    if req.EvaluationInterval is not None:
        _check_period(req.EvaluationInterval, "EvaluationInterval")
    if req.ThresholdMetricId is not None or req.ComparisonOperator in rules.ANOMALY_COMPARISON_OPERATORS:
        raise AlarmConfigError(
            f"ComparisonOperator {req.ComparisonOperator} / ThresholdMetricId: anomaly-detection alarms are "
            "valid in CloudWatch but not simulated here; use a static Threshold"
        )
    if req.ComparisonOperator not in COMPARISONS:
        raise AlarmConfigError(
            f"ComparisonOperator: {req.ComparisonOperator!r} is not one of {', '.join(COMPARISONS)}"
        )
    if req.Threshold is None:
        raise AlarmConfigError("Threshold: required for a static-threshold alarm")
    if req.EvaluationPeriods < 1:
        raise AlarmConfigError(f"EvaluationPeriods: must be at least 1, got {req.EvaluationPeriods}")
    m = req.EvaluationPeriods if req.DatapointsToAlarm is None else req.DatapointsToAlarm
    if m < 1:
        raise AlarmConfigError(f"DatapointsToAlarm: must be at least 1, got {m}")
    if m > req.EvaluationPeriods:
        raise AlarmConfigError(
            f"DatapointsToAlarm ({m}) can't be greater than EvaluationPeriods ({req.EvaluationPeriods})"
        )
    treat = req.TreatMissingData or "missing"
    if treat not in TREAT_MISSING_DATA:
        raise AlarmConfigError(f"TreatMissingData: {treat!r} is not one of {', '.join(TREAT_MISSING_DATA)}")
    low_sample = req.EvaluateLowSampleCountPercentile or "evaluate"
    if low_sample not in ("evaluate", "ignore"):
        raise AlarmConfigError(
            f"EvaluateLowSampleCountPercentile: {low_sample!r} is not one of evaluate, ignore"
        )
    if req.Metrics is not None:
        metrics, expressions, return_id, period = _math_parts(req)
    else:
        metrics, return_id, period = _single_parts(req)
        expressions = ()
    _check_period(period, "Period")
    _check_evaluation_length(period, req.EvaluationPeriods)
    return Alarm(
        name=req.AlarmName,
        threshold=req.Threshold,
        comparison=req.ComparisonOperator,
        evaluation_periods=req.EvaluationPeriods,
        datapoints_to_alarm=m,
        treat_missing_data=treat,  # type: ignore[arg-type]  # checked against TREAT_MISSING_DATA above
        period=period,
        metrics=metrics,
        expressions=expressions,
        return_id=return_id,
        evaluate_low_sample_count_percentile=low_sample,  # type: ignore[arg-type]  # checked above
        is_math=req.Metrics is not None,
        evaluation_interval=req.EvaluationInterval,
    )


def _check_period(period: int, where: str) -> None:
    # PutMetricAlarm: "Valid values are 10, 20, 30, and any multiple of 60."
    if rules.valid_alarm_period(period):
        return
    raise AlarmConfigError(f"{where}: {period} is not a valid alarm period (10, 20, 30 or a multiple of 60)")


def _check_evaluation_length(period: int, evaluation_periods: int) -> None:
    # PutMetricAlarm: Period x EvaluationPeriods <= 604,800 s; <= 86,400 s when Period < 3600.
    limit = rules.max_evaluation_s(period)
    total = period * evaluation_periods
    if total > limit:
        what = "one day" if limit == rules.ONE_DAY_S else "seven days"
        raise AlarmConfigError(
            f"EvaluationPeriods x Period = {evaluation_periods} x {period} = {total} s exceeds {what} "
            f"({limit} s) for a {period} s period"
        )


def _check_statistic(stat: str, where: str) -> None:
    if stat in rules.STATISTICS or percentile_of(stat) is not None:
        return
    raise AlarmConfigError(
        f"{where}: {stat!r} is not supported (SampleCount, Average, Sum, Minimum, Maximum or pNN.NN)"
    )


def _dimensions(dims: list[DimensionIn] | None) -> tuple[tuple[str, str], ...]:
    return tuple((d.Name, d.Value) for d in dims or ())


def _single_parts(req: PutMetricAlarmIn) -> tuple[tuple[MetricStat, ...], str, int]:
    if req.MetricName is None:
        raise AlarmConfigError("MetricName: required unless the alarm uses Metrics (metric math)")
    if req.Namespace is None:
        raise AlarmConfigError("Namespace: required with MetricName")
    if req.Period is None:
        raise AlarmConfigError("Period: required with MetricName")
    if (req.Statistic is None) == (req.ExtendedStatistic is None):
        raise AlarmConfigError("exactly one of Statistic or ExtendedStatistic is required with MetricName")
    if req.Statistic is not None and req.Statistic not in rules.STATISTICS:
        raise AlarmConfigError(
            f"Statistic: {req.Statistic!r} is not one of {', '.join(sorted(rules.STATISTICS))} "
            "(percentiles go in ExtendedStatistic)"
        )
    if req.ExtendedStatistic is not None and percentile_of(req.ExtendedStatistic) is None:
        raise AlarmConfigError(
            f"ExtendedStatistic: {req.ExtendedStatistic!r} is not a percentile between p0.0 and p100 "
            "(other extended statistics are not simulated)"
        )
    stat = req.Statistic or req.ExtendedStatistic or ""
    metric = MetricStat(req.MetricName, req.Namespace, req.MetricName, _dimensions(req.Dimensions), req.Period, stat)
    return (metric,), req.MetricName, req.Period


def _math_parts(
    req: PutMetricAlarmIn,
) -> tuple[tuple[MetricStat, ...], tuple[tuple[str, Expression], ...], str, int]:
    single = [k for k in ("MetricName", "Namespace", "Statistic", "ExtendedStatistic", "Dimensions", "Period", "Unit")
              if getattr(req, k) is not None]
    if single:
        raise AlarmConfigError(f"Metrics can't be combined with {', '.join(single)} (put them in a MetricStat)")
    queries = req.Metrics or []
    if not queries:
        raise AlarmConfigError("Metrics: must not be empty")
    ids: list[str] = []
    for i, q in enumerate(queries):
        if not ID_PATTERN.match(q.Id) or len(q.Id) > rules.MAX_QUERY_ID:
            raise AlarmConfigError(
                f"Metrics[{i}].Id: {q.Id!r} must start with a lowercase letter and hold only letters, digits and _"
            )
        if q.Id in ids:
            raise AlarmConfigError(f"Metrics[{i}].Id: {q.Id!r} is used twice")
        if (q.MetricStat is None) == (q.Expression is None):
            raise AlarmConfigError(f"Metrics[{i}] ({q.Id}): needs exactly one of MetricStat or Expression")
        ids.append(q.Id)
    stats = [q for q in queries if q.MetricStat is not None]
    if len(stats) > rules.MAX_METRIC_STATS:
        raise AlarmConfigError(
            f"Metrics: {len(stats)} MetricStat entries; an alarm's math expression can use at most "
            f"{rules.MAX_METRIC_STATS} metrics"
        )
    # ReturnData defaults to true when omitted, so omitting it everywhere is also an error.
    returning = [q.Id for q in queries if q.ReturnData is not False]
    if len(returning) != 1:
        which = f" ({', '.join(returning)})" if returning else ""
        raise AlarmConfigError(
            f"Metrics: exactly one element must have ReturnData true, got {len(returning)}{which}; "
            "ReturnData defaults to true when omitted"
        )
    metrics: list[MetricStat] = []
    periods: set[int] = set()
    for i, q in enumerate(queries):
        if q.MetricStat is None:
            continue
        ms = q.MetricStat
        if ms.Metric.MetricName is None or ms.Metric.Namespace is None:
            raise AlarmConfigError(f"Metrics[{i}] ({q.Id}).MetricStat.Metric: needs Namespace and MetricName")
        _check_statistic(ms.Stat, f"Metrics[{i}] ({q.Id}).MetricStat.Stat")
        _check_period(ms.Period, f"Metrics[{i}] ({q.Id}).MetricStat.Period")
        periods.add(ms.Period)
        metrics.append(
            MetricStat(q.Id, ms.Metric.Namespace, ms.Metric.MetricName, _dimensions(ms.Metric.Dimensions), ms.Period, ms.Stat)
        )
    if not metrics:
        raise AlarmConfigError("Metrics: a math alarm needs at least one MetricStat")
    if len(periods) > 1:
        raise AlarmConfigError(f"Metrics: every metric in a math alarm must use the same Period, got {sorted(periods)}")
    expressions: list[tuple[str, Expression]] = []
    for i, q in enumerate(queries):
        if q.Expression is None:
            continue
        try:
            expressions.append((q.Id, parse(q.Expression, known_ids=set(ids) - {q.Id})))
        except MetricMathError as exc:
            raise AlarmConfigError(f"Metrics[{i}] ({q.Id}).Expression: {exc}") from None
    _dry_run(metrics, expressions, returning[0])
    return tuple(metrics), tuple(expressions), returning[0], periods.pop()


def _dry_run(metrics: Sequence[MetricStat], expressions: Sequence[tuple[str, Expression]], return_id: str) -> None:
    """Evaluate once on a one-point grid to catch cycles and non-series results before any data."""
    inputs = {m.key: Series({0: 1.0}) for m in metrics}
    try:
        values = resolve(dict(expressions), inputs, (0,))
    except MetricMathError as exc:
        raise AlarmConfigError(f"Metrics: {exc}") from None
    result = values[return_id]
    if not isinstance(result, Series):
        kind = "an array of time series" if isinstance(result, SeriesArray) else "a scalar"
        raise AlarmConfigError(f"Metrics ({return_id}): the alarm's expression must return one time series, not {kind}")
