"""CloudWatch's alarm evaluation rules, pure: what state would this alarm be in at time T?

Inputs are CloudWatch's own shapes: the alarm as a ``PutMetricAlarm`` request and the
data as ``MetricDatum`` objects. Time is always an argument; nothing here reads a clock.

Rules implemented (CloudWatch user guide, "Using Amazon CloudWatch alarms", sections
"Evaluating an alarm", "Configuring how CloudWatch alarms treat missing data",
"Avoiding premature transitions to alarm state", "High-resolution alarms",
"Percentile-based alarms and low data samples", and the ``PutMetricAlarm`` API reference):

- **When it evaluates.** Every minute for periods of 60 s or more, every 10 s for 10/20/30 s
  periods, and once an hour (on data up to the hour, :00) when Period x EvaluationPeriods
  exceeds one day. Each evaluation looks at windows that end at that instant: "if the Period
  is 5 minutes and Evaluation Periods is 1, then at the end of minute 5 the alarm evaluates
  based on data from minutes 1 to 5. Then at the end of minute 6 ... minutes 2 to 6."
  A datapoint is labelled with the start of its window, as CloudWatch's state reasons do.
- **Period aggregation.** Raw data (``Value``, ``Values``/``Counts``, ``StatisticValues``) is
  first rolled up to its storage resolution (1 minute unless ``StorageResolution`` is 1), then
  each window gets SampleCount, Sum, Average, Minimum, Maximum and percentiles. Percentiles
  use linear interpolation between closest ranks over the value/count distribution (numpy's
  default "linear" method on the expanded sample); CloudWatch itself computes percentiles from
  an approximate sketch and does not document its interpolation, so tiny differences from the
  real service are possible. As documented, a window has no percentile when any value in it is
  negative, or when it holds a statistic set whose SampleCount is not 1 and Min != Max.
- **Evaluation range.** CloudWatch fetches more periods than EvaluationPeriods (N): the
  *evaluation range*. AWS does not publish its exact length ("depends on the length of the alarm
  period and whether it is ... standard or high resolution"); every documented example uses
  N = 3 with a range of 5, so the default here is N + 2, overridable per call.
- **M of N with missing data** (M = DatapointsToAlarm, default N):
  1. If at least N real datapoints exist in the range, the most recent N real ones are
     evaluated (older ones from farther back if needed) and TreatMissingData does not matter:
     ALARM if at least M breach, else OK.
  2. If none exist: ``missing`` -> INSUFFICIENT_DATA, ``ignore`` -> keep the current state,
     ``breaching`` -> ALARM, ``notBreaching`` -> OK.
  3. Otherwise all k real datapoints are used and the N - k most recent missing slots are
     filled: ``breaching`` counts them as breaching, ``notBreaching`` as not. ``missing`` and
     ``ignore`` do not invent values: at least M breaching real points -> ALARM; any
     non-breaching real point -> OK; otherwise (only breaching points, fewer than M) ``missing``
     goes to ALARM when the oldest breaching point is at least M periods old (the documented
     *premature alarm* rule: ``- - X - -`` alarms at M = 3, ``- - - - X`` does not) and to
     INSUFFICIENT_DATA when it is younger, while ``ignore`` keeps the current state.
  This reproduces every row of both example tables in the AWS documentation.
- **Low sample percentiles.** With ``EvaluateLowSampleCountPercentile: ignore`` a percentile
  alarm keeps its state while any evaluated window has fewer than 10/(1-p) samples
  (p >= 0.5) or 10/p samples (p < 0.5).
- **What CloudWatch rejects** is rejected here with AlarmConfigError: periods other than
  10, 20, 30 or a multiple of 60; Period x EvaluationPeriods over one day (periods under an
  hour) or seven days (an hour or more); DatapointsToAlarm > EvaluationPeriods; more than
  10 metrics in a math alarm; not exactly one ReturnData item; mixing ``Metrics`` with the
  single-metric fields; unknown parameters. Anomaly-detection alarms
  (``LessThanLowerOrGreaterThanUpperThreshold`` and friends, ``ThresholdMetricId``) are valid
  in CloudWatch but not simulated here, and are refused with a message saying so.
"""
from __future__ import annotations

import bisect
import math
import re
from collections.abc import Callable, Iterable, Mapping, Sequence
from dataclasses import dataclass, field
from datetime import datetime, timezone
from enum import Enum
from typing import Any, Literal, Union

from pipelines.stats import percentile_from_distribution

from pydantic import BaseModel, ConfigDict, ValidationError

from alarms.metric_math import ID_PATTERN, Expression, MetricMathError, Series, SeriesArray, parse, resolve

