"""One fail-safe verdict alarm per comparison: its PutMetricAlarm request, judged by rollguard's own
CloudWatch-rules evaluator (FAIL -> ALARM, PASS/INCONCLUSIVE -> OK, missing -> ALARM), synced like
every owned alarm, listed by the guardrail and counted by the cost estimate."""
from __future__ import annotations

import io
import json
from collections.abc import Iterable
from pathlib import Path
from typing import Any

import boto3
import botocore.session
import pytest
from botocore.stub import Stubber
from botocore.validate import validate_parameters

from alarms import cost, evaluator, guardrail
from alarms.evaluator import Datum, State, evaluate, timeline
from alarms.spec import (
    SpecError,
    check_put_metric_alarm,
    guardrail_alarm_names,
    load_spec,
    parse_spec,
    to_put_metric_alarm,
    verdict_alarms,
)
from alarms.sync import apply, desired_requests, plan
from pipelines import metrics
from tests.unit.alarms.helpers import END

NS = "Rollguard"
ARN = "arn:aws:cloudwatch:us-east-1:123456789012:alarm:"
_PUT = botocore.session.get_session().get_service_model("cloudwatch").operation_model("PutMetricAlarm").input_shape
EXAMPLE = Path(__file__).resolve().parents[3] / "examples" / "alarms.yaml"
VERDICT_NAME = "rollguard-fraud-ep-verdict-fraud-v6-vs-v5"
PASS, INCONCLUSIVE, FAIL = (metrics.VERDICT_VALUES[s] for s in ("PASS", "INCONCLUSIVE", "FAIL"))

SPEC_TEXT = """\
name: fraud
endpoints:
  - name: fraud-ep
    variant: AllTraffic
    alarms:
      - {name: recall, metric: recall, threshold: 0.8}
comparisons:
  - name: fraud-v6-vs-v5
    endpoint: fraud-ep
    baseline: {model_version: fraud-v5}
    candidate: {model_version: fraud-v6}
    metrics:
      recall: {tolerance: 0.02}
      latency_over: {threshold_ms: 40, tolerance: 0.005}
    segments: [merchant_category]
"""
SPEC = parse_spec(SPEC_TEXT, source="t.yaml")


def verdict_request(spec: Any = SPEC) -> dict[str, Any]:
    (verdict,) = verdict_alarms(spec)
    request = to_put_metric_alarm(verdict, NS)
    validate_parameters(request, _PUT)
    assert check_put_metric_alarm(request) == []
    return request


def minutes(count: int) -> list[int]:
    """The starts of the ``count`` minutes before END."""
    return [END - 60 * k for k in range(count, 0, -1)]


def points(value: float, starts: Iterable[int]) -> list[Datum]:
    return [Datum(t + 5, (value,), (1.0,)) for t in starts]


def data(verdicts: list[float] | None = None, alive: bool = True, starts: list[int] | None = None) -> dict[str, list[Datum]]:
    """A verdict per minute (oldest first, ending at END) and, with ``alive``, the heartbeat too."""
    starts = minutes(len(verdicts or [])) if starts is None else starts
    out: dict[str, list[Datum]] = {}
    if verdicts is not None:
        out["verdict"] = [d for t, v in zip(starts, verdicts) for d in points(v, [t])]
    if alive:
        out["alive"] = points(1.0, starts)
    return out


# ---------------------------------------------------------------------------------------------
# the request


