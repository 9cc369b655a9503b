"""Percentile guards and newer alarm parameters (issue 10, item 7): the default min_samples of a
percentile alarm is AWS's significance rule, EvaluateLowSampleCountPercentile is in the spec and
the request, and an alarm described with EvaluationInterval is neither refused by `simulate` nor
reported as drift by `plan`."""
from __future__ import annotations

import io
import json
from pathlib import Path
from typing import Any

import botocore.session
import pytest
import yaml
from botocore.validate import validate_parameters

from alarms import evaluator, simulate
from alarms.evaluator import AlarmConfigError, Datum, State, evaluate
from alarms.spec import SpecError, expand, parse_spec, spec_warnings, to_put_metric_alarm
from alarms.sync import diff
from pipelines import cloudwatch_rules
from tests.unit.alarms.helpers import END, single_request

_PUT = botocore.session.get_session().get_service_model("cloudwatch").operation_model("PutMetricAlarm").input_shape


def spec_of(*alarms: dict[str, Any]) -> Any:
    data = {"name": "fraud", "endpoints": [{"name": "fraud-ep", "variant": "AllTraffic", "alarms": list(alarms)}]}
    return parse_spec(yaml.safe_dump(data, sort_keys=False), source="t.yaml")


def request_of(alarm: dict[str, Any]) -> dict[str, Any]:
    (one,) = expand(spec_of(alarm))
    request = to_put_metric_alarm(one, "Rollguard")
    validate_parameters(request, _PUT)
    return request


@pytest.mark.parametrize(("percentile", "needed"), [
    (99.0, 1000), (99.9, 10000), (99.99, 100000), (90.0, 100), (95.0, 200), (50.0, 20), (10.0, 100), (1.0, 1000),
])
def test_aws_significance_rule(percentile: float, needed: int) -> None:
    assert cloudwatch_rules.percentile_min_samples(percentile) == needed
    assert cloudwatch_rules.percentile_min_samples(0.0) is None
    assert cloudwatch_rules.percentile_min_samples(100.0) is None


@pytest.mark.parametrize(("metric", "guard"), [
    ("p99_latency", 1000), ("p99.9_latency", 10000), ("p90_latency", 100), ("p50_latency", 30), ("p97_latency", 334),
])
def test_the_default_percentile_guard_is_the_significance_rule(metric: str, guard: int) -> None:
    (alarm,) = expand(spec_of({"name": "lat", "metric": metric, "threshold": 40}))
    assert alarm.min_samples == guard  # never under the rates' 30
    expression = to_put_metric_alarm(alarm, "Rollguard")["Metrics"][-1]["Expression"]
    assert f"IF(samples >= {guard}, latency, 0)" in expression
    (explicit,) = expand(spec_of({"name": "lat", "metric": metric, "threshold": 40, "min_samples": 7}))
    assert explicit.min_samples == 7


def test_a_guard_below_the_rule_is_a_warning() -> None:
    (warning,) = spec_warnings(spec_of({"name": "lat", "metric": "p99_latency", "threshold": 40, "min_samples": 100}))
    assert "min_samples 100 is below the 1000 samples AWS needs for a significant p99" in warning
    assert spec_warnings(spec_of({"name": "lat", "metric": "p99_latency", "threshold": 40})) == []


def test_evaluate_low_sample_count_percentile_reaches_the_request() -> None:
    body = {"name": "lat", "metric": "p99_latency", "threshold": 40, "min_samples": 0, "fail_safe": False}
    request = request_of({**body, "evaluate_low_sample_count_percentile": "ignore"})
    assert request["EvaluateLowSampleCountPercentile"] == "ignore"
    assert request["ExtendedStatistic"] == "p99"
    assert "EvaluateLowSampleCountPercentile" not in request_of(body)  # unset: not sent, as before
    alarm = evaluator.Alarm.from_request(request)
    assert alarm.evaluate_low_sample_count_percentile == "ignore"
    few = {"Latency": [Datum(END - 30, (90.0,), (50.0,))]}  # 50 slow samples: breaching, but not significant
    assert evaluate(alarm, few, END, initial_state=State.OK).state is State.OK


