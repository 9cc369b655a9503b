"""Alarm spec files: validation errors, the name convention, and the PutMetricAlarm requests."""
from __future__ import annotations

import textwrap
from pathlib import Path
from typing import Any

import botocore.session
import pytest
import yaml
from botocore.validate import validate_parameters

from alarms import cli, evaluator
from alarms.spec import verdict_alarms
from alarms.spec import (
    AlarmLimitError,
    SpecError,
    SpecFile,
    alarm_name,
    check_put_metric_alarm,
    comparisons,
    expand,
    expression_problem,
    guardrail_alarm_names,
    load_spec,
    parse_spec,
    safe_value,
    spec_warnings,
    to_put_metric_alarm,
    verdict_alarms,
)
from alarms.sync import diff
from pipelines import cloudwatch_rules, metrics

EXAMPLE = Path(__file__).resolve().parents[3] / "examples" / "alarms.yaml"
_CW_MODEL = botocore.session.get_session().get_service_model("cloudwatch")


def put_shape_ok(request: dict[str, Any]) -> None:
    """The request fits botocore's PutMetricAlarm input shape (types, required keys, enums)."""
    validate_parameters(request, _CW_MODEL.operation_model("PutMetricAlarm").input_shape)


def write(tmp_path: Path, text: str, name: str = "alarms.yaml") -> Path:
    path = tmp_path / name
    path.write_text(textwrap.dedent(text).lstrip(), encoding="utf-8")
    return path


def spec_with(alarm: dict[str, Any], endpoint: dict[str, Any] | None = None, **top: Any) -> SpecFile:
    ep: dict[str, Any] = {"name": "fraud-ep", "variant": "AllTraffic", "model_version": "fraud-v6"}
    ep.update(endpoint or {})
    ep["alarms"] = [alarm]
    data = {"name": "fraud", "endpoints": [ep], **top}
    return parse_spec(yaml.safe_dump(data, sort_keys=False), source="t.yaml")


def request_for(alarm: dict[str, Any], **kw: Any) -> dict[str, Any]:
    """The request of one alarm; fail-open unless it says otherwise, the shape every request had
    before fail-safe alarms (which `test_fail_safe.py` covers) and still has with fail_safe false."""
    (one,) = expand(spec_with({"fail_safe": False, **alarm}, **kw))
    request = to_put_metric_alarm(one, "Rollguard")
    put_shape_ok(request)
    return request


def queries(request: dict[str, Any]) -> dict[str, dict[str, Any]]:
    return {q["Id"]: q for q in request["Metrics"]}


def value_expression(request: dict[str, Any]) -> str:
    (ret,) = [q for q in request["Metrics"] if q.get("ReturnData")]
    assert ret["Id"] == "value"
    return str(ret["Expression"])


def spec_error(tmp_path: Path, text: str, name: str = "alarms.yaml") -> str:
    with pytest.raises(SpecError) as info:
        load_spec(write(tmp_path, text, name))
    return str(info.value)


BASE = """
    name: fraud
    endpoints:
      - name: fraud-ep
        variant: AllTraffic
        model_version: fraud-v6
        alarms:
          - name: recall
            metric: recall
            threshold: 0.8
"""

# ------------------------------------------------------------------------------------------
# the example and the name convention


def test_example_spec_loads_and_every_request_is_valid() -> None:
    spec = load_spec(EXAMPLE)
    alarms = expand(spec)
    assert len(alarms) == 8
    for alarm in alarms:
        request = to_put_metric_alarm(alarm, "Rollguard")
        put_shape_ok(request)
        assert check_put_metric_alarm(request) == []
    assert guardrail_alarm_names(spec, "fraud-ep") == [
        "rollguard-fraud-ep-AllTraffic.fraud-v6-precision",
        "rollguard-fraud-ep-AllTraffic.fraud-v6-recall",
        "rollguard-fraud-ep-AllTraffic.fraud-v6-p99-latency",
        "rollguard-fraud-ep-AllTraffic.fraud-v6-error-rate",
        "rollguard-fraud-ep-verdict-fraud-v6-vs-v5",
    ]
    assert [c.name for c in comparisons(spec)] == ["v6-shadow-vs-v5", "fraud-v6-vs-v5"]
    for verdict in verdict_alarms(spec):
        request = to_put_metric_alarm(verdict, "Rollguard")
        put_shape_ok(request)
        assert check_put_metric_alarm(request) == []
    assert spec_warnings(spec) == []


