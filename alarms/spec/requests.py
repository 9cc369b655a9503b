"""The exact PutMetricAlarm request of each spec alarm, and what CloudWatch would refuse in one.

Everything CloudWatch would refuse is refused before calling AWS (:func:`check_put_metric_alarm`):
periods other than 10, 20, 30 or a multiple of 60 (a spec refuses 10-30 s too: rollguard does not
publish the high-resolution data they need); Period x EvaluationPeriods over one day
(over seven days when the period is one hour or more); DatapointsToAlarm > EvaluationPeriods;
more than 10 MetricStat or 10 expressions in a math alarm; expressions over 2048 characters, or
using an id that is not another query's, a function or operator CloudWatch does not offer in alarms.
"""
from __future__ import annotations

import math
from collections.abc import Mapping, Sequence
from typing import Any

from alarms import math_text
from alarms.spec.expand import OWNER_TAG, OWNER_VALUE, SPEC_TAG, Alarm
from alarms.spec.expressions import expression_ids, expression_problem, math_problem
from alarms.spec.schema import CONTROL_RE, RATES, comparison_operator, evaluation_window_problem, latency_percentile
from alarms.spec.verdicts import VERDICT_EVALUATION_PERIODS, VERDICT_FAIL, VerdictAlarm
from pipelines import cloudwatch_rules as rules
from pipelines import metrics
from pipelines.comparison.config import Comparison

_LATENCY_BOUNDS = (0.0, math.inf)
#: the MetricStat id of the daemon's heartbeat in a fail-safe alarm
HEARTBEAT_ID = "alive"
#: the MetricStat id of the comparison's Verdict in a verdict alarm
VERDICT_ID = "verdict"


class AlarmLimitError(ValueError):
    """A PutMetricAlarm request CloudWatch would refuse; ``problems`` holds one line each."""

    def __init__(self, alarm_name: str, problems: Sequence[str]) -> None:
        self.problems = tuple(problems)
        super().__init__(f"alarm {alarm_name}: " + "; ".join(self.problems))


def safe_value(comparison: str, threshold: float, bounds: tuple[float, float] | None = None) -> float:
    """A value on the non-breaching side of ``threshold`` (a bound of the metric when that one is safe)."""
    comparison = comparison_operator(comparison)
    strict = comparison in ("LessThanThreshold", "GreaterThanThreshold")
    alarms_low = comparison.startswith("LessThan")
    step = max(1.0, abs(threshold))
    if alarms_low:
        if bounds is not None and math.isfinite(bounds[1]) and (bounds[1] > threshold or (strict and bounds[1] == threshold)):
            return bounds[1]
        return threshold if strict else threshold + step
    if bounds is not None and math.isfinite(bounds[0]) and (bounds[0] < threshold or (strict and bounds[0] == threshold)):
        return bounds[0]
    return threshold if strict else threshold - step


def _metric_stat(alarm: Alarm | VerdictAlarm, namespace: str, query_id: str, metric_name: str, stat: str) -> dict[str, Any]:
    return {
        "Id": query_id,
        "MetricStat": {
            "Metric": {
                "Namespace": namespace,
                "MetricName": metric_name,
                "Dimensions": [{"Name": k, "Value": v} for k, v in alarm.dimensions],
            },
            "Period": alarm.period,
            "Stat": stat,
        },
        "ReturnData": False,
    }


def _describe(alarm: Alarm) -> str:
    if alarm.description:
        return alarm.description
    what = {"rate": alarm.metric, "latency": alarm.metric, "gauge": f"gauge {alarm.metric}"}.get(
        alarm.kind, f"expression {alarm.metric}"
    )
    where = f"{alarm.endpoint}/{alarm.variant}"
    if alarm.model_version is not None:
        where += f" model {alarm.model_version}"
    if alarm.segment is not None:
        where += f" {alarm.segment[0]}={alarm.segment[1]}"
    op = {v: k for k, v in rules.COMPARISON_OPERATORS.items()}.get(alarm.comparison, alarm.comparison)
    guard = f", min {alarm.min_samples} samples" if alarm.min_samples else ""
    if alarm.fail_safe:
        guard += ", ALARM while rollguard's heartbeat is missing"
    text = (
        f"rollguard spec {alarm.spec_name}: {what} of {where} {op} {math_text.number(alarm.threshold)} in "
        f"{alarm.datapoints_to_alarm} of {alarm.evaluation_periods} periods of {alarm.period} s{guard}. "
        "Managed by rollguard: change the spec, not this alarm."
    )
    return text[: rules.MAX_ALARM_DESCRIPTION]


