"""Metric math, hand-computed. Doc examples are from the CloudWatch user guide, "Using math
expressions with CloudWatch metrics" (Comparison and logical operators; Using IF expressions)."""
from __future__ import annotations

import math

import pytest

from alarms.metric_math import MetricMathError, Series, SeriesArray, Value, evaluate, parse, resolve

GRID = (0, 60, 120, 180, 240)


def s(*values: float | None) -> Series:
    """A series on GRID from positional values; None is a missing point."""
    return Series({t: v for t, v in zip(GRID, values) if v is not None})


def values(result: Value) -> list[float | None]:
    assert isinstance(result, Series), result
    return [result.get(t) for t in GRID]


# --- arithmetic ----------------------------------------------------------------


def test_precision_with_sample_size_guard() -> None:
    tp = s(45, 3, 0, None, 10)
    fp = s(5, 1, 0, 5, None)
    result = evaluate("IF(tp+fp >= 5, tp/(tp+fp), 1)", {"tp": tp, "fp": fp}, GRID)
    # 45/50; 4 samples -> guard; 0 samples -> guard; tp missing counts as 0 -> 0/5; fp missing -> 10/10
    assert values(result) == [0.9, 1.0, 1.0, 0.0, 1.0]


def test_division_by_zero_drops_the_point() -> None:
    result = evaluate("tp/(tp+fp)", {"tp": s(1, 0, None, 2, None), "fp": s(1, 0, 3, None, None)}, GRID)
    # 1/2; 0/0 dropped; 0/3 (missing tp is 0); 2/2; both missing -> no point at all
    assert values(result) == [0.5, None, 0.0, 1.0, None]


def test_missing_values_are_zero_between_two_series() -> None:
    result = evaluate("m1 - m2", {"m1": s(10, None, 5), "m2": s(None, 3, 5)}, GRID)
    assert values(result) == [10.0, -3.0, 0.0, None, None]


def test_scalars_broadcast_over_the_series_points_only() -> None:
    assert values(evaluate("100 * m1 + 1", {"m1": s(0.5, None, 2)}, GRID)) == [51.0, None, 201.0, None, None]
    assert values(evaluate("1 / m1", {"m1": s(2, 0, None)}, GRID)) == [0.5, None, None, None, None]
    assert evaluate("2 * (3 + 4)", {}, GRID) == 14.0


def test_precedence_unary_minus_and_power() -> None:
    assert evaluate("-2^2", {}, GRID) == -4.0
    assert evaluate("2^3^2", {}, GRID) == 512.0
    assert evaluate("1 + 2 * 3 - 4 / 2", {}, GRID) == 5.0
    assert evaluate("-(1 - 3) * 2", {}, GRID) == 4.0
    assert values(evaluate("-m1", {"m1": s(1, None, -2)}, GRID)) == [-1.0, None, 2.0, None, None]


def test_scalar_division_by_zero_is_an_error_naming_the_operator() -> None:
    with pytest.raises(MetricMathError) as info:
        evaluate("m1 + 1/0", {"m1": s(1)}, GRID)
    assert info.value.position == 6
    assert "1 / 0" in str(info.value)


# --- comparison and logic --------------------------------------------------------


def test_documented_comparison_examples() -> None:
    # metric1 [30, 20, 0, 0], metric2 [20, -, 20, -]
    env: dict[str, Value] = {"metric1": s(30, 20, 0, 0), "metric2": s(20, None, 20, None)}
    assert values(evaluate("(metric1 < metric2)", env, GRID))[:4] == [0, 0, 1, 0]
    assert values(evaluate("(metric1 >= 30)", env, GRID))[:4] == [1, 0, 0, 0]
    assert values(evaluate("(metric1 > 15 AND metric2 > 15)", env, GRID))[:4] == [1, 0, 0, 0]
    assert values(evaluate("(metric1 > 15 && metric2 > 15)", env, GRID))[:4] == [1, 0, 0, 0]


def test_every_comparison_operator() -> None:
    env: dict[str, Value] = {"a": s(1, 2, 3)}
    assert values(evaluate("a == 2", env, GRID))[:3] == [0, 1, 0]
    assert values(evaluate("a != 2", env, GRID))[:3] == [1, 0, 1]
    assert values(evaluate("a < 2", env, GRID))[:3] == [1, 0, 0]
    assert values(evaluate("a <= 2", env, GRID))[:3] == [1, 1, 0]
    assert values(evaluate("a > 2", env, GRID))[:3] == [0, 0, 1]
    assert values(evaluate("a >= 2", env, GRID))[:3] == [0, 1, 1]
    assert evaluate("3 > 2", {}, GRID) == 1.0


