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
- **Arrival.** A datum counts from the moment CloudWatch has it (``Datum.arrival``, None: already
  there): an evaluation sees only what has arrived by its instant, so late data leaves the newest
  periods missing or incomplete (``alarms.publish_lag`` models rollguard's publishing). ``settled``
  evaluates as if everything had arrived.
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

The package, by job: :mod:`~alarms.evaluator.timestamps`, :mod:`~alarms.evaluator.shapes` (the
request shapes), :mod:`~alarms.evaluator.datums`, :mod:`~alarms.evaluator.period_stats`,
:mod:`~alarms.evaluator.definition` (the alarm), :mod:`~alarms.evaluator.evaluation` (M of N,
evaluate, timeline). CloudWatch's limits come from ``pipelines.cloudwatch_rules``.
"""
from __future__ import annotations

from alarms.evaluator.datums import Datum, DatumError, StatisticSet, datum_from_cloudwatch, parse_datapoints
from alarms.evaluator.definition import COMPARISONS, TREAT_MISSING_DATA, Alarm, AlarmConfigError, MetricStat
from alarms.evaluator.evaluation import (
    Decision,
    EvaluatedPeriod,
    Evaluation,
    State,
    Transition,
    decide,
    default_evaluation_range,
    evaluate,
    evaluation_range_for,
    timeline,
)
from alarms.evaluator.period_stats import PeriodStats, aggregate, aggregate_periods, percentile, percentile_of
from alarms.evaluator.timestamps import format_time, parse_time

__all__ = [
    "COMPARISONS",
    "TREAT_MISSING_DATA",
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
    "datum_from_cloudwatch",
    "decide",
    "default_evaluation_range",
    "evaluate",
    "evaluation_range_for",
    "format_time",
    "parse_datapoints",
    "parse_time",
    "percentile",
    "percentile_of",
    "timeline",
]
