"""Evaluating alarms over time: windows, cadence, math alarms, low samples, timelines."""
from __future__ import annotations

from datetime import datetime, timezone

import pytest

from alarms.evaluator import (
    Alarm,
    AlarmConfigError,
    Datum,
    State,
    Transition,
    decide,
    evaluate,
    parse_time,
    timeline,
)
from tests.unit.alarms.helpers import END, math_request, metric_stat, single_alarm, value


def utc(text: str) -> float:
    return parse_time(text)


def test_windows_slide_every_minute() -> None:
    # User guide: "if the Period is 5 minutes (300 seconds) and Evaluation Periods is 1, then at the
    # end of minute 5 the alarm evaluates based on data from minutes 1 to 5. Then at the end of
    # minute 6, the alarm is evaluated based on the data from minutes 2 to 6."
    alarm = single_alarm(Period=300, EvaluationPeriods=1, DatapointsToAlarm=1, TreatMissingData="notBreaching")
    minute_1 = value(utc("2026-11-21T09:01:30Z"), 10.0)
    later = tuple(value(utc(f"2026-11-21T09:0{m}:30Z"), 0.0) for m in range(2, 7))
    data = {"Errors": (minute_1, *later)}
    at_end_of_minute_5 = evaluate(alarm, data, "2026-11-21T09:06:00Z", State.OK)
    assert at_end_of_minute_5.state is State.ALARM
    assert at_end_of_minute_5.evaluated[-1].start == utc("2026-11-21T09:01:00Z")
    assert evaluate(alarm, data, "2026-11-21T09:07:00Z", State.ALARM).state is State.OK


def test_evaluation_time_is_truncated_to_the_minute() -> None:
    alarm = single_alarm(Period=60, EvaluationPeriods=1, DatapointsToAlarm=1)
    data = {"Errors": (value(utc("2026-11-21T09:05:10Z"), 1.0),)}
    # at 09:05:59 the minute 09:05 is not over, so it is not evaluated yet
    early = evaluate(alarm, data, "2026-11-21T09:05:59Z")
    assert early.at == utc("2026-11-21T09:05:00Z")
    assert early.state is State.INSUFFICIENT_DATA
    assert evaluate(alarm, data, "2026-11-21T09:06:05Z").state is State.ALARM


def test_multi_day_alarm_is_evaluated_hourly_on_data_up_to_the_hour() -> None:
    # User guide, "Example of evaluating a multi-day alarm": the job fails at 10:02, the 10:03
    # evaluation stays OK (data only up to 10:00), 11:03 goes to ALARM, the fix at 11:43 is seen
    # at 12:03 and the alarm returns to OK.
    alarm = single_alarm(
        MetricName="JobFailed",
        Statistic="Minimum",
        Period=86400,
        EvaluationPeriods=2,
        DatapointsToAlarm=1,
        Threshold=0,
        TreatMissingData="notBreaching",
    )
    assert alarm.cadence == 3600
    data = {"JobFailed": (value(utc("2026-11-21T10:02:00Z"), 1.0), value(utc("2026-11-21T11:43:00Z"), 0.0))}
    assert evaluate(alarm, data, "2026-11-21T10:03:00Z", State.OK).state is State.OK
    assert evaluate(alarm, data, "2026-11-21T11:03:00Z", State.OK).state is State.ALARM
    assert evaluate(alarm, data, "2026-11-21T12:03:00Z", State.ALARM).state is State.OK


def test_high_resolution_alarm_every_ten_seconds() -> None:
    alarm = single_alarm(Period=10, EvaluationPeriods=1, DatapointsToAlarm=1)
    high = Datum(utc("2026-11-21T09:00:15Z"), (1.0,), (1.0,), storage_resolution=1)
    assert evaluate(alarm, {"Errors": (high,)}, "2026-11-21T09:00:21Z").state is State.ALARM
    # standard-resolution data is stored by the minute, so only the :00 window ever sees it
    standard = Datum(utc("2026-11-21T09:00:15Z"), (1.0,), (1.0,))
    seen = evaluate(alarm, {"Errors": (standard,)}, "2026-11-21T09:00:21Z").evaluated
    assert [p.start for p in seen if p.value is not None] == [utc("2026-11-21T09:00:00Z")]


