"""CloudWatch's rules that rollguard relies on, each written once: what PutMetricData,
PutMetricAlarm, metric math and PutDashboard accept, as constants and a few small pure checks.

Sources: the CloudWatch API reference (PutMetricData, MetricDatum, PutMetricAlarm,
MetricDataQuery, PutDashboard) and user guide ("Metric math syntax and functions",
"High-resolution alarms"). Callers word their own errors; the limits come from here. Pure data.
"""
from __future__ import annotations

import math
import re

from pipelines.datum import Datum

MINUTE_MS = 60_000
HOUR_MS = 60 * MINUTE_MS
DAY_MS = 24 * HOUR_MS

# -- metric data (PutMetricData) --------------------------------------------------------------

#: distinct ``Values`` (with their ``Counts``) in one MetricDatum
MAX_DATUM_VALUES = 150
#: MetricData entries, and bytes, in one PutMetricData request
MAX_DATUMS_PER_REQUEST = 1000
MAX_REQUEST_BYTES = 1_000_000
MAX_DIMENSIONS = 30
#: metric names, dimension names and namespaces are 1-255 characters, dimension values 1-1024
MAX_NAME = 255
MAX_DIMENSION_VALUE = 1024
#: every value and count lies within -2^360 .. 2^360
MAX_ABS_VALUE = 2.0**360
#: timestamps are accepted up to two weeks in the past and two hours in the future
MAX_DATUM_AGE_MS = 14 * DAY_MS
MAX_DATUM_FUTURE_MS = 2 * HOUR_MS
#: SigV4 refuses a request signed more than 5 minutes off AWS's clock (RequestTimeTooSkewed), so
#: whenever CloudWatch accepts a request at all, the sender's clock is within this of its own
MAX_CLOCK_SKEW_MS = 5 * MINUTE_MS
#: rollguard's one limit on future timestamps: the parser dead-letters records further ahead
#: (`future_timestamp`) and the publisher sends everything up to it. A datum's timestamp (its
#: event time, truncated to the tick) only falls behind the clock as time passes, so what the
#: parser accepted the publisher always sends, and CloudWatch, whose clock is at most
#: MAX_CLOCK_SKEW_MS away, always accepts.
MAX_FUTURE_MS = MAX_DATUM_FUTURE_MS - MAX_CLOCK_SKEW_MS
#: StorageResolution: 1 (high resolution) or 60 seconds
STORAGE_RESOLUTIONS = (1, 60)
STANDARD_UNITS = frozenset(
    {
        "Seconds", "Microseconds", "Milliseconds", "Bytes", "Kilobytes", "Megabytes", "Gigabytes",
        "Terabytes", "Bits", "Kilobits", "Megabits", "Gigabits", "Terabits", "Percent", "Count",
        "Bytes/Second", "Kilobytes/Second", "Megabytes/Second", "Gigabytes/Second", "Terabytes/Second",
        "Bits/Second", "Kilobits/Second", "Megabits/Second", "Gigabits/Second", "Terabits/Second",
        "Count/Second", "None",
    }
)


def dimension_text(text: str) -> bool:
    """What a dimension name or value may hold, length aside: ASCII without control
    characters, and not only whitespace (a metric name or value outside it costs the request)."""
    return text.isascii() and text.isprintable() and text.strip() != ""


def datum_problem(datum: Datum) -> str | None:
    """Why PutMetricData would reject ``datum`` (timestamps and the values limit aside), or None."""
    if not 1 <= len(datum.name) <= MAX_NAME:
        return f"metric name must be 1..{MAX_NAME} chars, got {len(datum.name)}"
    if len(datum.dimensions) > MAX_DIMENSIONS:
        return f"at most {MAX_DIMENSIONS} dimensions, got {len(datum.dimensions)}"
    for key, value in datum.dimensions:
        if not 1 <= len(key) <= MAX_NAME or not 1 <= len(value) <= MAX_DIMENSION_VALUE:
            return f"dimension {key!r}={value!r}: name must be 1..{MAX_NAME} chars and value 1..{MAX_DIMENSION_VALUE}"
        if not (dimension_text(key) and dimension_text(value)):
            return f"dimension {key!r}={value!r}: names and values must be ASCII without control characters, not blank"
    if datum.unit not in STANDARD_UNITS:
        return f"unit {datum.unit!r} is not a CloudWatch StandardUnit"
    if len(datum.values) != len(datum.counts):
        return f"values and counts differ in length ({len(datum.values)} vs {len(datum.counts)})"
    if datum.values:
        for v in datum.values:
            if not (math.isfinite(v) and abs(v) <= MAX_ABS_VALUE):
                return f"distribution value {v!r} is not a finite number within ±2^360"
        for c in datum.counts:
            if not (math.isfinite(c) and 0 <= c <= MAX_ABS_VALUE):
                return f"distribution count {c!r} is not a finite number >= 0"
    elif datum.value is not None and not (math.isfinite(datum.value) and abs(datum.value) <= MAX_ABS_VALUE):
        return f"value {datum.value!r} is not a finite number within ±2^360"
    return None


# -- alarms (PutMetricAlarm) ------------------------------------------------------------------

ONE_DAY_S = 86_400
SEVEN_DAYS_S = 7 * ONE_DAY_S
#: the periods under a minute an alarm may use (high resolution)
HIGH_RESOLUTION_PERIODS = (10, 20, 30)


def valid_alarm_period(period: int) -> bool:
    """Alarm (and MetricStat) periods: 10, 20, 30 or any multiple of 60 seconds."""
    return period in HIGH_RESOLUTION_PERIODS or (period >= 60 and period % 60 == 0)