def to_put_metric_alarm(alarm: Alarm | VerdictAlarm, namespace: str) -> dict[str, Any]:
    """The exact PutMetricAlarm request for ``alarm``; raises AlarmLimitError when CloudWatch would refuse it.

    A comparison's verdict alarm: :func:`_verdict_request`.

    Rates, latency with a sample guard and expressions are math alarms: one MetricStat per
    id (ReturnData false) and one expression ``value`` (ReturnData true). Gauges and unguarded
    latency are single-metric alarms (Statistic / ExtendedStatistic). A fail-safe alarm is always
    metric math, with the daemon's heartbeat as one more MetricStat (:func:`_fail_safe` says why
    a period without it is missing rather than a FILLed breaching value).
    """
    if isinstance(alarm, VerdictAlarm):
        return _verdict_request(alarm, namespace)
    request: dict[str, Any] = {
        "AlarmName": alarm.name,
        "AlarmDescription": _describe(alarm),
        "ActionsEnabled": True,
        "OKActions": list(alarm.ok_actions),
        "AlarmActions": list(alarm.alarm_actions),
        "InsufficientDataActions": [],
        "EvaluationPeriods": alarm.evaluation_periods,
        "DatapointsToAlarm": alarm.datapoints_to_alarm,
        "Threshold": float(alarm.threshold),
        "ComparisonOperator": alarm.comparison,
        "TreatMissingData": alarm.treat_missing_data,
    }
    single: dict[str, Any] | None = None
    queries: list[dict[str, Any]] = []
    if alarm.kind == "rate":
        rate = RATES[alarm.metric]
        queries = [_metric_stat(alarm, namespace, i, metrics.COUNT_IDS[i], "Sum") for i in math_text.rate_ids(rate)]
        den = math_text.filled(rate.denominator)
        value = f"{math_text.filled(rate.numerator)}/" + (f"({den})" if "+" in den else den)
        safe = safe_value(alarm.comparison, alarm.threshold, rate.bounds)
        expr = math_text.guard(math_text.filled(rate.sample), alarm.min_samples, value, safe)
        queries.append({"Id": "value", "Expression": expr, "Label": rate.label, "ReturnData": True})
    elif alarm.kind == "latency":
        pct = latency_percentile(alarm.metric)
        if pct is None:
            raise AlarmLimitError(alarm.name, [f"unknown latency metric {alarm.metric!r}"])
        if alarm.min_samples == 0:
            single = {"Namespace": namespace, "MetricName": metrics.LATENCY, "ExtendedStatistic": f"p{pct}"}
        else:
            queries = [
                _metric_stat(alarm, namespace, "latency", metrics.LATENCY, f"p{pct}"),
                _metric_stat(alarm, namespace, "samples", metrics.LATENCY, "SampleCount"),
            ]
            safe = safe_value(alarm.comparison, alarm.threshold, _LATENCY_BOUNDS)
            expr = math_text.guard("samples", alarm.min_samples, "latency", safe)
            queries.append({"Id": "value", "Expression": expr, "Label": f"p{pct} latency (ms)", "ReturnData": True})
    elif alarm.kind == "expression":
        problem = expression_problem(alarm.metric) or (expression_problem(alarm.sample) if alarm.sample else None)
        if problem:
            raise AlarmLimitError(alarm.name, [f"expression: {problem}"])
        ids = list(expression_ids(alarm.metric))
        if alarm.sample:
            ids += [i for i in expression_ids(alarm.sample) if i not in ids]
        queries = [_metric_stat(alarm, namespace, i, metrics.COUNT_IDS[i], "Sum") for i in ids]
        if alarm.min_samples and alarm.sample:
            safe = safe_value(alarm.comparison, alarm.threshold)
            expr = math_text.guard(f"({alarm.sample})", alarm.min_samples, f"({alarm.metric})", safe)
        else:
            expr = alarm.metric
        queries.append({"Id": "value", "Expression": expr, "Label": alarm.short_name, "ReturnData": True})
    else:
        single = {"Namespace": namespace, "MetricName": alarm.metric, "Statistic": alarm.statistic or "Average"}
    if alarm.fail_safe:
        queries, single = _fail_safe(alarm, namespace, queries, single), None
    if alarm.evaluate_low_sample_count_percentile is not None:
        request["EvaluateLowSampleCountPercentile"] = alarm.evaluate_low_sample_count_percentile
    if single is not None:
        single["Dimensions"] = [{"Name": k, "Value": v} for k, v in alarm.dimensions]
        single["Period"] = alarm.period
        request.update(single)
    else:
        request["Metrics"] = queries
    return _checked(request, alarm)