def test_name_convention() -> None:
    assert alarm_name("fraud-ep", "AllTraffic", None, "recall") == "rollguard-fraud-ep-AllTraffic-recall"
    assert alarm_name("fraud-ep", "AllTraffic", "fraud-v6", "recall") == "rollguard-fraud-ep-AllTraffic.fraud-v6-recall"


def test_scope_decides_name_and_dimensions() -> None:
    (all_traffic,) = expand(spec_with({"name": "recall", "metric": "recall", "threshold": 0.8}))
    (new_fleet,) = expand(spec_with({"name": "recall", "metric": "recall", "threshold": 0.8, "scope": "model_version"}))
    assert all_traffic.name == "rollguard-fraud-ep-AllTraffic-recall"
    assert all_traffic.dimensions == (("EndpointName", "fraud-ep"), ("VariantName", "AllTraffic"))
    assert new_fleet.name == "rollguard-fraud-ep-AllTraffic.fraud-v6-recall"
    assert new_fleet.dimensions[-1] == ("ModelVersion", "fraud-v6")


def test_one_alarm_per_variant() -> None:
    spec = spec_with({"name": "recall", "metric": "recall", "threshold": 0.8},
                     endpoint={"variant": None, "variants": ["blue", "green"]})
    assert [a.name for a in expand(spec)] == ["rollguard-fraud-ep-blue-recall", "rollguard-fraud-ep-green-recall"]


def test_tags_mark_ownership() -> None:
    request = request_for({"name": "recall", "metric": "recall", "threshold": 0.8})
    assert request["Tags"] == [
        {"Key": "rollguard:owner", "Value": "rollguard"},
        {"Key": "rollguard:spec", "Value": "fraud"},
    ]


# ------------------------------------------------------------------------------------------
# the generated request, per metric type

DIMS_NEW_FLEET = [
    {"Name": "EndpointName", "Value": "fraud-ep"},
    {"Name": "VariantName", "Value": "AllTraffic"},
    {"Name": "ModelVersion", "Value": "fraud-v6"},
]


@pytest.mark.parametrize(
    ("metric", "ids", "expression"),
    [
        ("precision", ["tp", "fp"], "IF(FILL(tp,0)+FILL(fp,0) >= 50, FILL(tp,0)/(FILL(tp,0)+FILL(fp,0)), 1)"),
        ("recall", ["tp", "fn"], "IF(FILL(tp,0)+FILL(fn,0) >= 50, FILL(tp,0)/(FILL(tp,0)+FILL(fn,0)), 1)"),
        (
            "f1",
            ["tp", "fp", "fn"],
            "IF(FILL(tp,0)+FILL(fp,0)+FILL(fn,0) >= 50, "
            "2*FILL(tp,0)/(2*FILL(tp,0)+FILL(fp,0)+FILL(fn,0)), 1)",
        ),
        ("label_coverage", ["labeled", "invocations"],
         "IF(FILL(invocations,0) >= 50, FILL(labeled,0)/FILL(invocations,0), 1)"),
        ("shadow_agreement", ["agreements", "comparisons"],
         "IF(FILL(comparisons,0) >= 50, FILL(agreements,0)/FILL(comparisons,0), 1)"),
    ],
)
def test_quality_rates_are_guarded_metric_math_over_sums(metric: str, ids: list[str], expression: str) -> None:
    request = request_for({"name": "q", "metric": metric, "threshold": 0.8, "min_samples": 50,
                           "period": 300, "scope": "model_version"})
    qs = queries(request)
    assert list(qs) == [*ids, "value"]
    for i in ids:
        stat = qs[i]["MetricStat"]
        assert stat == {
            "Metric": {"Namespace": "Rollguard", "MetricName": metrics.COUNT_IDS[i], "Dimensions": DIMS_NEW_FLEET},
            "Period": 300,
            "Stat": "Sum",
        }
        assert qs[i]["ReturnData"] is False
    assert value_expression(request) == expression
    assert request["ComparisonOperator"] == "LessThanThreshold"  # default for quality rates
    assert request["Threshold"] == 0.8
    for key in ("MetricName", "Namespace", "Statistic", "ExtendedStatistic", "Period", "Dimensions"):
        assert key not in request


