"""CloudWatch's rules as rollguard writes them, checked against botocore's own CloudWatch model."""
from __future__ import annotations

import botocore.session
import pytest

from pipelines import cloudwatch_rules as rules
from pipelines.datum import Datum

MODEL = botocore.session.get_session().get_service_model("cloudwatch")


def enum(shape: str) -> set[str]:
    return set(MODEL.shape_for(shape).enum)


def test_enumerations_match_the_service_model() -> None:
    assert set(rules.COMPARISON_OPERATORS.values()) | rules.ANOMALY_COMPARISON_OPERATORS == enum("ComparisonOperator")
    assert rules.STANDARD_UNITS == enum("StandardUnit")
    assert rules.STATISTICS == enum("Statistic")


def test_name_and_alarm_limits_match_the_service_model() -> None:
    assert MODEL.shape_for("AlarmName").metadata["max"] == rules.MAX_ALARM_NAME
    assert MODEL.shape_for("AlarmDescription").metadata["max"] == rules.MAX_ALARM_DESCRIPTION
    assert MODEL.shape_for("MetricName").metadata["max"] == rules.MAX_NAME
    assert MODEL.shape_for("DimensionValue").metadata["max"] == rules.MAX_DIMENSION_VALUE
    assert MODEL.shape_for("ResourceList").metadata["max"] == rules.MAX_ACTIONS
    assert MODEL.shape_for("MetricExpression").metadata["max"] == rules.MAX_EXPRESSION_LENGTH
    assert MODEL.shape_for("Dimensions").metadata["max"] == rules.MAX_DIMENSIONS


@pytest.mark.parametrize(("period", "ok"), [(10, True), (20, True), (30, True), (60, True), (3600, True),
                                             (1, False), (45, False), (90, False), (0, False)])
def test_alarm_periods(period: int, ok: bool) -> None:
    assert rules.valid_alarm_period(period) is ok


def test_evaluation_window_and_graph_periods() -> None:
    assert rules.max_evaluation_s(3599) == 86_400 and rules.max_evaluation_s(3600) == 604_800
    assert [p for p in (1, 2, 5, 10, 30, 45, 60, 90, 120) if rules.valid_graph_period(p)] == [1, 5, 10, 30, 60, 120]


def test_datum_problem_names_what_is_wrong() -> None:
    ok = Datum("Invocations", (("EndpointName", "e"),), 0, "Count", value=1.0)
    assert rules.datum_problem(ok) is None
    assert "at most 30 dimensions" in str(rules.datum_problem(Datum("M", tuple((f"d{i}", "v") for i in range(31)), 0)))
    assert "StandardUnit" in str(rules.datum_problem(Datum("M", (), 0, "Furlongs", value=1.0)))
    assert "within ±2^360" in str(rules.datum_problem(Datum("M", (), 0, value=float("inf"))))
    assert "differ in length" in str(rules.datum_problem(Datum("M", (), 0, values=(1.0,), counts=())))
