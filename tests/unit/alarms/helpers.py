"""Builders shared by the alarm tests: alarms as PutMetricAlarm requests, data as MetricDatum."""
from __future__ import annotations

from typing import Any

from alarms.evaluator import Alarm, Datum

# A minute-aligned instant, so evaluation windows end exactly here.
END = 1_700_000_400
assert END % 3600 != 0 and END % 60 == 0


def single_request(**overrides: Any) -> dict[str, Any]:
    """A valid single-metric PutMetricAlarm request; keyword arguments replace or drop (None) fields."""
    request: dict[str, Any] = {
        "AlarmName": "fraud-ep-errors",
        "Namespace": "Rollguard",
        "MetricName": "Errors",
        "Dimensions": [{"Name": "EndpointName", "Value": "fraud-ep"}],
        "Statistic": "Maximum",
        "Period": 300,
        "EvaluationPeriods": 3,
        "DatapointsToAlarm": 3,
        "Threshold": 0.5,
        "ComparisonOperator": "GreaterThanThreshold",
        "TreatMissingData": "missing",
    }
    for key, value in overrides.items():
        if value is None:
            request.pop(key, None)
        else:
            request[key] = value
    return request


def single_alarm(**overrides: Any) -> Alarm:
    return Alarm.from_request(single_request(**overrides))


def metric_stat(query_id: str, name: str, period: int = 60, stat: str = "Sum", return_data: bool = False) -> dict[str, Any]:
    return {
        "Id": query_id,
        "MetricStat": {
            "Metric": {"Namespace": "Rollguard", "MetricName": name, "Dimensions": [{"Name": "EndpointName", "Value": "fraud-ep"}]},
            "Period": period,
            "Stat": stat,
        },
        "ReturnData": return_data,
    }


def math_request(expression: str, *metrics: dict[str, Any], **overrides: Any) -> dict[str, Any]:
    """A metric-math alarm whose single ReturnData item is ``e1 = expression``."""
    request: dict[str, Any] = {
        "AlarmName": "fraud-ep-precision",
        "EvaluationPeriods": 3,
        "DatapointsToAlarm": 2,
        "Threshold": 0.8,
        "ComparisonOperator": "LessThanThreshold",
        "TreatMissingData": "notBreaching",
        "Metrics": [*metrics, {"Id": "e1", "Expression": expression, "ReturnData": True}],
    }
    request.update(overrides)
    return request


def value(at: float, v: float) -> Datum:
    return Datum(at, (v,), (1.0,))