def test_error_rate_defaults_to_greater_than_and_safe_value_zero() -> None:
    request = request_for({"name": "errors", "metric": "error_rate", "threshold": 0.01, "min_samples": 100})
    assert request["ComparisonOperator"] == "GreaterThanThreshold"
    assert list(queries(request)) == ["invocations", "errors", "value"]
    assert value_expression(request) == "IF(FILL(invocations,0) >= 100, FILL(errors,0)/FILL(invocations,0), 0)"


def test_latency_with_sample_guard_uses_percentile_and_sample_count() -> None:
    request = request_for({"name": "lat", "metric": "p99_latency", "threshold": 40, "min_samples": 100,
                           "scope": "model_version"})
    qs = queries(request)
    assert qs["latency"]["MetricStat"]["Stat"] == "p99"
    assert qs["latency"]["MetricStat"]["Metric"]["MetricName"] == "Latency"
    assert qs["samples"]["MetricStat"]["Stat"] == "SampleCount"
    assert value_expression(request) == "IF(samples >= 100, latency, 0)"
    assert request["ComparisonOperator"] == "GreaterThanThreshold"
    assert request["Threshold"] == 40.0


def test_latency_without_guard_is_a_single_metric_extended_statistic_alarm() -> None:
    request = request_for({"name": "lat", "metric": "p99.9_latency", "threshold": 40, "min_samples": 0})
    assert "Metrics" not in request
    assert request["MetricName"] == "Latency"
    assert request["ExtendedStatistic"] == "p99.9"
    assert "Statistic" not in request
    assert request["Period"] == 60
    assert request["Dimensions"] == DIMS_NEW_FLEET[:2]


def test_expression_with_sample_guard() -> None:
    request = request_for({
        "name": "fnr", "expression": "FILL(fn,0)/(FILL(tp,0)+FILL(fn,0))", "sample": "tp+fn",
        "min_samples": 20, "threshold": 0.3, "comparison": ">=",
    })
    assert list(queries(request)) == ["fn", "tp", "value"]
    assert value_expression(request) == "IF((tp+fn) >= 20, (FILL(fn,0)/(FILL(tp,0)+FILL(fn,0))), -0.7)"
    assert request["ComparisonOperator"] == "GreaterThanOrEqualToThreshold"


def test_expression_without_guard_is_used_as_written() -> None:
    request = request_for({"name": "exp", "expression": "expired / invocations", "threshold": 0.2, "comparison": ">"})
    assert list(queries(request)) == ["expired", "invocations", "value"]
    assert value_expression(request) == "expired / invocations"


def test_gauge_is_a_single_metric_alarm() -> None:
    request = request_for({"name": "plb", "gauge": "PrecisionLowerBound", "threshold": 0.85, "comparison": "<",
                           "statistic": "Minimum"})
    assert request["MetricName"] == "PrecisionLowerBound"
    assert request["Statistic"] == "Minimum"
    assert "Metrics" not in request


def test_every_published_gauge_and_count_is_alarmable() -> None:
    # ShadowAgreement, Evicted and OrphanLabels are published but used to be refused
    for gauge in metrics.GAUGES:
        request = request_for({"name": "g", "gauge": gauge, "threshold": 0.5, "comparison": "<"})
        assert request["MetricName"] == gauge
    request = request_for({"name": "ev", "expression": "(evicted+orphan_labels)/invocations", "threshold": 0.01,
                           "comparison": ">"})
    names = {q["Id"]: q["MetricStat"]["Metric"]["MetricName"] for q in request["Metrics"] if "MetricStat" in q}
    assert names == {"evicted": "Evicted", "orphan_labels": "OrphanLabels", "invocations": "Invocations"}