__all__ = [
    "Alarm",
    "AlarmConfigError",
    "Datum",
    "DatumError",
    "Decision",
    "EvaluatedPeriod",
    "Evaluation",
    "MetricStat",
    "PeriodStats",
    "State",
    "StatisticSet",
    "Transition",
    "aggregate",
    "aggregate_periods",
    "decide",
    "evaluate",
    "parse_datapoints",
    "parse_time",
    "percentile",
    "timeline",
]

ONE_DAY = 86_400
SEVEN_DAYS = 7 * ONE_DAY
MAX_METRICS_IN_MATH_ALARM = 10
MAX_VALUES_PER_DATUM = 150  # PutMetricData: "Values ... up to 150 unique values"
VALUE_LIMIT = 2.0**360  # PutMetricData: values must be within -2^360 .. 2^360
MILLISECONDS_LOOK_ALIKE = 1e11  # epoch seconds this large are past the year 5000

TreatMissingData = Literal["missing", "notBreaching", "breaching", "ignore"]
TREAT_MISSING_DATA: tuple[TreatMissingData, ...] = ("missing", "notBreaching", "breaching", "ignore")

COMPARISONS: Mapping[str, tuple[str, Callable[[float, float], bool]]] = {
    "GreaterThanThreshold": ("greater than", lambda v, t: v > t),
    "GreaterThanOrEqualToThreshold": ("greater than or equal to", lambda v, t: v >= t),
    "LessThanThreshold": ("less than", lambda v, t: v < t),
    "LessThanOrEqualToThreshold": ("less than or equal to", lambda v, t: v <= t),
}
ANOMALY_COMPARISONS = frozenset(
    {"LessThanLowerOrGreaterThanUpperThreshold", "LessThanLowerThreshold", "GreaterThanUpperThreshold"}
)
BASIC_STATISTICS = frozenset({"SampleCount", "Average", "Sum", "Minimum", "Maximum"})
PERCENTILE_RE = re.compile(r"p(\d{1,3}(?:\.\d+)?)\Z")


class State(str, Enum):
    OK = "OK"
    ALARM = "ALARM"
    INSUFFICIENT_DATA = "INSUFFICIENT_DATA"


class AlarmConfigError(ValueError):
    """The alarm definition is one CloudWatch would reject (or this simulator can't run)."""


class DatumError(ValueError):
    """A MetricDatum CloudWatch would not accept."""


# --- time --------------------------------------------------------------------


def parse_time(value: str | float | int | datetime) -> float:
    """Epoch seconds from ISO 8601 (naive means UTC), epoch seconds, or a datetime."""
    if isinstance(value, bool):
        raise ValueError(f"expected a time, got {value!r}")
    if isinstance(value, (int, float)):
        return _epoch_seconds(float(value))
    if isinstance(value, datetime):
        moment = value
    else:
        text = value.strip()
        try:
            number = float(text)
        except ValueError:
            pass
        else:
            return _epoch_seconds(number)
        try:
            moment = datetime.fromisoformat(text.replace("Z", "+00:00").replace("z", "+00:00"))
        except ValueError:
            raise ValueError(f"expected ISO 8601 or epoch seconds, got {value!r}") from None
    if moment.tzinfo is None:
        moment = moment.replace(tzinfo=timezone.utc)
    return moment.timestamp()


def _epoch_seconds(value: float) -> float:
    if not math.isfinite(value):
        raise ValueError(f"expected a time, got {value!r}")
    # Epoch milliseconds (rollguard's internal unit) passed as seconds would land tens of
    # thousands of years ahead; say so instead of silently evaluating nothing.
    if abs(value) >= MILLISECONDS_LOOK_ALIKE:
        raise ValueError(f"{value:.0f} looks like epoch milliseconds; CloudWatch timestamps are epoch seconds")
    return value


def format_time(epoch: float) -> str:
    """ISO 8601 UTC with a Z, seconds precision."""
    return datetime.fromtimestamp(epoch, tz=timezone.utc).strftime("%Y-%m-%dT%H:%M:%SZ")


# --- data --------------------------------------------------------------------


@dataclass(frozen=True, slots=True)
class StatisticSet:
    """A pre-aggregated ``StatisticValues`` entry."""

    sample_count: float
    sum: float
    minimum: float
    maximum: float