def test_the_request_shape() -> None:
    request = verdict_request()
    assert request["AlarmName"] == VERDICT_NAME
    assert {k: request[k] for k in ("EvaluationPeriods", "DatapointsToAlarm", "Threshold", "ComparisonOperator",
                                     "TreatMissingData")} == {
        "EvaluationPeriods": 1, "DatapointsToAlarm": 1, "Threshold": 2.0,
        "ComparisonOperator": "GreaterThanOrEqualToThreshold", "TreatMissingData": "breaching"}
    verdict, alive, value = request["Metrics"]
    assert verdict == {
        "Id": "verdict",
        "MetricStat": {"Metric": {"Namespace": NS, "MetricName": metrics.VERDICT, "Dimensions": [
            {"Name": metrics.ENDPOINT_NAME, "Value": "fraud-ep"}, {"Name": metrics.COMPARISON, "Value": "fraud-v6-vs-v5"}]},
            "Period": 60, "Stat": "Maximum"},
        "ReturnData": False,
    }
    assert alive["MetricStat"]["Metric"] == {"Namespace": NS, "MetricName": metrics.HEARTBEAT}
    assert value["Expression"] == "IF(alive > 0 AND verdict >= 0, verdict)" and value["ReturnData"] is True
    assert request["Tags"] == [{"Key": "rollguard:owner", "Value": "rollguard"}, {"Key": "rollguard:spec", "Value": "fraud"}]


def test_the_description_says_what_fail_means() -> None:
    text = verdict_request()["AlarmDescription"]
    assert ("FAIL: candidate model version fraud-v6 worse than baseline model version fraud-v5 by more than the "
            "tolerance (recall 0.02, latency_over 40 ms 0.005) on some metric, pooled or in a merchant_category "
            "segment, at confidence 99 % (alpha 0.01)") in text
    assert "while the Verdict or rollguard's heartbeat is missing" in text
    own = parse_spec(SPEC_TEXT + "    description: page the fraud team\n", source="t.yaml")
    assert verdict_request(own)["AlarmDescription"] == "page the fraud team"


def test_actions_are_passed_through() -> None:
    arn = "arn:aws:sns:us-east-1:123456789012:fraud"
    spec = parse_spec(SPEC_TEXT + f"    alarm_actions: ['{arn}']\n    ok_actions: ['{arn}']\n", source="t.yaml")
    request = verdict_request(spec)
    assert request["AlarmActions"] == [arn] and request["OKActions"] == [arn]
    with pytest.raises(SpecError, match="at most 5"):
        parse_spec(SPEC_TEXT + f"    alarm_actions: {json.dumps([arn] * 6)}\n", source="t.yaml")


# ---------------------------------------------------------------------------------------------
# judged with CloudWatch's rules


@pytest.mark.parametrize(("value", "state"), [(PASS, State.OK), (INCONCLUSIVE, State.OK), (FAIL, State.ALARM)])
def test_the_latest_verdict_decides(value: float, state: State) -> None:
    alarm = evaluator.Alarm.from_request(verdict_request())
    result = evaluate(alarm, data([PASS, PASS, value]), END)
    assert result.state is state, result.reason


def test_one_fail_period_is_enough_and_the_maximum_wins_within_a_period() -> None:
    alarm = evaluator.Alarm.from_request(verdict_request())
    starts = minutes(3)
    both = data([PASS, PASS, PASS], starts=starts)
    both["verdict"] += points(FAIL, starts[-1:])  # two instances disagree in the newest minute
    assert evaluate(alarm, both, END).state is State.ALARM


def test_missing_verdicts_go_to_alarm() -> None:
    alarm = evaluator.Alarm.from_request(verdict_request())
    assert evaluate(alarm, {}, END).state is State.ALARM  # nothing at all: a dead daemon
    assert evaluate(alarm, data(None, starts=minutes(3)), END).state is State.ALARM  # alive, but no verdict
    assert evaluate(alarm, data([PASS] * 3, alive=False), END).state is State.ALARM  # verdicts without heartbeat


def test_the_newest_periods_in_flight_are_skipped_not_breaching() -> None:
    alarm = evaluator.Alarm.from_request(verdict_request())
    starts = minutes(5)[:3]  # the last two minutes' verdicts and heartbeats are still on their way
    assert evaluate(alarm, data([PASS] * 3, starts=starts), END).state is State.OK
    assert evaluate(alarm, data([FAIL] * 3, starts=starts), END).state is State.ALARM