@pytest.mark.parametrize(
    ("expression", "problem"),
    [
        ("MAX([tp, fp])", None),  # arrays, && and || are CloudWatch syntax the spec now reads
        ("IF(tp > 1 && fp > 1, tp, 0) || errors", None),
        ("RATE(errors)", None),
        ("FOO(tp)", "unknown function 'FOO' at position 0"),
        ("Tp + fp", "unknown function 'Tp' at position 0 (ids start with a lower-case letter"),
        ("SEARCH(tp)", "unknown function 'SEARCH'"),
        ("tp $ fp", "unexpected character '$' at position 3"),
        ("tp + _x", "unexpected character '_' at position 5"),
        ("tp/(tp+fpp)", "unknown id 'fpp'; the ids are tp, fp, fn, tn, labeled, invocations, errors, agreements, "
                        "comparisons, expired, orphan_labels, evicted"),
        ("(tp", "unbalanced parentheses"),
        ("1 + 2", "must use at least one of the ids"),
    ],
)
def test_expression_problems_use_the_metric_math_tokens(expression: str, problem: str | None) -> None:
    found = expression_problem(expression)
    assert (found is None) if problem is None else (found is not None and found.startswith(problem)), found


def test_alarm_math_functions_cover_the_simulated_ones() -> None:
    from alarms.metric_math import FUNCTIONS

    # SQRT is the simulator's own convenience; every other function it runs CloudWatch allows in alarms
    assert set(FUNCTIONS) - {"SQRT"} <= cloudwatch_rules.ALARM_MATH_FUNCTIONS


def test_segment_adds_one_dimension() -> None:
    request = request_for({"name": "r", "metric": "recall", "threshold": 0.75, "scope": "model_version",
                           "segment": {"merchant_category": "5411"}})
    dims = queries(request)["tp"]["MetricStat"]["Metric"]["Dimensions"]
    assert dims == [*DIMS_NEW_FLEET, {"Name": "merchant_category", "Value": "5411"}]


def test_m_of_n_missing_data_actions_and_defaults() -> None:
    request = request_for({"name": "r", "metric": "recall", "threshold": 0.8, "evaluation_periods": 5,
                           "datapoints_to_alarm": 3, "alarm_actions": ["arn:aws:sns:us-east-1:1:oncall"]})
    assert (request["EvaluationPeriods"], request["DatapointsToAlarm"]) == (5, 3)
    assert request["TreatMissingData"] == "notBreaching"
    assert request["AlarmActions"] == ["arn:aws:sns:us-east-1:1:oncall"]
    plain = request_for({"name": "r", "metric": "recall", "threshold": 0.8, "evaluation_periods": 4})
    assert plain["DatapointsToAlarm"] == 4  # M defaults to N
    assert "IF(FILL(tp,0)+FILL(fn,0) >= 30," in value_expression(plain)  # min_samples defaults to 30


def test_defaults_apply_unless_the_alarm_sets_the_key() -> None:
    spec = parse_spec(textwrap.dedent("""
        name: fraud
        defaults: {period: 300, evaluation_periods: 3, min_samples: 80}
        endpoints:
          - name: ep
            variant: v
            alarms:
              - {name: a, metric: recall, threshold: 0.8}
              - {name: b, metric: recall, threshold: 0.8, period: 60}
              - {name: c, gauge: Recall, threshold: 0.8, comparison: "<"}
    """))
    a, b, c = expand(spec)
    assert (a.period, a.evaluation_periods, a.min_samples) == (300, 3, 80)
    assert b.period == 60
    assert c.min_samples == 0  # a default min_samples does not reach gauges