def test_every_comparison_operator_and_threshold_equality() -> None:
    data = {"Errors": (value(END - 30, 0.5),)}
    cases = {
        "GreaterThanThreshold": State.OK,
        "GreaterThanOrEqualToThreshold": State.ALARM,
        "LessThanThreshold": State.OK,
        "LessThanOrEqualToThreshold": State.ALARM,
    }
    for operator, expected in cases.items():
        alarm = single_alarm(Period=60, EvaluationPeriods=1, DatapointsToAlarm=1, ComparisonOperator=operator)
        assert evaluate(alarm, data, END).state is expected, operator


def test_statistics_of_a_period() -> None:
    data = {"Errors": (value(END - 50, 2.0), value(END - 40, 8.0), Datum(END - 30, (1.0, 100.0), (8.0, 2.0)))}
    expected = {"Sum": 218.0, "Average": 218.0 / 12, "SampleCount": 12.0, "Minimum": 1.0, "Maximum": 100.0}
    for statistic, want in expected.items():
        alarm = single_alarm(Period=60, EvaluationPeriods=1, DatapointsToAlarm=1, Statistic=statistic)
        assert evaluate(alarm, data, END).evaluated[-1].value == pytest.approx(want), statistic


def test_percentile_alarm_low_sample_count() -> None:
    # p99 needs 10 / (1 - 0.99) = 1000 samples before an "ignore" alarm will change state
    data = {"Errors": (Datum(END - 30, (1.0, 50.0), (900.0, 99.0)),)}  # p99 = 50 from 999 samples
    evaluate_anyway = single_alarm(
        Period=60, EvaluationPeriods=1, DatapointsToAlarm=1, Statistic=None, ExtendedStatistic="p99", Threshold=10
    )
    assert evaluate(evaluate_anyway, data, END, State.OK).state is State.ALARM
    ignore = single_alarm(
        Period=60,
        EvaluationPeriods=1,
        DatapointsToAlarm=1,
        Statistic=None,
        ExtendedStatistic="p99",
        Threshold=10,
        EvaluateLowSampleCountPercentile="ignore",
    )
    low = evaluate(ignore, data, END, State.OK)
    assert low.state is State.OK and "Low sample count" in low.reason
    enough = {"Errors": (Datum(END - 30, (1.0, 50.0), (900.0, 100.0)),)}
    assert evaluate(ignore, enough, END, State.OK).state is State.ALARM
    # p10 needs 10 / 0.1 = 100 samples
    p10 = single_alarm(
        Period=60, EvaluationPeriods=1, DatapointsToAlarm=1, Statistic=None, ExtendedStatistic="p10",
        Threshold=0.5, EvaluateLowSampleCountPercentile="ignore",
    )
    assert evaluate(p10, {"Errors": (Datum(END - 30, (1.0,), (99.0,)),)}, END, State.OK).state is State.OK
    assert evaluate(p10, {"Errors": (Datum(END - 30, (1.0,), (100.0,)),)}, END, State.OK).state is State.ALARM


def _precision_alarm() -> Alarm:
    return Alarm.from_request(
        math_request(
            "IF(tp + fp >= 10, tp / (tp + fp), 1)",
            metric_stat("tp", "TruePositives"),
            metric_stat("fp", "FalsePositives"),
        )
    )


