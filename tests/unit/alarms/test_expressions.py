"""Metric math as CloudWatch takes it in alarms: a spec's expressions at load (so at `plan`), and
every Expression of every PutMetricAlarm request in `check_put_metric_alarm`."""
from __future__ import annotations

import io
import textwrap
from pathlib import Path
from typing import Any

import pytest

from alarms import cli
from alarms.spec import check_put_metric_alarm, expression_problem
from pipelines import cloudwatch_rules

FUNCTIONS_TABLE = {  # the user guide's "Functions supported for metric math", as of this writing
    "ABS", "ANOMALY_DETECTION_BAND", "AVG", "CEIL", "DATAPOINT_COUNT", "DB_PERF_INSIGHTS", "DIFF", "DIFF_TIME",
    "FILL", "FIRST", "LAST", "FLOOR", "IF", "INSIGHT_RULE_METRIC", "LAMBDA", "LOG", "LOG10", "MAX",
    "METRIC_COUNT", "METRICS", "MIN", "MINUTE", "HOUR", "DAY", "DATE", "MONTH", "YEAR", "EPOCH", "PERIOD",
    "RATE", "REMOVE_EMPTY", "RUNNING_SUM", "SEARCH", "SERVICE_QUOTA", "SLICE", "SORT", "STDDEV", "SUM",
    "TIME_SERIES",
}


def test_the_alarm_functions_are_the_documented_table_less_search_and_the_band() -> None:
    assert cloudwatch_rules.ALARM_MATH_FUNCTIONS == FUNCTIONS_TABLE - {"SEARCH", "ANOMALY_DETECTION_BAND"}
    assert not {"SQRT", "NOT"} & (cloudwatch_rules.ALARM_MATH_FUNCTIONS | cloudwatch_rules.MATH_WORDS)


@pytest.mark.parametrize(
    ("expression", "problem"),
    [
        ("FOOBAR(tp)", "unknown function 'FOOBAR' at position 0"),
        ("SQRT(tp)", "unknown function 'SQRT' at position 0"),
        ("NOT tp", "operator 'NOT' at position 0 is not CloudWatch metric math (its logical operators are "
                   "AND/&&, OR/||; for NOT x write x == 0)"),
        ("IF(!(tp > 0), 1, 0)", "operator '!' at position 3 is not CloudWatch metric math"),
        ("tp > 1 && fp > 1 || errors > 0", None),
        ("tp > 1 AND fp > 1 OR errors != 0", None),
        ("tp ^ 0.5", None),
        ("FILL(tp, REPEAT) + FILL(fp, LINEAR)", None),
    ],
)
def test_user_expressions(expression: str, problem: str | None) -> None:
    found = expression_problem(expression)
    assert (found is None) if problem is None else (found is not None and found.startswith(problem)), found


def _request(expression: str) -> dict[str, Any]:
    stat = {"Id": "tp", "MetricStat": {"Metric": {"Namespace": "N", "MetricName": "TruePositives"}, "Period": 60,
                                       "Stat": "Sum"}, "ReturnData": False}
    return {"AlarmName": "a", "EvaluationPeriods": 1, "Threshold": 1.0, "ComparisonOperator": "GreaterThanThreshold",
            "Metrics": [stat, {"Id": "value", "Expression": expression, "ReturnData": True}]}


@pytest.mark.parametrize(
    ("expression", "problem"),
    [
        ("FILL(tp, 0) * 2", None),
        ("IF(tp >= 10 && tp < 100, tp, 0)", None),
        ("FOOBAR(tp)", "expression value: unknown function 'FOOBAR' at position 0"),
        ("SQRT(tp)", "expression value: unknown function 'SQRT'"),
        ("NOT tp", "expression value: operator 'NOT' at position 0"),
        ("tp + fp", "expression value: unknown id 'fp'; the ids are tp"),
        ("value + 1", "expression value: unknown id 'value'; the ids are tp"),  # not itself
        ("(tp", "expression value: unbalanced parentheses"),
    ],
)
def test_every_request_expression_is_checked(expression: str, problem: str | None) -> None:
    found = check_put_metric_alarm(_request(expression))
    assert found == [] if problem is None else any(p.startswith(problem) for p in found), found


@pytest.mark.parametrize(
    ("expression", "problem"),
    [("FOOBAR(tp)", "unknown function 'FOOBAR' at position 0"), ("SQRT(tp)", "unknown function 'SQRT'"),
     ("NOT tp", "operator 'NOT' at position 0")],
)
def test_plan_refuses_what_cloudwatch_lacks_before_any_aws_client(tmp_path: Path, expression: str,
                                                                   problem: str) -> None:
    path = tmp_path / "alarms.yaml"
    path.write_text(textwrap.dedent(f"""
        name: fraud
        endpoints:
          - name: fraud-ep
            variant: AllTraffic
            alarms:
              - name: odd
                expression: "{expression}"
                comparison: ">"
                threshold: 0
    """).lstrip())

    def no_aws(settings: Any) -> Any:
        raise AssertionError("a bad expression must be refused before any AWS client is made")

    class Settings:
        namespace, aws_endpoint_url, aws_region = "Rollguard", None, "us-east-1"

    err = io.StringIO()
    code = cli.main(["plan", "--spec", str(path)], settings=Settings, client_factory=no_aws, out=io.StringIO(),
                    err=err)
    assert code == 2
    assert f"{path}:6: endpoints[0].alarms[0]: expression: {problem}" in err.getvalue()