def _checked(request: dict[str, Any], alarm: Alarm | VerdictAlarm) -> dict[str, Any]:
    """``request`` with the owner tags, once CloudWatch would take it (else AlarmLimitError)."""
    request["Tags"] = [
        {"Key": OWNER_TAG, "Value": OWNER_VALUE},
        {"Key": SPEC_TAG, "Value": alarm.spec_name},
    ]
    problems = check_put_metric_alarm(request)
    if problems:
        raise AlarmLimitError(alarm.name, problems)
    return request


def _verdict_request(alarm: VerdictAlarm, namespace: str) -> dict[str, Any]:
    """The verdict alarm: ALARM when the comparison's ``Verdict`` (Maximum over 60 s) is FAIL
    (>= 2) in 1 of 1 periods, and when the verdict or the daemon's heartbeat is missing.

    ``IF(alive > 0 AND verdict >= 0, verdict)`` with TreatMissingData breaching: a value only
    where both the verdict and the heartbeat are. The verdict alone already breaches when it
    stops (the daemon publishes it every tick, whatever the traffic); the heartbeat adds a daemon
    that still publishes verdicts from frozen counts but is not ready (a lost feed). The shorter
    ``IF(alive > 0, verdict)`` would be wrong: CloudWatch reads a true point whose value series
    lacks that timestamp as 0, i.e. PASS, so a live daemon that stopped judging would read OK.
    The AND is 1 only where both series have a point (a missing side reads as 0 in a
    comparison, and CloudWatch drops a false point without an else), whichever way CloudWatch
    aligns the two series. The newest periods, whose heartbeat is still on its way, are missing
    and skipped for the most recent period with data, as in every fail-safe alarm (`_fail_safe`).
    """
    verdict = _metric_stat(alarm, namespace, VERDICT_ID, metrics.VERDICT, "Maximum")
    expr = f"IF({HEARTBEAT_ID} > 0 AND {VERDICT_ID} >= 0, {VERDICT_ID})"
    request: dict[str, Any] = {
        "AlarmName": alarm.name,
        "AlarmDescription": _describe_verdict(alarm),
        "ActionsEnabled": True,
        "OKActions": list(alarm.ok_actions),
        "AlarmActions": list(alarm.alarm_actions),
        "InsufficientDataActions": [],
        "EvaluationPeriods": VERDICT_EVALUATION_PERIODS,
        "DatapointsToAlarm": VERDICT_EVALUATION_PERIODS,
        "Threshold": VERDICT_FAIL,
        "ComparisonOperator": "GreaterThanOrEqualToThreshold",
        "TreatMissingData": "breaching",
        "Metrics": [
            verdict,
            _heartbeat(namespace, alarm.period),
            {"Id": "value", "Expression": expr, "Label": "verdict (0 pass, 1 inconclusive, 2 fail)", "ReturnData": True},
        ],
    }
    return _checked(request, alarm)