@dataclass(frozen=True, slots=True)
class Datum:
    """One MetricDatum: values with counts (``Value`` is one value, count 1) or a statistic set.

    ``timestamp`` is epoch seconds; ``storage_resolution`` is 1 (high resolution) or 60.
    """

    timestamp: float
    values: tuple[float, ...] = ()
    counts: tuple[float, ...] = ()
    statistics: StatisticSet | None = None
    storage_resolution: int = 60

    @property
    def stored_at(self) -> int:
        """The timestamp CloudWatch stores: truncated to the second or to the minute."""
        return int(self.timestamp // self.storage_resolution * self.storage_resolution)


class _Boundary(BaseModel):
    model_config = ConfigDict(strict=True, extra="forbid", frozen=True, allow_inf_nan=False)


class _DimensionIn(_Boundary):
    Name: str
    Value: str


class _StatisticValuesIn(_Boundary):
    SampleCount: float
    Sum: float
    Minimum: float
    Maximum: float


class _DatumIn(_Boundary):
    Timestamp: Union[str, float]
    MetricName: str | None = None
    Dimensions: list[_DimensionIn] | None = None
    Value: float | None = None
    StatisticValues: _StatisticValuesIn | None = None
    Values: list[float] | None = None
    Counts: list[float] | None = None
    Unit: str | None = None
    StorageResolution: int | None = None


def _first_error(error: ValidationError) -> str:
    """One line from a pydantic error: where, and what was expected."""
    details = error.errors()
    first = details[0]
    where = "".join(f"[{p}]" if isinstance(p, int) else f".{p}" for p in first["loc"]).lstrip(".")
    message = "unknown parameter" if first["type"] == "extra_forbidden" else first["msg"]
    more = f" (and {len(details) - 1} more problem{'s' if len(details) > 2 else ''})" if len(details) > 1 else ""
    return f"{where}: {message}{more}" if where else f"{message}{more}"


def _check_value(value: float, where: str) -> float:
    if not math.isfinite(value) or abs(value) > VALUE_LIMIT:
        raise DatumError(f"{where}: {value!r} is outside what CloudWatch accepts (finite, |v| <= 2^360)")
    return value


def datum_from_cloudwatch(raw: Mapping[str, Any], where: str = "datum") -> Datum:
    """Validate one MetricDatum-shaped mapping as PutMetricData would; DatumError if not."""
    try:
        model = _DatumIn.model_validate(raw)
    except ValidationError as exc:
        raise DatumError(f"{where}: {_first_error(exc)}") from None
    try:
        timestamp = parse_time(model.Timestamp)
    except ValueError as exc:
        raise DatumError(f"{where}.Timestamp: {exc}") from None
    given = [k for k in ("Value", "StatisticValues", "Values") if getattr(model, k) is not None]
    if len(given) != 1:
        raise DatumError(f"{where}: needs exactly one of Value, StatisticValues or Values, got {given or 'none'}")
    resolution = 60 if model.StorageResolution is None else model.StorageResolution
    if resolution not in (1, 60):
        raise DatumError(f"{where}.StorageResolution: must be 1 or 60, got {resolution}")
    if model.Counts is not None and model.Values is None:
        raise DatumError(f"{where}: Counts given without Values")
    if model.Value is not None:
        return Datum(timestamp, (_check_value(model.Value, f"{where}.Value"),), (1.0,), storage_resolution=resolution)
    if model.Values is not None:
        values = tuple(_check_value(v, f"{where}.Values[{i}]") for i, v in enumerate(model.Values))
        if not values or len(values) > MAX_VALUES_PER_DATUM:
            raise DatumError(f"{where}.Values: must hold 1 to {MAX_VALUES_PER_DATUM} values, got {len(values)}")
        counts = tuple(model.Counts) if model.Counts is not None else (1.0,) * len(values)
        if len(counts) != len(values):
            raise DatumError(f"{where}: Counts has {len(counts)} entries but Values has {len(values)}")
        if any(c < 0 for c in counts):
            raise DatumError(f"{where}.Counts: counts can't be negative")
        return Datum(timestamp, values, counts, storage_resolution=resolution)
    s = model.StatisticValues
    assert s is not None
    for name in ("SampleCount", "Sum", "Minimum", "Maximum"):
        _check_value(getattr(s, name), f"{where}.StatisticValues.{name}")
    if s.SampleCount <= 0:
        raise DatumError(f"{where}.StatisticValues.SampleCount: must be > 0, got {s.SampleCount:g}")
    if s.Minimum > s.Maximum:
        raise DatumError(f"{where}.StatisticValues: Minimum {s.Minimum:g} is above Maximum {s.Maximum:g}")
    return Datum(
        timestamp,
        statistics=StatisticSet(s.SampleCount, s.Sum, s.Minimum, s.Maximum),
        storage_resolution=resolution,
    )


def parse_datapoints(raw: Mapping[str, Any]) -> dict[str, tuple[Datum, ...]]:
    """``{key: [MetricDatum, ...]}`` to Datum tuples; DatumError names the key and index."""
    out: dict[str, tuple[Datum, ...]] = {}
    for key, items in raw.items():
        if not isinstance(items, list):
            raise DatumError(f"{key}: expected a list of MetricDatum objects, got {type(items).__name__}")
        data: list[Datum] = []
        for i, item in enumerate(items):
            if not isinstance(item, Mapping):
                raise DatumError(f"{key}[{i}]: expected a MetricDatum object, got {type(item).__name__}")
            data.append(datum_from_cloudwatch(item, f"{key}[{i}]"))
        out[key] = tuple(data)
    return out


# --- period statistics -------------------------------------------------------


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
    match = PERCENTILE_RE.match(statistic)
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


class _Index:
    """One metric's data sorted by stored timestamp, for quick window look-ups."""

    def __init__(self, data: Iterable[Datum]) -> None:
        ordered = sorted(data, key=lambda d: d.stored_at)
        self.data = ordered
        self.stamps = [d.stored_at for d in ordered]

    def window(self, start: int, end: int) -> PeriodStats | None:
        lo = bisect.bisect_left(self.stamps, start)
        hi = bisect.bisect_left(self.stamps, end)
        return aggregate(self.data[lo:hi])


# --- the alarm ---------------------------------------------------------------


class _MetricIn(_Boundary):
    Namespace: str | None = None
    MetricName: str | None = None
    Dimensions: list[_DimensionIn] | None = None


class _MetricStatIn(_Boundary):
    Metric: _MetricIn
    Period: int
    Stat: str
    Unit: str | None = None


class _QueryIn(_Boundary):
    Id: str
    MetricStat: _MetricStatIn | None = None
    Expression: str | None = None
    Label: str | None = None
    ReturnData: bool | None = None
    Period: int | None = None
    AccountId: str | None = None


class _TagIn(_Boundary):
    Key: str
    Value: str


class _PutMetricAlarmIn(_Boundary):
    AlarmName: str
    AlarmDescription: str | None = None
    ActionsEnabled: bool | None = None
    OKActions: list[str] | None = None
    AlarmActions: list[str] | None = None
    InsufficientDataActions: list[str] | None = None
    MetricName: str | None = None
    Namespace: str | None = None
    Statistic: str | None = None
    ExtendedStatistic: str | None = None
    Dimensions: list[_DimensionIn] | None = None
    Period: int | None = None
    Unit: str | None = None
    EvaluationPeriods: int
    DatapointsToAlarm: int | None = None
    Threshold: float | None = None
    ComparisonOperator: str
    TreatMissingData: str | None = None
    EvaluateLowSampleCountPercentile: str | None = None
    Metrics: list[_QueryIn] | None = None
    Tags: list[_TagIn] | None = None
    ThresholdMetricId: str | None = None


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

    @property
    def data_keys(self) -> tuple[str, ...]:
        """The keys the datapoints mapping is read by: the metric name, or each MetricStat id."""
        return tuple(m.key for m in self.metrics)

    @property
    def cadence(self) -> int:
        """Seconds between evaluations (CloudWatch: 10 s high-res, hourly multi-day, else 60 s)."""
        if self.period < 60:
            return 10
        if self.period * self.evaluation_periods > ONE_DAY:
            return 3600
        return 60

    def breaches(self, value: float) -> bool:
        return COMPARISONS[self.comparison][1](value, self.threshold)

    @classmethod
    def from_request(cls, request: Mapping[str, Any]) -> Alarm:
        """Validate a PutMetricAlarm request as CloudWatch would; AlarmConfigError if it wouldn't."""
        try:
            req = _PutMetricAlarmIn.model_validate(request)
        except ValidationError as exc:
            raise AlarmConfigError(_first_error(exc)) from None
        return _build_alarm(req)


def _build_alarm(req: _PutMetricAlarmIn) -> Alarm:
    if req.ThresholdMetricId is not None or req.ComparisonOperator in ANOMALY_COMPARISONS:
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
    )