def test_or_and_not() -> None:
    env: dict[str, Value] = {"a": s(0, 1, 0, 5), "b": s(0, 0, 2, None)}
    assert values(evaluate("a OR b", env, GRID))[:4] == [0, 1, 1, 1]
    assert values(evaluate("a || b", env, GRID))[:4] == [0, 1, 1, 1]
    assert values(evaluate("NOT a", env, GRID))[:4] == [1, 0, 1, 0]
    assert values(evaluate("!(a > 0 AND b > 0)", env, GRID))[:4] == [1, 1, 1, 1]
    # AND binds tighter than OR
    assert evaluate("1 OR 0 AND 0", {}, GRID) == 1.0
    assert evaluate("NOT 2 > 3", {}, GRID) == 1.0


# --- IF -----------------------------------------------------------------------------


def test_documented_if_tables() -> None:
    metric1 = s(1, 1, 0, 0, None)
    metric2 = s(30, None, 0, 0, 30)
    metric3 = s(0, 0, 20, None, 20)
    env: dict[str, Value] = {"metric1": metric1, "metric2": metric2, "metric3": metric3}
    assert values(evaluate("IF(metric1, metric2, metric3)", env, GRID)) == [30, 0, 20, None, None]
    assert values(evaluate("IF(metric1, 5, metric3)", env, GRID)) == [5, 5, 20, None, None]
    # The guide's third table shows 5 at the last timestamp, where metric1 has no point; its
    # first two tables drop that timestamp. We drop it consistently (no condition, no point).
    assert values(evaluate("IF(metric1, metric2, 5)", env, GRID)) == [30, 0, 5, 5, None]


def test_if_with_a_scalar_condition_and_without_a_false_branch() -> None:
    env: dict[str, Value] = {"m1": s(1, 2), "m2": s(7)}
    assert values(evaluate("IF(1, m1, m2)", env, GRID)) == [1, 2, None, None, None]
    assert values(evaluate("IF(0, m1, m2)", env, GRID)) == [7, None, None, None, None]
    assert values(evaluate("IF(0, m1)", env, GRID)) == [None] * 5
    assert values(evaluate("IF(m1 < 2, m1)", env, GRID)) == [1, None, None, None, None]


# --- functions ----------------------------------------------------------------------


def test_fill_with_a_value_repeat_linear_and_a_series() -> None:
    m1 = s(None, 10, None, 30, None)
    env: dict[str, Value] = {"m1": m1, "m2": s(7, 8, 9)}
    assert values(evaluate("FILL(m1, 0)", env, GRID)) == [0, 10, 0, 30, 0]
    assert values(evaluate("FILL(m1, 2 * 3)", env, GRID)) == [6, 10, 6, 30, 6]
    assert values(evaluate("FILL(m1, REPEAT)", env, GRID)) == [None, 10, 10, 30, 30]
    assert values(evaluate("FILL(m1, LINEAR)", env, GRID)) == [None, 10, 20, 30, None]
    assert values(evaluate("FILL(m1, m2)", env, GRID)) == [7, 10, 9, 30, None]
    assert values(evaluate("FILL(m1, 0) + 1", env, GRID)) == [1, 11, 1, 31, 1]
    assert values(evaluate("FILL(m1, LINEAR)", {"m1": s(1, None, None, 4)}, GRID)) == [1, 2, 3, 4, None]


def test_fill_of_an_array_fills_each_series() -> None:
    result = evaluate("FILL([m1, m2], 0)", {"m1": s(1), "m2": s(None, 2)}, GRID)
    assert isinstance(result, SeriesArray)
    assert [values(x) for x in result.items] == [[1, 0, 0, 0, 0], [0, 2, 0, 0, 0]]


def test_min_max_of_a_series_are_scalars() -> None:
    env: dict[str, Value] = {"m1": s(4, None, 1, 9)}
    assert evaluate("MIN(m1)", env, GRID) == 1.0
    assert evaluate("MAX(m1)", env, GRID) == 9.0
    assert values(evaluate("m1 - MIN(m1)", env, GRID)) == [3, None, 0, 8, None]
    assert values(evaluate("MAX(m1)/m1", env, GRID))[:4] == [2.25, None, 9, 1]


