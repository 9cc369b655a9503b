"""Rates of pipelines.metrics as metric math text: the templates the alarms and the dashboard fill."""
from __future__ import annotations

from alarms import math_text
from pipelines import metrics


def test_a_coefficient_map_is_a_sum_template_in_map_order() -> None:
    assert math_text.template({"tp": 2, "fp": 1, "fn": 1}) == "2*{tp}+{fp}+{fn}"
    assert math_text.template({"labeled": 1}) == "{labeled}"
    assert math_text.template({"tp": 0.5}) == "0.5*{tp}"
    assert math_text.filled({"tp": 2, "fp": 1}) == "2*FILL(tp,0)+FILL(fp,0)"


def test_rate_ids_follow_the_count_order() -> None:
    assert math_text.rate_ids(metrics.RATES["f1"]) == ["tp", "fp", "fn"]
    assert math_text.rate_ids(metrics.RATES["error_rate"]) == ["invocations", "errors"]


def test_numbers_and_the_sample_guard() -> None:
    assert [math_text.number(x) for x in (1.0, -3, 0.25, 1e20)] == ["1", "-3", "0.25", "1e+20"]
    assert math_text.guard("n", 30, "v", 1.0) == "IF(n >= 30, v, 1)"