def _check_period(period: int, where: str) -> None:
    # PutMetricAlarm: "Valid values are 10, 20, 30, and any multiple of 60."
    if period in (10, 20, 30) or (period > 0 and period % 60 == 0):
        return
    raise AlarmConfigError(f"{where}: {period} is not a valid alarm period (10, 20, 30 or a multiple of 60)")


def _check_evaluation_length(period: int, evaluation_periods: int) -> None:
    # PutMetricAlarm: Period x EvaluationPeriods <= 604,800 s; <= 86,400 s when Period < 3600.
    limit = ONE_DAY if period < 3600 else SEVEN_DAYS
    total = period * evaluation_periods
    if total > limit:
        what = "one day" if limit == ONE_DAY else "seven days"
        raise AlarmConfigError(
            f"EvaluationPeriods x Period = {evaluation_periods} x {period} = {total} s exceeds {what} "
            f"({limit} s) for a {period} s period"
        )


def _check_statistic(stat: str, where: str) -> None:
    if stat in BASIC_STATISTICS or percentile_of(stat) is not None:
        return
    raise AlarmConfigError(
        f"{where}: {stat!r} is not supported (SampleCount, Average, Sum, Minimum, Maximum or pNN.NN)"
    )


def _dimensions(dims: list[_DimensionIn] | None) -> tuple[tuple[str, str], ...]:
    return tuple((d.Name, d.Value) for d in dims or ())