@pytest.mark.parametrize(
    ("comparison", "threshold", "bounds", "safe"),
    [
        ("<", 0.9, (0.0, 1.0), 1.0),
        ("<=", 0.9, (0.0, 1.0), 1.0),
        ("<", 1.0, (0.0, 1.0), 1.0),  # 1 < 1 is false: the bound is still safe
        ("<=", 1.0, (0.0, 1.0), 2.0),  # 1 <= 1 breaches: move past the threshold
        (">", 0.01, (0.0, 1.0), 0.0),
        (">", 0.0, (0.0, 1.0), 0.0),
        (">=", 0.0, (0.0, 1.0), -1.0),
        (">", 40.0, None, 40.0),
        ("<=", 500.0, None, 1000.0),
    ],
)
def test_safe_value_is_on_the_non_breaching_side(
    comparison: str, threshold: float, bounds: tuple[float, float] | None, safe: float
) -> None:
    value = safe_value(comparison, threshold, bounds)
    assert value == safe
    breaches = {"<": value < threshold, "<=": value <= threshold, ">": value > threshold, ">=": value >= threshold}
    assert not breaches[comparison]


# ------------------------------------------------------------------------------------------
# validation errors name the file, the key path, the line and what is allowed


def test_unknown_key_names_file_line_path_and_allowed_keys(tmp_path: Path) -> None:
    message = spec_error(tmp_path, BASE + "            treshold: 0.9\n")
    assert message.startswith(f"{tmp_path / 'alarms.yaml'}:10: endpoints[0].alarms[0].treshold: unknown key 'treshold'")
    assert "allowed:" in message and "threshold" in message and "min_samples" in message
    assert "\n" not in message


def test_unknown_top_level_key(tmp_path: Path) -> None:
    message = spec_error(tmp_path, "namespace: X\n" + textwrap.dedent(BASE))
    assert ":1: namespace: unknown key 'namespace'; allowed: version, name, defaults, endpoints" in message


@pytest.mark.parametrize(
    ("extra", "expected"),
    [
        ("period: 45", "period: period must be a multiple of 60 seconds; got 45"),
        ("period: 30", "period: period must be a multiple of 60 seconds; got 30 (10, 20 and 30 s alarms need "
                       "high-resolution metrics, and rollguard publishes at 60 s resolution)"),
        ("comparison: '=<'", "comparison must be one of <, <=, >, >=, LessThanThreshold"),
        ("treat_missing_data: notbreaching", "'breaching', 'notBreaching', 'ignore' or 'missing'; got 'notbreaching'"),
        ("scope: fleet", "Input should be 'all' or 'model_version'; got 'fleet'"),
        ("evaluation_periods: 3\n            datapoints_to_alarm: 4",
         "datapoints_to_alarm (4) must not exceed evaluation_periods (3)"),
        ("period: 60\n            evaluation_periods: 1441",
         "period x evaluation_periods = 60 x 1441 = 86460 s exceeds CloudWatch's limit of one day"),
        ("period: 3600\n            evaluation_periods: 169",
         "3600 x 169 = 608400 s exceeds CloudWatch's limit of seven days"),
        ("segment: {merchant_category: 5411}", 'segment value must be a string; quote it, e.g. merchant_category: "5411"'),
        ("segment: {a: x, b: y}", "segment must be a mapping with exactly one attribute"),
        ("gauge: Recall", "set exactly one of metric, expression, gauge; got metric, gauge"),
        ("min_samples: 0", "min_samples must be >= 1 for a rate"),
        ("min_samples: -1", "Input should be greater than or equal to 0"),
        ("sample: tp", "sample applies to expression alarms only"),
        ("threshold: .nan", "threshold must be a finite number"),
    ],
)
def test_alarm_errors_name_the_key_path(tmp_path: Path, extra: str, expected: str) -> None:
    text = BASE if extra.startswith("threshold") else BASE + "            " + extra + "\n"
    message = spec_error(tmp_path, text.replace("threshold: 0.8", extra) if extra.startswith("threshold") else text)
    assert f"{tmp_path / 'alarms.yaml'}:" in message
    assert "endpoints[0].alarms[0]" in message
    assert expected in message