def max_evaluation_s(period: int) -> int:
    """The longest Period x EvaluationPeriods: one day for periods under an hour, else seven days."""
    return ONE_DAY_S if period < 3600 else SEVEN_DAYS_S


def evaluation_interval(period: int, evaluation_periods: int) -> int:
    """How often CloudWatch evaluates a metric alarm (what DescribeAlarms may report as
    ``EvaluationInterval``): every 10 s for periods under a minute, hourly when Period x
    EvaluationPeriods exceeds one day, else every minute."""
    if period < 60:
        return 10
    if period * evaluation_periods > ONE_DAY_S:
        return 3600
    return 60


def percentile_min_samples(percentile: float) -> float | None:
    """AWS's significance rule for a percentile alarm (``EvaluateLowSampleCountPercentile``): a
    period needs at least 10/(1-p) samples for p in [0.5, 1) and 10/p for p in (0, 0.5), so 1000
    for p99 and 10000 for p99.9; None outside (0, 100). ``percentile`` is in percent (99.9)."""
    if not 0.0 < percentile < 100.0:
        return None
    p = percentile / 100.0
    # rounded, so 10/(1-0.9) is 100 and not 100.00000000000001
    return round(10.0 / (1.0 - p) if p >= 0.5 else 10.0 / p, 6)


#: comparison symbol -> ComparisonOperator (static thresholds)
COMPARISON_OPERATORS: dict[str, str] = {
    "<": "LessThanThreshold",
    "<=": "LessThanOrEqualToThreshold",
    ">": "GreaterThanThreshold",
    ">=": "GreaterThanOrEqualToThreshold",
}
#: ComparisonOperators of anomaly-detection alarms (a ThresholdMetricId band, no static threshold)
ANOMALY_COMPARISON_OPERATORS = frozenset(
    {"LessThanLowerOrGreaterThanUpperThreshold", "LessThanLowerThreshold", "GreaterThanUpperThreshold"}
)
TREAT_MISSING_DATA = ("missing", "notBreaching", "breaching", "ignore")
STATISTICS = frozenset({"SampleCount", "Average", "Sum", "Minimum", "Maximum"})
#: an ExtendedStatistic percentile, p0.0 .. p100
PERCENTILE_RE = re.compile(r"p(\d{1,3}(?:\.\d+)?)\Z")

MAX_ALARM_NAME = 255
MAX_ALARM_DESCRIPTION = 1024
#: OKActions, AlarmActions and InsufficientDataActions each
MAX_ACTIONS = 5
MAX_TAGS = 50
#: a math alarm's Metrics: at most 10 MetricStat and 10 Expression entries
MAX_METRIC_STATS = 10
MAX_EXPRESSIONS = 10
MAX_EXPRESSION_LENGTH = 2048
MAX_QUERY_ID = 255
#: a MetricDataQuery Id: a lower-case letter, then letters, digits and _
METRIC_ID_RE = re.compile(r"[a-z][A-Za-z0-9_]*\Z")

# -- metric math ------------------------------------------------------------------------------

#: the documented metric math functions an alarm's expression may call. Source: the CloudWatch
#: user guide, "Metric math syntax and functions" (using-metric-math.html, "Functions supported
#: for metric math"; awsdocs/amazon-cloudwatch-user-guide doc_source/using-metric-math.md), every
#: function of its table except SEARCH ("You can't create an alarm based on the SEARCH
#: expression", Create-alarm-on-metric-math-expression.md) and ANOMALY_DETECTION_BAND (only an
#: anomaly-detection alarm's ThresholdMetricId); DB_PERF_INSIGHTS and LAMBDA are the later
#: additions (alarms on Performance Insights metrics and on connected data sources). Not there,
#: so refused: SQRT (write x ^ 0.5) and NOT. The guide advises against AVG, MAX, MIN, SUM,
#: STDDEV, DATAPOINT_COUNT, REMOVE_EMPTY and RUNNING_SUM of one series in alarms (they read
#: more periods than EvaluationPeriods), but CloudWatch accepts them.
ALARM_MATH_FUNCTIONS = frozenset(
    {
        "ABS", "AVG", "CEIL", "DATAPOINT_COUNT", "DATE", "DAY", "DB_PERF_INSIGHTS", "DIFF", "DIFF_TIME",
        "EPOCH", "FILL", "FIRST", "FLOOR", "HOUR", "IF", "INSIGHT_RULE_METRIC", "LAMBDA", "LAST", "LOG",
        "LOG10", "MAX", "METRIC_COUNT", "METRICS", "MIN", "MINUTE", "MONTH", "PERIOD", "RATE",
        "REMOVE_EMPTY", "RUNNING_SUM", "SERVICE_QUOTA", "SLICE", "SORT", "STDDEV", "SUM", "TIME_SERIES",
        "YEAR",
    }
)
#: upper-case words of metric math that are not functions: the logical operators, FILL's
#: methods, SORT's orders ("Comparison and logical operators": AND or &&, OR or ||; no NOT)
MATH_WORDS = frozenset({"AND", "OR", "REPEAT", "LINEAR", "ASC", "DESC"})
#: the operators and punctuation of metric math (so not ``!``, which CloudWatch does not have)
MATH_OPERATORS = frozenset(
    {"+", "-", "*", "/", "^", "==", "!=", "<", "<=", ">", ">=", "&&", "||", "(", ")", "[", "]", ","}
)

# -- dashboards (PutDashboard) ----------------------------------------------------------------

DASHBOARD_NAME_RE = re.compile(r"^[A-Za-z0-9_-]{1,255}$")


def valid_graph_period(period: int) -> bool:
    """A widget's period: 1, 5, 10, 30 or any multiple of 60 seconds."""
    return period in (1, 5, 10, 30) or (period >= 60 and period % 60 == 0)