def _describe_verdict(alarm: VerdictAlarm) -> str:
    if alarm.description:
        return alarm.description
    c = alarm.comparison
    where = f", pooled or in a {' or '.join(c.segments)} segment" if c.segments else ""
    text = (
        f"rollguard spec {alarm.spec_name}, comparison {c.name} on {c.endpoint}: ALARM on FAIL (Verdict 2) and "
        "while the Verdict or rollguard's heartbeat is missing; OK on PASS (0) and INCONCLUSIVE (1). "
        f"FAIL: candidate {c.candidate} worse than baseline {c.baseline} by more than the tolerance "
        f"({_tolerances(c)}) on some metric{where}, at confidence {100 * (1 - c.alpha):.6g} % (alpha "
        f"{math_text.number(c.alpha)}). Managed by rollguard: change the spec, not this alarm."
    )
    return text[: rules.MAX_ALARM_DESCRIPTION]


def _tolerances(c: Comparison) -> str:
    parts = []
    for m in c.metrics:
        name = m.name if m.threshold_ms is None else f"{m.name} {math_text.number(m.threshold_ms)} ms"
        parts.append(f"{name} {math_text.number(m.tolerance)}")
    return ", ".join(parts)


def _heartbeat(namespace: str, period: int) -> dict[str, Any]:
    """The daemon's heartbeat as a fail-safe alarm reads it: the Sum of `pipelines.metrics.HEARTBEAT`."""
    return {
        "Id": HEARTBEAT_ID,
        "MetricStat": {"Metric": {"Namespace": namespace, "MetricName": metrics.HEARTBEAT}, "Period": period, "Stat": "Sum"},
        "ReturnData": False,
    }


def _fail_safe(
    alarm: Alarm, namespace: str, queries: list[dict[str, Any]], single: dict[str, Any] | None
) -> list[dict[str, Any]]:
    """The fail-safe form: the value only where the daemon's heartbeat is, missing elsewhere.

    ``IF(alive > 0, value)`` with ``alive`` the Sum of `pipelines.metrics.HEARTBEAT` (published
    for each tick bucket an instance has completed, `pipelines.heartbeat`) and TreatMissingData
    breaching (set by the spec): with no heartbeat at all every period is missing and breaching,
    so the alarm goes to ALARM; the newest periods, whose heartbeat and counts are still on their
    way, are missing too, and CloudWatch evaluates the most recent N periods that have data
    instead of a FILLed, incomplete one (as long as the evaluation range, N + 2 periods in the
    documented examples, holds them: a lag of up to two periods). A FILLed breaching value,
    ``IF(FILL(alive, 0) > 0, value, breach)``, would instead make those in-flight periods breach
    at every evaluation, and roll a healthy deploy back. A value that can itself be missing while the daemon is
    up (a gauge below its sample size, no latency samples, a user expression) is FILLed with the
    safe value first, so only a missing heartbeat can breach. A single-metric alarm (gauge,
    unguarded latency) becomes metric math over the same statistic.
    """
    safe = safe_value(alarm.comparison, alarm.threshold, _LATENCY_BOUNDS if alarm.kind == "latency" else None)
    if single is not None:
        stat = single.get("ExtendedStatistic") or single["Statistic"]
        query_id = "latency" if alarm.kind == "latency" else "gauge"
        label = f"{stat} latency (ms)" if alarm.kind == "latency" else alarm.metric
        queries = [
            _metric_stat(alarm, namespace, query_id, single["MetricName"], stat),
            {"Id": "value", "Expression": query_id, "Label": label, "ReturnData": True},
        ]
    *stats, value = queries
    if len(stats) + 1 > rules.MAX_METRIC_STATS:
        raise AlarmLimitError(alarm.name, [
            f"a fail-safe alarm also reads the {metrics.HEARTBEAT} metric, so it may read at most "
            f"{rules.MAX_METRIC_STATS - 1} count ids; this one reads {len(stats)} (or set fail_safe: false)"
        ])
    expr = str(value["Expression"])
    if alarm.kind != "rate":  # a rate's counts are FILLed: it has a value in every period
        expr = f"FILL({expr}, {math_text.number(safe)})"
    return [*stats, _heartbeat(namespace, alarm.period), {**value, "Expression": f"IF({HEARTBEAT_ID} > 0, {expr})"}]