def test_unknown_metric_lists_the_allowed_ones(tmp_path: Path) -> None:
    message = spec_error(tmp_path, BASE.replace("metric: recall", "metric: p100_latency"))
    assert ":7: endpoints[0].alarms[0]: metric must be one of precision, recall, f1, error_rate" in message
    assert "pNN_latency" in message


def test_expression_errors(tmp_path: Path) -> None:
    unknown = BASE.replace("metric: recall", "expression: tp/(tp+fpp)\n            comparison: '<'")
    assert "unknown id 'fpp'; the ids are tp, fp, fn" in spec_error(tmp_path, unknown)
    unbalanced = BASE.replace("metric: recall", "expression: tp/(tp+fp\n            comparison: '<'")
    assert "unbalanced parentheses" in spec_error(tmp_path, unbalanced)
    no_cmp = BASE.replace("metric: recall", "expression: tp/(tp+fp)")
    assert "comparison is required with expression" in spec_error(tmp_path, no_cmp)
    half_guard = BASE.replace("metric: recall", "expression: tp/(tp+fp)\n            comparison: '<'\n"
                              "            min_samples: 10")
    assert "set both sample" in spec_error(tmp_path, half_guard)


def test_gauge_refuses_min_samples(tmp_path: Path) -> None:
    text = BASE.replace("metric: recall", "gauge: Recall\n            comparison: '<'\n            min_samples: 5")
    assert "min_samples does not apply to a gauge" in spec_error(tmp_path, text)


def test_endpoint_errors(tmp_path: Path) -> None:
    both = BASE.replace("variant: AllTraffic", "variant: AllTraffic\n        variants: [a]")
    assert ":3: endpoints[0]: set exactly one of variant (a name) or variants" in spec_error(tmp_path, both)
    bad_name = BASE.replace("name: fraud-ep", "name: fraud_ep")
    assert "endpoints[0].name: endpoint name must be 1-63 letters, digits and hyphens" in spec_error(tmp_path, bad_name)
    no_version = BASE.replace("        model_version: fraud-v6\n", "").replace("threshold: 0.8", "threshold: 0.8\n"
                                                                           "            scope: model_version")
    assert "has scope model_version but endpoint fraud-ep sets no model_version" in spec_error(tmp_path, no_version)
    twice = BASE + "          - {name: recall, metric: precision, threshold: 0.9}\n"
    assert "alarm name 'recall' is used twice in endpoint fraud-ep" in spec_error(tmp_path, twice)


def test_missing_required_keys(tmp_path: Path) -> None:
    message = spec_error(tmp_path, BASE.replace("            threshold: 0.8\n", ""))
    assert "endpoints[0].alarms[0].threshold: required key is missing" in message
    assert "required key is missing" in spec_error(tmp_path, "endpoints: []\n")


def test_alarm_name_over_255_characters_is_refused(tmp_path: Path) -> None:
    long = BASE.replace("fraud-v6", "v" * 128).replace("name: recall", "name: " + "r" * 64)
    long = long.replace("name: fraud-ep", "name: " + "e" * 63).replace("variant: AllTraffic", "variant: " + "a" * 63)
    message = spec_error(tmp_path, long.replace("threshold: 0.8", "threshold: 0.8\n            scope: model_version"))
    assert "over CloudWatch's 255; shorten the alarm, variant or model_version name" in message
    assert "endpoints[0].alarms[0].name" in message


def test_colliding_alarm_names_are_refused(tmp_path: Path) -> None:
    text = """
        name: s
        endpoints:
          - {name: a-b, variant: c, alarms: [{name: x, metric: recall, threshold: 0.5}]}
          - {name: a, variant: b-c, alarms: [{name: x, metric: recall, threshold: 0.5}]}
    """
    message = spec_error(tmp_path, text)
    assert "endpoints[1].alarms[0].name: alarm name rollguard-a-b-c-x is also produced by endpoints[0].alarms[0]" in message