def _single_parts(req: _PutMetricAlarmIn) -> tuple[tuple[MetricStat, ...], str, int]:
    if req.MetricName is None:
        raise AlarmConfigError("MetricName: required unless the alarm uses Metrics (metric math)")
    if req.Namespace is None:
        raise AlarmConfigError("Namespace: required with MetricName")
    if req.Period is None:
        raise AlarmConfigError("Period: required with MetricName")
    if (req.Statistic is None) == (req.ExtendedStatistic is None):
        raise AlarmConfigError("exactly one of Statistic or ExtendedStatistic is required with MetricName")
    if req.Statistic is not None and req.Statistic not in BASIC_STATISTICS:
        raise AlarmConfigError(
            f"Statistic: {req.Statistic!r} is not one of {', '.join(sorted(BASIC_STATISTICS))} "
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
    req: _PutMetricAlarmIn,
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
        if not ID_PATTERN.match(q.Id) or len(q.Id) > 255:
            raise AlarmConfigError(
                f"Metrics[{i}].Id: {q.Id!r} must start with a lowercase letter and hold only letters, digits and _"
            )
        if q.Id in ids:
            raise AlarmConfigError(f"Metrics[{i}].Id: {q.Id!r} is used twice")
        if (q.MetricStat is None) == (q.Expression is None):
            raise AlarmConfigError(f"Metrics[{i}] ({q.Id}): needs exactly one of MetricStat or Expression")
        ids.append(q.Id)
    stats = [q for q in queries if q.MetricStat is not None]
    if len(stats) > MAX_METRICS_IN_MATH_ALARM:
        raise AlarmConfigError(
            f"Metrics: {len(stats)} MetricStat entries; an alarm's math expression can use at most "
            f"{MAX_METRICS_IN_MATH_ALARM} metrics"
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


# --- evaluation --------------------------------------------------------------

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
    return alarm.evaluation_periods + 2


def evaluate(
    alarm: Alarm,
    datapoints: Data,
    at: float | datetime | str,
    initial_state: State = State.INSUFFICIENT_DATA,
    evaluation_range: int | None = None,
) -> Evaluation:
    """The alarm's state when CloudWatch evaluates it at ``at``, starting from ``initial_state``.

    ``datapoints`` is keyed by metric name (single-metric alarm) or MetricStat id (math alarm);
    a missing key means no data. Raises AlarmConfigError for a bad ``evaluation_range``.
    """
    indexes = _indexes(alarm, datapoints)
    return _evaluate(alarm, indexes, parse_time(at), initial_state, _range(alarm, evaluation_range))


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


def _indexes(alarm: Alarm, datapoints: Data) -> dict[str, _Index]:
    return {key: _Index(datapoints.get(key, ())) for key in alarm.data_keys}


def _evaluate(alarm: Alarm, indexes: Mapping[str, _Index], at: float, current: State, size: int) -> Evaluation:
    end = int(at // alarm.cadence * alarm.cadence)
    starts = [end - k * alarm.period for k in range(size, 0, -1)]
    values, samples = _window_values(alarm, indexes, starts)
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
    alarm: Alarm, indexes: Mapping[str, _Index], starts: Sequence[int]
) -> tuple[list[float | None], list[float | None]]:
    """The alarm's value per window (None where missing) and, for single metrics, sample counts."""
    per_metric: dict[str, Series] = {}
    samples: list[float | None] = [None] * len(starts)
    for metric in alarm.metrics:
        index = indexes[metric.key]
        points: dict[int, float] = {}
        for i, start in enumerate(starts):
            stats = index.window(start, start + alarm.period)
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
    if q is None:
        return None
    p = q / 100.0
    if 0.5 <= p < 1.0:
        needed = 10.0 / (1.0 - p)
    elif 0.0 < p < 0.5:
        needed = 10.0 / p
    else:
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