def test_a_daemon_that_dies_alarms_within_three_minutes() -> None:
    alarm = evaluator.Alarm.from_request(verdict_request())
    history = minutes(30)
    changes = timeline(alarm, data([PASS] * 20, starts=history[:20]), history[0] + 180, END)
    assert [c.state for c in changes] == [State.OK, State.ALARM]
    assert changes[1].timestamp - history[20] <= 180


def test_the_shorter_heartbeat_guard_would_read_a_missing_verdict_as_pass() -> None:
    """Why the request ANDs both series: IF's true branch reads a missing point as 0 (PASS)."""
    naive = verdict_request()
    naive["Metrics"][-1] = {**naive["Metrics"][-1], "Expression": "IF(alive > 0, verdict)"}
    alive_without_verdict = data(None, starts=minutes(3))
    assert evaluate(evaluator.Alarm.from_request(naive), alive_without_verdict, END).state is State.OK
    assert evaluate(evaluator.Alarm.from_request(verdict_request()), alive_without_verdict, END).state is State.ALARM


# ---------------------------------------------------------------------------------------------
# sync: owned, idempotent, deleted when the comparison leaves the spec


OWNED = [{"Key": "rollguard:owner", "Value": "rollguard"}, {"Key": "rollguard:spec", "Value": "fraud"}]
DESCRIBE = {"AlarmNamePrefix": "rollguard-", "AlarmTypes": ["MetricAlarm", "CompositeAlarm"]}


def described(request: dict[str, Any]) -> dict[str, Any]:
    return {**{k: v for k, v in request.items() if k != "Tags"}, "AlarmArn": ARN + request["AlarmName"]}


def client() -> Any:
    return boto3.client("cloudwatch", region_name="us-east-1", aws_access_key_id="x", aws_secret_access_key="x")


def test_plan_creates_the_verdict_alarm_and_a_second_apply_changes_nothing() -> None:
    desired = desired_requests(SPEC, NS)
    assert list(desired) == ["rollguard-fraud-ep-AllTraffic-recall", VERDICT_NAME]
    cw = client()
    with Stubber(cw) as stub:
        stub.add_response("describe_alarms", {"MetricAlarms": []}, DESCRIBE)
        changes = plan(SPEC, cw, NS)
        assert [(c.action, c.alarm_name) for c in changes] == [
            ("create", "rollguard-fraud-ep-AllTraffic-recall"), ("create", VERDICT_NAME)]
        assert changes[1].describe().split() == ["create", VERDICT_NAME]
        for change in changes:
            stub.add_response("put_metric_alarm", {}, desired[change.alarm_name])
        apply(SPEC, cw, NS, changes)
        stub.add_response("describe_alarms", {"MetricAlarms": [described(r) for r in desired.values()]}, DESCRIBE)
        for name in desired:
            stub.add_response("list_tags_for_resource", {"Tags": OWNED}, {"ResourceARN": ARN + name})
        again = plan(SPEC, cw, NS)
        stub.assert_no_pending_responses()
    assert [c.action for c in again] == ["unchanged", "unchanged"]


def test_apply_deletes_the_verdict_alarm_of_a_comparison_that_left_the_spec() -> None:
    desired = desired_requests(SPEC, NS)
    without = parse_spec(SPEC_TEXT.split("comparisons:")[0], source="t.yaml")
    cw = client()
    with Stubber(cw) as stub:
        stub.add_response("describe_alarms", {"MetricAlarms": [described(r) for r in desired.values()]}, DESCRIBE)
        for name in desired:
            stub.add_response("list_tags_for_resource", {"Tags": OWNED}, {"ResourceARN": ARN + name})
        stub.add_response("delete_alarms", {}, {"AlarmNames": [VERDICT_NAME]})
        done = apply(without, cw, NS)
        stub.assert_no_pending_responses()
    assert [(c.action, c.alarm_name) for c in done] == [("delete", VERDICT_NAME)]


# ---------------------------------------------------------------------------------------------
# guardrail and cost


class Settings:
    namespace = NS
    aws_endpoint_url = None
    aws_region = "us-east-1"