@pytest.mark.parametrize(("extra", "message"), [
    ({"metric": "recall", "threshold": 0.8}, "applies to pNN_latency alarms only"),
    ({"metric": "p99_latency", "threshold": 40}, "needs min_samples: 0 and fail_safe: false"),
    ({"metric": "p99_latency", "threshold": 40, "min_samples": 0}, "needs min_samples: 0 and fail_safe: false"),
    ({"metric": "p99_latency", "threshold": 40, "min_samples": 0, "fail_safe": False,
      "evaluate_low_sample_count_percentile": "sometimes"}, "evaluate_low_sample_count_percentile"),
])
def test_evaluate_low_sample_count_percentile_only_where_cloudwatch_applies_it(extra: dict[str, Any], message: str) -> None:
    with pytest.raises(SpecError, match=message):
        spec_of({"name": "x", "evaluate_low_sample_count_percentile": "ignore", **extra})


def test_the_evaluator_applies_the_rule_at_its_edge() -> None:
    # 100 samples are enough for a p90 (10/(1-0.9) = 100, not 100.00000000000001)
    alarm = evaluator.Alarm.from_request(single_request(
        MetricName="Latency", Statistic=None, ExtendedStatistic="p90", Period=60, EvaluationPeriods=1,
        DatapointsToAlarm=1, Threshold=40, EvaluateLowSampleCountPercentile="ignore"))
    slow = {"Latency": [Datum(END - 30, (90.0,), (100.0,))]}
    assert evaluate(alarm, slow, END, initial_state=State.OK).state is State.ALARM


# ---------------------------------------------------------------- EvaluationInterval


def test_simulate_accepts_an_alarm_described_with_evaluation_interval(tmp_path: Path) -> None:
    request = single_request(Period=60, EvaluationPeriods=1, DatapointsToAlarm=1, EvaluationInterval=60)
    alarm = evaluator.Alarm.from_request(request)
    assert alarm.cadence == 60
    hourly = evaluator.Alarm.from_request({**request, "EvaluationInterval": 3600})
    assert hourly.cadence == 3600
    with pytest.raises(AlarmConfigError, match="EvaluationInterval: 45 is not a valid"):
        evaluator.Alarm.from_request({**request, "EvaluationInterval": 45})
    with pytest.raises(AlarmConfigError, match="PromQL alarms are valid in CloudWatch but not simulated"):
        evaluator.Alarm.from_request({**request, "EvaluationCriteria": {"PromQLCriteria": {"Query": "up"}}})
    path = tmp_path / "alarm.json"
    path.write_text(json.dumps(request))
    points = tmp_path / "points.json"
    points.write_text(json.dumps({"Errors": [{"Timestamp": END - 30, "Value": 1}]}))
    out, err = io.StringIO(), io.StringIO()
    code = simulate.main(["--alarm", str(path), "--datapoints", str(points), "--at", str(END), "--publish-lag", "0"],
                         stdout=out, stderr=err)
    assert (code, err.getvalue()) == (0, "")
    assert out.getvalue().startswith("fraud-ep-errors: ALARM")


def test_plan_does_not_take_an_echoed_evaluation_interval_for_drift() -> None:
    body = {"name": "r", "metric": "recall", "threshold": 0.8}
    for alarm in (body, {**body, "period": 3600, "evaluation_periods": 48, "datapoints_to_alarm": 3}):
        request = request_of(alarm)
        interval = cloudwatch_rules.evaluation_interval(request["Metrics"][0]["MetricStat"]["Period"],
                                                        request["EvaluationPeriods"])
        described = {**request, "EvaluationInterval": interval, "EvaluationState": "", "StateValue": "OK"}
        assert diff(described, request) == ()
    request = request_of(body)
    (d,) = diff({**request, "EvaluationInterval": 300}, request)
    assert (d.field, d.current, d.desired) == ("EvaluationInterval", 300, 60)
    promql = {**request, "EvaluationCriteria": {"PromQLCriteria": {"Query": "up == 0"}}}
    assert [d.field for d in diff(promql, request)] == ["EvaluationCriteria"]