def test_duplicate_yaml_key_and_bad_yaml(tmp_path: Path) -> None:
    assert ":2: name: duplicate key" in spec_error(tmp_path, "name: a\nname: b\nendpoints: []\n")
    assert "invalid YAML" in spec_error(tmp_path, "name: [unclosed\n")
    assert "the spec must be a mapping" in spec_error(tmp_path, "- a\n- b\n")


def test_toml_spec_loads_and_errors_name_the_path(tmp_path: Path) -> None:
    good = """
        name = "fraud"
        [[endpoints]]
        name = "fraud-ep"
        variant = "AllTraffic"
        [[endpoints.alarms]]
        name = "recall"
        metric = "recall"
        threshold = 0.8
        comparison = "<"
    """
    (alarm,) = expand(load_spec(write(tmp_path, good, "alarms.toml")))
    assert alarm.name == "rollguard-fraud-ep-AllTraffic-recall"
    message = spec_error(tmp_path, good.replace("threshold = 0.8", "threshold = 0.8\nperiod = 90"), "alarms.toml")
    assert message.startswith(f"{tmp_path / 'alarms.toml'}: endpoints[0].alarms[0].period: period must be")
    assert "invalid TOML" in spec_error(tmp_path, "name = ", "alarms.toml")


def test_unsupported_extension_and_missing_file(tmp_path: Path) -> None:
    assert "use .yaml, .yml or .toml" in spec_error(tmp_path, "{}", "alarms.json")
    with pytest.raises(SpecError, match="cannot read spec file"):
        load_spec(tmp_path / "nope.yaml")


# ------------------------------------------------------------------------------------------
# CloudWatch's limits on the final request


def _math_request(n_stats: int) -> dict[str, Any]:
    stats: list[dict[str, Any]] = [
        {"Id": f"m{i}", "MetricStat": {"Metric": {"Namespace": "N", "MetricName": f"M{i}"}, "Period": 60,
                                        "Stat": "Sum"}, "ReturnData": False}
        for i in range(n_stats)
    ]
    expr = {"Id": "value", "Expression": "+".join(f"m{i}" for i in range(n_stats)), "ReturnData": True}
    return {"AlarmName": "a", "EvaluationPeriods": 1, "Threshold": 1.0,
            "ComparisonOperator": "GreaterThanThreshold", "Metrics": [*stats, expr]}


def test_more_than_ten_metric_stats_are_refused() -> None:
    assert check_put_metric_alarm(_math_request(10)) == []
    assert any("at most 10 metrics (MetricStat); this one reads 11" in p for p in check_put_metric_alarm(_math_request(11)))


def test_request_limits() -> None:
    req = _math_request(1)
    req["Metrics"][0]["MetricStat"]["Period"] = 90
    assert any("got 90" in p for p in check_put_metric_alarm(req))
    req = _math_request(1) | {"EvaluationPeriods": 2, "DatapointsToAlarm": 3}
    assert any("DatapointsToAlarm (3) must not exceed EvaluationPeriods (2)" in p for p in check_put_metric_alarm(req))
    req = _math_request(1) | {"EvaluationPeriods": 1441}
    assert any("exceeds CloudWatch's limit of one day" in p for p in check_put_metric_alarm(req))
    req = _math_request(1)
    req["Metrics"][-1]["Expression"] = "m0+" * 700 + "m0"
    assert any("CloudWatch allows 1-2048" in p for p in check_put_metric_alarm(req))
    req = _math_request(1)
    req["Metrics"][0]["ReturnData"] = True
    assert any("exactly one Metrics entry must have ReturnData true; 2 do" in p for p in check_put_metric_alarm(req))
    req = _math_request(1) | {"MetricName": "X"}
    assert any("must not also set MetricName" in p for p in check_put_metric_alarm(req))
    single = {"AlarmName": "a", "EvaluationPeriods": 1, "Threshold": 1.0, "ComparisonOperator": "LessThanThreshold",
              "Namespace": "N", "MetricName": "M", "Period": 30, "Statistic": "Sum", "ExtendedStatistic": "p99"}
    assert any("exactly one of Statistic and ExtendedStatistic" in p for p in check_put_metric_alarm(single))