def run_guardrail(argv: list[str]) -> tuple[int, str, str]:
    out, err = io.StringIO(), io.StringIO()
    return guardrail.main(argv, settings=Settings, out=out, err=err), out.getvalue(), err.getvalue()


def spec_file(tmp_path: Path, text: str) -> str:
    path = tmp_path / "alarms.yaml"
    path.write_text(text)
    return str(path)


def test_the_guardrail_lists_the_verdict_alarm_one_slot_each(tmp_path: Path) -> None:
    code, out, err = run_guardrail(["--endpoint", "fraud-ep", "--endpoint-config", "fraud-ep-v6",
                                    "--spec", spec_file(tmp_path, SPEC_TEXT), "--linear", "10%"])
    assert code == 0, err
    alarms = json.loads(out)["DeploymentConfig"]["AutoRollbackConfiguration"]["Alarms"]
    assert alarms == [{"AlarmName": "rollguard-fraud-ep-AllTraffic-recall"}, {"AlarmName": VERDICT_NAME}]
    off = parse_spec(SPEC_TEXT + "    guardrail: false\n", source="t.yaml")
    assert guardrail_alarm_names(off, "fraud-ep") == ["rollguard-fraud-ep-AllTraffic-recall"]


def test_a_spec_of_comparisons_only_is_enough_for_a_guardrail(tmp_path: Path) -> None:
    only = "name: fraud\n" + SPEC_TEXT[SPEC_TEXT.index("comparisons:"):]
    code, out, err = run_guardrail(["--endpoint", "fraud-ep", "--endpoint-config", "c", "--spec", spec_file(tmp_path, only)])
    assert code == 0, err
    assert json.loads(out)["DeploymentConfig"]["AutoRollbackConfiguration"]["Alarms"] == [{"AlarmName": VERDICT_NAME}]


def test_the_guardrail_refuses_more_than_ten_alarms_counting_verdicts(tmp_path: Path) -> None:
    alarms = "".join(f"      - {{name: a{i}, metric: recall, threshold: 0.8}}\n" for i in range(10))
    text = SPEC_TEXT.replace("      - {name: recall, metric: recall, threshold: 0.8}\n", alarms)
    code, out, err = run_guardrail(["--endpoint", "fraud-ep", "--endpoint-config", "c", "--spec", spec_file(tmp_path, text)])
    assert code == 2 and out == ""
    assert "has 11 guardrail alarms for endpoint fraud-ep (10 alarms, 1 comparison verdicts:" in err
    assert "takes at most 10; set guardrail: false on the alarms or comparisons" in err


def test_the_example_guardrail_stays_within_sagemakers_ten() -> None:
    names = guardrail_alarm_names(load_spec(EXAMPLE), "fraud-ep")
    assert VERDICT_NAME in names and "rollguard-fraud-ep-verdict-v6-shadow-vs-v5" not in names
    assert len(names) <= guardrail.MAX_ALARMS


def test_cost_counts_the_verdict_alarm_and_its_metric() -> None:
    requests = list(desired_requests(SPEC, NS).values())
    alarms = cost.alarm_cost(requests)
    assert alarms.alarms == 2 and alarms.metrics == 3 + 2  # recall reads tp, fn and alive; the verdict two
    shape = cost.Shape((cost.Fleet("fraud-ep", "AllTraffic"),), comparisons=(("fraud-ep", "fraud-v6-vs-v5"),))
    published = cost.published_metrics(shape)
    assert published[(metrics.VERDICT, (("EndpointName", "fraud-ep"), ("Comparison", "fraud-v6-vs-v5")))] == "verdicts"
    stats = [q["MetricStat"]["Metric"] for q in verdict_request()["Metrics"] if "MetricStat" in q]
    read = {(s["MetricName"], tuple((d["Name"], d["Value"]) for d in s.get("Dimensions", ()))) for s in stats}
    assert read <= set(published)
    assert cost.estimate(shape, requests).metrics_by_kind["verdicts"] == 1
