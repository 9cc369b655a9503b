"""What PutMetricAlarm rejects is rejected here (API reference: Period, EvaluationPeriods,
DatapointsToAlarm, Metrics; user guide: "A math expression used for an alarm can include as many
as 10 metrics. Each metric must be using the same period.")."""
from __future__ import annotations

from typing import Any

import pytest

from alarms.evaluator import Alarm, AlarmConfigError
from tests.unit.alarms.helpers import math_request, metric_stat, single_alarm, single_request


@pytest.mark.parametrize("period", [10, 20, 30, 60, 120, 300, 3600, 86400])
def test_valid_periods(period: int) -> None:
    assert single_alarm(Period=period, EvaluationPeriods=1, DatapointsToAlarm=1).period == period


@pytest.mark.parametrize("period", [1, 5, 15, 45, 90, 100, 0, -60])
def test_invalid_periods(period: int) -> None:
    with pytest.raises(AlarmConfigError, match=r"10, 20, 30 or a multiple of 60"):
        single_alarm(Period=period, EvaluationPeriods=1, DatapointsToAlarm=1)


@pytest.mark.parametrize(
    ("period", "evaluation_periods", "ok"),
    [
        (60, 1440, True),  # exactly one day
        (60, 1441, False),
        (300, 288, True),
        (300, 289, False),
        (10, 8640, True),
        (10, 8641, False),
        (1800, 49, False),  # under an hour: still one day
        (3600, 168, True),  # an hour or more: seven days
        (3600, 169, False),
        (86400, 7, True),
        (86400, 8, False),
    ],
)
def test_period_times_evaluation_periods_limit(period: int, evaluation_periods: int, ok: bool) -> None:
    request = single_request(Period=period, EvaluationPeriods=evaluation_periods, DatapointsToAlarm=1)
    if ok:
        Alarm.from_request(request)
    else:
        with pytest.raises(AlarmConfigError, match="exceeds"):
            Alarm.from_request(request)


def test_datapoints_to_alarm_defaults_to_evaluation_periods_and_cannot_exceed_it() -> None:
    assert single_alarm(EvaluationPeriods=4, DatapointsToAlarm=None).datapoints_to_alarm == 4
    with pytest.raises(AlarmConfigError, match=r"DatapointsToAlarm \(4\) can't be greater than EvaluationPeriods \(3\)"):
        single_alarm(DatapointsToAlarm=4)
    with pytest.raises(AlarmConfigError, match="at least 1"):
        single_alarm(EvaluationPeriods=0, DatapointsToAlarm=None)


def test_treat_missing_data_defaults_to_missing() -> None:
    assert single_alarm(TreatMissingData=None).treat_missing_data == "missing"


@pytest.mark.parametrize(
    ("overrides", "fragment"),
    [
        ({"TreatMissingData": "zero"}, "TreatMissingData"),
        ({"ComparisonOperator": "GreaterThan"}, "ComparisonOperator"),
        ({"ComparisonOperator": "LessThanLowerOrGreaterThanUpperThreshold"}, "anomaly-detection"),
        ({"ComparisonOperator": "GreaterThanUpperThreshold"}, "anomaly-detection"),
        ({"Threshold": None}, "Threshold: required"),
        ({"Statistic": "p99"}, "ExtendedStatistic"),
        ({"Statistic": None}, "exactly one of Statistic or ExtendedStatistic"),
        ({"ExtendedStatistic": "p99"}, "exactly one of Statistic or ExtendedStatistic"),
        ({"Statistic": None, "ExtendedStatistic": "p101"}, "between p0.0 and p100"),
        ({"Statistic": None, "ExtendedStatistic": "tm99"}, "not simulated"),
        ({"MetricName": None}, "MetricName: required"),
        ({"Namespace": None}, "Namespace: required"),
        ({"Period": None}, "Period: required"),
        ({"EvaluationPeriods": "3"}, "EvaluationPeriods: Input should be a valid integer"),
        ({"AlarmName": None}, "AlarmName: Field required"),
        ({"Colour": "red"}, "Colour: unknown parameter"),
        ({"EvaluateLowSampleCountPercentile": "skip"}, "evaluate, ignore"),
    ],
)
def test_single_metric_alarm_errors(overrides: dict[str, Any], fragment: str) -> None:
    with pytest.raises(AlarmConfigError) as info:
        single_alarm(**overrides)
    assert fragment in str(info.value)
    assert "\n" not in str(info.value)