def test_min_max_sum_avg_of_an_array_are_series() -> None:
    env: dict[str, Value] = {"m1": s(4, None, 1), "m2": s(2, 5, None)}
    assert values(evaluate("MIN([m1, m2])", env, GRID))[:3] == [2, 5, 1]
    assert values(evaluate("MAX([m1, m2])", env, GRID))[:3] == [4, 5, 1]
    assert values(evaluate("SUM([m1, m2])", env, GRID))[:3] == [6, 5, 1]
    # AVG of an array: "Missing values are treated as 0."
    assert values(evaluate("AVG([m1, m2])", env, GRID))[:3] == [3, 2.5, 0.5]
    assert values(evaluate("MAX([m1 * 2, TIME_SERIES(3)])", env, GRID)) == [8, 3, 3, 3, 3]


def test_abs_sqrt_ceil_floor() -> None:
    env: dict[str, Value] = {"m1": s(-4, 2.5, 9)}
    assert values(evaluate("ABS(m1)", env, GRID))[:3] == [4, 2.5, 9]
    assert values(evaluate("SQRT(m1)", env, GRID))[:3] == [None, math.sqrt(2.5), 3]  # sqrt(-4) dropped
    assert values(evaluate("CEIL(m1)", env, GRID))[:3] == [-4, 3, 9]
    assert values(evaluate("FLOOR(m1)", env, GRID))[:3] == [-4, 2, 9]
    assert evaluate("SQRT(16)", {}, GRID) == 4.0


def test_wilson_lower_bound_for_precision() -> None:
    tp, fp = 40.0, 10.0
    expression = (
        "((tp/(tp+fp)) + 1.96^2/(2*(tp+fp)) - 1.96*SQRT((tp/(tp+fp))*(1-tp/(tp+fp))/(tp+fp)"
        " + 1.96^2/(4*(tp+fp)^2))) / (1 + 1.96^2/(tp+fp))"
    )
    result = evaluate(expression, {"tp": s(tp), "fp": s(fp)}, GRID)
    n, p, z = tp + fp, tp / (tp + fp), 1.96
    expected = (p + z * z / (2 * n) - z * math.sqrt(p * (1 - p) / n + z * z / (4 * n * n))) / (1 + z * z / n)
    assert values(result)[0] == pytest.approx(expected)


# --- named expressions ----------------------------------------------------------


def test_resolve_lets_expressions_use_each_other_in_any_order() -> None:
    expressions = {"rate": parse("errors / total"), "total": parse("ok + errors")}
    result = resolve(expressions, {"ok": s(9, 0), "errors": s(1, 0)}, GRID)
    assert values(result["rate"])[:2] == [0.1, None]


def test_resolve_reports_a_cycle() -> None:
    with pytest.raises(MetricMathError, match="cycle"):
        resolve({"a": parse("b + 1"), "b": parse("a * 2")}, {}, GRID)


# --- errors name the expression and the position ---------------------------------


@pytest.mark.parametrize(
    ("expression", "position", "fragment"),
    [
        ("tp + xx", 5, "unknown id 'xx'"),
        ("tp + (fp", 8, "expected ')'"),
        ("tp +", 4, "expected a number"),
        ("tp $ fp", 3, "unexpected character '$'"),
        ("FOO(tp)", 0, "unknown function 'FOO'"),
        ("Tp + 1", 0, "unknown function 'Tp'"),
        ("tp + REPEAT", 5, "only valid as the second argument of FILL"),
        ("IF(tp)", 0, "IF takes 2 to 3 arguments, got 1"),
        ("FILL(tp, 1, 2)", 0, "FILL takes 2 arguments, got 3"),
        ("1 < tp < 3", 7, "can't be chained"),
        ("tp fp", 3, "unexpected 'fp'"),
        ("", 0, "empty expression"),
        ("SQRT tp", 5, "must be called with arguments"),
    ],
)
def test_syntax_errors_name_the_expression_and_position(expression: str, position: int, fragment: str) -> None:
    with pytest.raises(MetricMathError) as info:
        parse(expression, known_ids={"tp", "fp"})
    assert info.value.position == position
    assert fragment in str(info.value)
    assert repr(expression) in str(info.value)


@pytest.mark.parametrize(
    ("expression", "fragment"),
    [
        ("MIN(3)", "not a scalar"),
        ("[m1, 3]", "array elements must be time series"),
        ("IF([m1], 1, 0)", "not an array"),
        ("SQRT(-1)", "negative scalar"),
        ("FILL(2, 0)", "not a scalar"),
        ("TIME_SERIES(m1)", "takes a scalar"),
    ],
)
def test_invalid_operations_are_errors(expression: str, fragment: str) -> None:
    with pytest.raises(MetricMathError, match=fragment):
        evaluate(expression, {"m1": s(1)}, GRID)