def test_math_alarm_precision_with_guard() -> None:
    alarm = _precision_alarm()  # 2 of 3 one-minute periods below 0.8 -> ALARM
    minute = lambda k: END - k * 60 + 5  # noqa: E731  inside the k-th most recent minute
    data = {
        "tp": (value(minute(3), 9), value(minute(2), 5), value(minute(1), 1)),
        "fp": (value(minute(3), 1), value(minute(2), 5), value(minute(1), 3)),
    }
    result = evaluate(alarm, data, END + 1, State.OK)
    # 9/10 = 0.9 (fine), 5/10 = 0.5 (breaching), 1 + 3 < 10 -> guarded to 1 (fine): 1 of 3 -> OK
    assert [p.value for p in result.evaluated[-3:]] == [0.9, 0.5, 1.0]
    assert result.state is State.OK
    data["fp"] = (value(minute(3), 1), value(minute(2), 5), value(minute(1), 9))
    result = evaluate(alarm, data, END + 1, State.OK)
    assert [p.value for p in result.evaluated[-3:]] == [0.9, 0.5, 0.1]
    assert result.state is State.ALARM
    assert "2 out of the last 3 datapoints" in result.reason


def test_math_alarm_with_fill_never_sees_missing_data() -> None:
    alarm = Alarm.from_request(
        math_request(
            "FILL(errors, 0) / FILL(calls, 1)",
            metric_stat("errors", "Errors"),
            metric_stat("calls", "Invocations"),
            ComparisonOperator="GreaterThanThreshold",
            Threshold=0.1,
            TreatMissingData="missing",
        )
    )
    result = evaluate(alarm, {}, END)
    assert result.state is State.OK
    assert all(p.value == 0.0 for p in result.evaluated)


def test_timeline_reports_each_state_change() -> None:
    alarm = single_alarm(Period=60, EvaluationPeriods=3, DatapointsToAlarm=2, TreatMissingData="notBreaching")
    start = utc("2026-11-21T09:00:00Z")
    data = {"Errors": tuple(value(start + 60 * k + 5, v) for k, v in enumerate([0, 1, 1, 0, 0, 0]))}
    changes = timeline(alarm, data, start, start + 600)
    assert changes == (
        Transition(int(start), State.INSUFFICIENT_DATA, State.OK, changes[0].reason),
        Transition(int(start) + 180, State.OK, State.ALARM, changes[1].reason),
        Transition(int(start) + 300, State.ALARM, State.OK, changes[2].reason),
    )
    # a coarser step can skip the short ALARM episode entirely
    assert [c.state for c in timeline(alarm, data, start, start + 600, step=600)] == [State.OK]


def test_timeline_accepts_datetimes_and_iso_strings() -> None:
    alarm = single_alarm(Period=60, EvaluationPeriods=1, DatapointsToAlarm=1, TreatMissingData="breaching")
    start = datetime(2026, 11, 21, 9, 0, tzinfo=timezone.utc)
    changes = timeline(alarm, {}, start, "2026-11-21T09:03:00Z", initial_state=State.OK)
    assert [(c.timestamp, c.state) for c in changes] == [(int(start.timestamp()), State.ALARM)]


def test_evaluation_range_can_reach_further_back() -> None:
    alarm = single_alarm(TreatMissingData="missing")  # 3 of 3, 5-minute periods
    data = {"Errors": tuple(value(END - k * 300 + 5, 1.0) for k in (8, 7, 6))}  # older than 5 periods
    assert evaluate(alarm, data, END).state is State.INSUFFICIENT_DATA  # the default range (5) sees none
    assert evaluate(alarm, data, END, evaluation_range=8).state is State.ALARM
    with pytest.raises(AlarmConfigError, match="shorter than EvaluationPeriods"):
        evaluate(alarm, data, END, evaluation_range=2)


def test_decide_directly() -> None:
    d = decide([False, None, True, None, None], 3, 2, "breaching", State.OK)
    assert d.state is State.ALARM and d.used == (0, 2) and d.filled == (4,)
    d = decide([None, None, True, None, None], 3, 3, "ignore", State.ALARM)
    assert d.state is State.ALARM and d.rule == "retained"
    d = decide([True, True, None, None, None], 3, 3, "missing", State.OK)
    assert d.state is State.ALARM and d.rule == "premature"