def test_math_alarm_with_ten_metrics_is_fine_eleven_is_not() -> None:
    ten = [metric_stat(f"m{i}", f"Metric{i}") for i in range(10)]
    Alarm.from_request(math_request(" + ".join(f"m{i}" for i in range(10)), *ten))
    eleven = [metric_stat(f"m{i}", f"Metric{i}") for i in range(11)]
    with pytest.raises(AlarmConfigError, match="at most 10 metrics"):
        Alarm.from_request(math_request(" + ".join(f"m{i}" for i in range(11)), *eleven))


def _queries(*items: dict[str, Any]) -> dict[str, Any]:
    return {
        "AlarmName": "a",
        "EvaluationPeriods": 3,
        "Threshold": 1,
        "ComparisonOperator": "GreaterThanThreshold",
        "Metrics": list(items),
    }


def test_exactly_one_return_data() -> None:
    tp = metric_stat("tp", "TruePositives")
    with pytest.raises(AlarmConfigError, match="exactly one element must have ReturnData true, got 0"):
        Alarm.from_request(_queries(tp, {"Id": "e1", "Expression": "tp * 2", "ReturnData": False}))
    with pytest.raises(AlarmConfigError, match="got 2"):
        # ReturnData omitted means true
        Alarm.from_request(_queries({**tp, "ReturnData": True}, {"Id": "e1", "Expression": "tp * 2"}))
    alarm = Alarm.from_request(_queries(tp, {"Id": "e1", "Expression": "tp * 2"}))
    assert alarm.return_id == "e1" and alarm.is_math and alarm.data_keys == ("tp",)


def test_a_metric_stat_can_be_the_returned_item() -> None:
    alarm = Alarm.from_request(_queries({**metric_stat("errors", "Errors"), "ReturnData": True}))
    assert alarm.return_id == "errors" and alarm.period == 60


@pytest.mark.parametrize(
    ("request_", "fragment"),
    [
        (
            {**math_request("tp", metric_stat("tp", "TruePositives")), "MetricName": "Errors"},
            "Metrics can't be combined with MetricName",
        ),
        (math_request("tp + fn", metric_stat("tp", "TruePositives")), "unknown id 'fn'"),
        (math_request("tp +", metric_stat("tp", "TruePositives")), "position 4"),
        (math_request("MAX(tp)", metric_stat("tp", "TruePositives")), "must return one time series, not a scalar"),
        (math_request("[tp, tp]", metric_stat("tp", "TruePositives")), "not an array of time series"),
        (
            math_request("tp + fp", metric_stat("tp", "TruePositives"), metric_stat("fp", "FalsePositives", period=300)),
            "same Period",
        ),
        (math_request("tp", metric_stat("tp", "TruePositives", period=45)), "not a valid alarm period"),
        (math_request("tp", metric_stat("tp", "TruePositives", stat="IQM")), "'IQM' is not supported"),
        (math_request("tp", metric_stat("Tp", "TruePositives")), "must start with a lowercase letter"),
        (math_request("tp", metric_stat("tp", "A"), metric_stat("tp", "B")), "used twice"),
        (math_request("1 + 1", metric_stat("tp", "TruePositives")), "not a scalar"),
    ],
)
def test_math_alarm_errors(request_: dict[str, Any], fragment: str) -> None:
    with pytest.raises(AlarmConfigError) as info:
        Alarm.from_request(request_)
    assert fragment in str(info.value)


def test_expressions_referring_to_each_other_in_a_cycle() -> None:
    request = _queries(
        metric_stat("tp", "TruePositives"),
        {"Id": "a", "Expression": "b + tp", "ReturnData": False},
        {"Id": "b", "Expression": "a + tp"},
    )
    with pytest.raises(AlarmConfigError, match="cycle"):
        Alarm.from_request(request)


def test_evaluation_cadence() -> None:
    assert single_alarm(Period=60).cadence == 60
    assert single_alarm(Period=10, EvaluationPeriods=1, DatapointsToAlarm=1).cadence == 10
    assert single_alarm(Period=3600, EvaluationPeriods=25, DatapointsToAlarm=1).cadence == 3600  # multi-day
    assert single_alarm(Period=3600, EvaluationPeriods=24, DatapointsToAlarm=1).cadence == 60
