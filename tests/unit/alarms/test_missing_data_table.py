"""Every row of AWS's missing-data example tables, in all four TreatMissingData modes.

Source: Amazon CloudWatch User Guide, "Configuring how CloudWatch alarms treat missing data"
(page alarms-and-missing-data, section "How alarm state is evaluated when data is missing",
and "Avoiding premature transitions to alarm state"). In those tables the Period is 5 minutes,
EvaluationPeriods is 3 and the evaluation range is 5; data points are written oldest first,
"0 is a non-breaching data point, X is a breaching data point, and - is a missing data point".
The second column is "the number of data points that must be filled in".

Each row is checked end to end: the pattern becomes real MetricDatum values in real 5-minute
windows, and the alarm is evaluated at the end of the newest window.
"""
from __future__ import annotations

import pytest

from alarms.evaluator import Datum, State, evaluate
from tests.unit.alarms.helpers import END, single_alarm, value

RETAIN = "Retain current state"
MODES = ("missing", "ignore", "breaching", "notBreaching")
PERIOD = 300

# (Data points, # of data points that must be filled, MISSING, IGNORE, BREACHING, NOT BREACHING)
# First table: Datapoints to Alarm 3, Evaluation Periods 3.
THREE_OF_THREE = [
    ("0 - X - X", 0, "OK", "OK", "OK", "OK"),
    ("0 - - - -", 2, "OK", "OK", "OK", "OK"),
    ("- - - - -", 3, "INSUFFICIENT_DATA", RETAIN, "ALARM", "OK"),
    ("0 X X - X", 0, "ALARM", "ALARM", "ALARM", "ALARM"),
    ("- - X - -", 2, "ALARM", RETAIN, "ALARM", "OK"),
]
# Second table: "Datapoints to Alarm is only 2 while Evaluation Periods is 3".
TWO_OF_THREE = [
    ("0 - X - X", 0, "ALARM", "ALARM", "ALARM", "ALARM"),
    ("0 0 X 0 X", 0, "ALARM", "ALARM", "ALARM", "ALARM"),
    ("0 - X - -", 1, "OK", "OK", "ALARM", "OK"),
    ("- - - - 0", 2, "OK", "OK", "ALARM", "OK"),
    ("- - - X -", 2, "ALARM", RETAIN, "ALARM", "OK"),
]
# Rows from earlier revisions of the same page (awsdocs/amazon-cloudwatch-user-guide,
# doc_source/AlarmThatSendsEmail.md), consistent with today's premature-alarm text:
# "the alarm does not go immediately into ALARM state when the data is either - - - - X or
# - - - X - and Datapoints to Alarm is 3". (M, data points, MISSING, IGNORE, BREACHING, NOT BREACHING)
EARLIER_REVISIONS = [
    (3, "- - - - X", "INSUFFICIENT_DATA", RETAIN, "ALARM", "OK"),
    (3, "X - - - -", "ALARM", RETAIN, "ALARM", "OK"),
    (2, "- - - - X", "INSUFFICIENT_DATA", RETAIN, "ALARM", "OK"),
    (3, "- - - X -", "INSUFFICIENT_DATA", RETAIN, "ALARM", "OK"),
]


def datapoints(pattern: str) -> dict[str, tuple[Datum, ...]]:
    """'0 - X - X' -> one datum per non-missing 5-minute window, the last window ending at END."""
    tokens = pattern.split()
    assert len(tokens) == 5 and set(tokens) <= {"0", "X", "-"}, pattern
    data = []
    for i, token in enumerate(tokens):
        start = END - (len(tokens) - i) * PERIOD
        if token != "-":
            data.append(value(start + 42, 1.0 if token == "X" else 0.0))  # threshold is 0.5
    return {"Errors": tuple(data)}


def expected_cases(
    rows: list[tuple[str, int, str, str, str, str]], m: int
) -> list[tuple[int, str, int, str, str]]:
    cases = []
    for pattern, filled, *states in rows:
        for mode, expected in zip(MODES, states):
            cases.append((m, pattern, filled, mode, expected))
    return cases


TABLE_CASES = expected_cases(THREE_OF_THREE, 3) + expected_cases(TWO_OF_THREE, 2)


@pytest.mark.parametrize(("m", "pattern", "filled", "mode", "expected"), TABLE_CASES)
@pytest.mark.parametrize("current", list(State))
def test_documented_table_row(m: int, pattern: str, filled: int, mode: str, expected: str, current: State) -> None:
    alarm = single_alarm(DatapointsToAlarm=m, TreatMissingData=mode)
    result = evaluate(alarm, datapoints(pattern), END + 5, initial_state=current)
    want = current if expected == RETAIN else State(expected)
    assert result.state is want, result.reason
    assert [p.start for p in result.evaluated] == [END - k * PERIOD for k in range(5, 0, -1)]
    if mode == "breaching":
        # the table's second column: how many missing points TreatMissingData has to fill in
        assert sum(p.filled for p in result.evaluated) == filled


@pytest.mark.parametrize(
    ("m", "pattern", "mode", "expected"),
    [(m, pattern, mode, expected) for m, pattern, *states in EARLIER_REVISIONS for mode, expected in zip(MODES, states)],
)
@pytest.mark.parametrize("current", list(State))
def test_earlier_revision_rows(m: int, pattern: str, mode: str, expected: str, current: State) -> None:
    alarm = single_alarm(DatapointsToAlarm=m, TreatMissingData=mode)
    result = evaluate(alarm, datapoints(pattern), END + 5, initial_state=current)
    assert result.state is (current if expected == RETAIN else State(expected)), result.reason


def test_second_row_goes_to_alarm_once_the_good_point_leaves_the_range() -> None:
    # "The next time this alarm is evaluated, if the data is still missing it will go to ALARM,
    # as that non-breaching data point will no longer be in the evaluation range."
    alarm = single_alarm(TreatMissingData="breaching")
    data = datapoints("0 - - - -")
    assert evaluate(alarm, data, END + 5, State.OK).state is State.OK
    assert evaluate(alarm, data, END + PERIOD + 5, State.OK).state is State.ALARM


def test_enough_real_points_reach_back_past_missing_ones() -> None:
    # "including the necessary extra data points from farther back in the evaluation range"
    alarm = single_alarm(TreatMissingData="notBreaching")
    result = evaluate(alarm, datapoints("X X X - -"), END + 5)
    assert result.state is State.ALARM
    assert [p.used for p in result.evaluated] == [True, True, True, False, False]