def test_to_put_metric_alarm_refuses_what_cloudwatch_would() -> None:
    (alarm,) = expand(spec_with({"name": "r", "metric": "recall", "threshold": 0.8}))
    bad = type(alarm)(**{**{f: getattr(alarm, f) for f in alarm.__dataclass_fields__}, "period": 45})
    with pytest.raises(AlarmLimitError, match="got 45"):
        to_put_metric_alarm(bad, "Rollguard")


# ------------------------------------------------------------------------------------------
# the `rollguard alarms` command (AWS-free parts; plan/apply run against moto in integration)


class Settings:
    """What the command reads from `service.settings.Settings` (alarms.aws_clients.AwsSettings)."""

    namespace = "Rollguard"
    aws_endpoint_url = None
    aws_region = "us-east-1"


def no_settings() -> Settings:
    raise AssertionError("this subcommand must not need the settings")


def test_cli_simulate_dispatches_lazily(monkeypatch: pytest.MonkeyPatch) -> None:
    import sys
    import types

    seen: list[list[str]] = []

    def fake_main(argv: list[str]) -> int:
        seen.append(list(argv))
        return 7

    fake = types.ModuleType("alarms.simulate")
    fake.main = fake_main  # type: ignore[attr-defined]
    monkeypatch.setitem(sys.modules, "alarms.simulate", fake)
    assert cli.main(["simulate", "--spec", "x.yaml", "--foo"], settings=no_settings) == 7
    assert seen == [["--spec", "x.yaml", "--foo"]]


def test_cli_show_and_errors(tmp_path: Path) -> None:
    import io
    import json

    out, err = io.StringIO(), io.StringIO()
    assert cli.main(["show", "--spec", str(EXAMPLE)], settings=Settings, out=out, err=err) == 0
    requests = json.loads(out.getvalue())
    spec = load_spec(EXAMPLE)
    assert [r["AlarmName"] for r in requests] == [a.name for a in expand(spec)] + [v.name for v in verdict_alarms(spec)]

    bad = write(tmp_path, BASE.replace("threshold: 0.8", "threshold: 0.8\n            period: 45"))

    def no_aws(settings: Any) -> Any:
        raise AssertionError("a bad spec must be refused before any AWS client is made")

    err = io.StringIO()
    assert cli.main(["plan", "--spec", str(bad)], settings=Settings, client_factory=no_aws, out=io.StringIO(),
                    err=err) == 2
    assert f"{bad}:10: endpoints[0].alarms[0].period" in err.getvalue()
    assert cli.main(["frobnicate"], settings=no_settings, out=io.StringIO(), err=io.StringIO()) == 2


def test_what_aws_echoes_differently_is_not_a_change() -> None:
    request = request_for({"name": "r", "metric": "recall", "threshold": 1, "scope": "model_version"})
    echoed = {k: v for k, v in request.items() if k not in ("Tags", "InsufficientDataActions")}
    echoed |= {"Dimensions": [], "Threshold": 1, "StateValue": "ALARM", "AlarmArn": "arn:x",
               "Metrics": [dict(q) for q in reversed(request["Metrics"])]}
    tp = echoed["Metrics"][-1]
    tp["MetricStat"] = {**tp["MetricStat"], "Metric": {**tp["MetricStat"]["Metric"],
                        "Dimensions": list(reversed(tp["MetricStat"]["Metric"]["Dimensions"]))}}
    assert diff(echoed, request) == ()
    changed = echoed | {"TreatMissingData": "breaching"}
    (d,) = diff(changed, request)
    assert (d.field, d.current, d.desired) == ("TreatMissingData", "breaching", "notBreaching")
    fewer = echoed | {"Metrics": echoed["Metrics"][:-1]}
    assert {d.field for d in diff(fewer, request)} >= {"Metrics[tp]", "Metrics[tp].Stat"}


def test_the_backtest_evaluator_accepts_every_generated_request() -> None:
    for alarm in expand(load_spec(EXAMPLE)):
        evaluator.Alarm.from_request(to_put_metric_alarm(alarm, "Rollguard"))