def check_put_metric_alarm(request: Mapping[str, Any]) -> list[str]:
    """What CloudWatch would refuse in a PutMetricAlarm request, one line each (empty: fine)."""
    problems: list[str] = []
    name = str(request.get("AlarmName", ""))
    if not 1 <= len(name) <= rules.MAX_ALARM_NAME:
        problems.append(f"AlarmName must be 1-{rules.MAX_ALARM_NAME} characters; it is {len(name)}")
    if CONTROL_RE.search(name):
        problems.append("AlarmName must not contain control characters")
    if len(str(request.get("AlarmDescription", ""))) > rules.MAX_ALARM_DESCRIPTION:
        problems.append(f"AlarmDescription must be at most {rules.MAX_ALARM_DESCRIPTION} characters")
    for key in ("OKActions", "AlarmActions", "InsufficientDataActions"):
        if len(request.get(key, ())) > rules.MAX_ACTIONS:
            problems.append(f"{key} may list at most {rules.MAX_ACTIONS} actions")
    if len(request.get("Tags", ())) > rules.MAX_TAGS:
        problems.append(f"an alarm may have at most {rules.MAX_TAGS} tags")
    threshold = request.get("Threshold")
    if not isinstance(threshold, (int, float)) or not math.isfinite(threshold):
        problems.append(f"Threshold must be a finite number; got {threshold!r}")
    n = request.get("EvaluationPeriods")
    m = request.get("DatapointsToAlarm", n)
    if not isinstance(n, int) or n < 1:
        problems.append(f"EvaluationPeriods must be an integer >= 1; got {n!r}")
        n = None
    if not isinstance(m, int) or m < 1:
        problems.append(f"DatapointsToAlarm must be an integer >= 1; got {m!r}")
    elif n is not None and m > n:
        problems.append(f"DatapointsToAlarm ({m}) must not exceed EvaluationPeriods ({n})")
    queries = request.get("Metrics")
    periods: list[int] = []
    if queries:
        if any(k in request for k in ("MetricName", "Namespace", "Dimensions", "Period", "Statistic", "ExtendedStatistic", "Unit")):
            problems.append("a math alarm (Metrics) must not also set MetricName, Namespace, Dimensions, Period, Statistic, ExtendedStatistic or Unit")
        stats = [q for q in queries if "MetricStat" in q]
        exprs = [q for q in queries if "Expression" in q]
        if len(stats) > rules.MAX_METRIC_STATS:
            problems.append(
                f"a math alarm may read at most {rules.MAX_METRIC_STATS} metrics (MetricStat); this one reads {len(stats)}"
            )
        if len(exprs) > rules.MAX_EXPRESSIONS:
            problems.append(f"a math alarm may have at most {rules.MAX_EXPRESSIONS} expressions; this one has {len(exprs)}")
        returning = [q for q in queries if q.get("ReturnData", True)]
        if len(returning) != 1:
            problems.append(f"exactly one Metrics entry must have ReturnData true; {len(returning)} do")
        ids = [str(q.get("Id", "")) for q in queries]
        for query_id in ids:
            if not rules.METRIC_ID_RE.match(query_id):
                problems.append(f"metric id {query_id!r} must start with a lower-case letter and use only letters, digits and _")
        if len(set(ids)) != len(ids):
            problems.append("metric ids must be unique")
        for q in exprs:
            limit = rules.MAX_EXPRESSION_LENGTH
            if not 1 <= len(q["Expression"]) <= limit:
                problems.append(f"expression {q['Id']} is {len(q['Expression'])} characters; CloudWatch allows 1-{limit}")
                continue
            problem = math_problem(str(q["Expression"]), [i for i in ids if i != q.get("Id")])
            if problem:
                problems.append(f"expression {q['Id']}: {problem}")
        for q in stats:
            periods.append(int(q["MetricStat"].get("Period", 0)))
    else:
        if "MetricName" not in request or "Namespace" not in request:
            problems.append("set Metrics, or MetricName and Namespace")
        if ("Statistic" in request) == ("ExtendedStatistic" in request):
            problems.append("set exactly one of Statistic and ExtendedStatistic")
        periods.append(int(request.get("Period", 0)))
    for period in sorted(set(periods)):
        if not rules.valid_alarm_period(period):
            problems.append(f"period must be 10, 20, 30 or a multiple of 60 seconds; got {period}")
        elif isinstance(n, int):
            problem = evaluation_window_problem(period, n)
            if problem:
                problems.append(problem)
    return problems
