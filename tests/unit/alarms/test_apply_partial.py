"""`alarms apply` checks every request before the first call, and when CloudWatch still refuses
one mid-way, says exactly which alarms were and were not applied (Stubber answers the calls)."""
from __future__ import annotations

import io
from pathlib import Path
from typing import Any

import boto3
import pytest
import yaml
from botocore.stub import Stubber

from alarms import cli
from alarms.spec import parse_spec
from alarms.sync import Change, PartialApplyError, SyncError, apply, desired_requests

NS = "Rollguard"
ARN = "arn:aws:cloudwatch:us-east-1:123456789012:alarm:"
DESCRIBE = {"AlarmNamePrefix": "rollguard-", "AlarmTypes": ["MetricAlarm", "CompositeAlarm"]}
OWNED = [{"Key": "rollguard:owner", "Value": "rollguard"}, {"Key": "rollguard:spec", "Value": "fraud"}]
METRICS = ["precision", "recall", "f1", "error_rate", "label_coverage"]
DATA = {"name": "fraud", "endpoints": [{"name": "ep", "variant": "AllTraffic", "alarms": [
    {"name": f"a{i}", "metric": m, "threshold": 0.5} for i, m in enumerate(METRICS, 1)]}]}
SPEC = parse_spec(yaml.safe_dump(DATA, sort_keys=False), source="t.yaml")
NAMES = [f"rollguard-ep-AllTraffic-a{i}" for i in range(1, 6)]
GONE = "rollguard-ep-AllTraffic-old"


def client() -> Any:
    return boto3.client("cloudwatch", region_name="us-east-1", aws_access_key_id="x", aws_secret_access_key="x")


def stub_plan(stub: Stubber) -> None:
    """CloudWatch holds one owned alarm that left the spec: apply creates a1..a5, then deletes it."""
    gone = {**desired_requests(SPEC, NS)[NAMES[0]], "AlarmName": GONE, "AlarmArn": ARN + GONE}
    gone.pop("Tags")
    stub.add_response("describe_alarms", {"MetricAlarms": [gone]}, DESCRIBE)
    stub.add_response("list_tags_for_resource", {"Tags": OWNED}, {"ResourceARN": ARN + GONE})


def test_the_third_put_failing_reports_two_applied_and_the_rest_not() -> None:
    desired = desired_requests(SPEC, NS)
    cw = client()
    with Stubber(cw) as stub:
        stub_plan(stub)
        stub.add_response("put_metric_alarm", {}, desired[NAMES[0]])
        stub.add_response("put_metric_alarm", {}, desired[NAMES[1]])
        stub.add_client_error("put_metric_alarm", "LimitExceeded", "too many alarms",
                              expected_params=desired[NAMES[2]])
        with pytest.raises(PartialApplyError) as info:
            apply(SPEC, cw, NS)
        stub.assert_no_pending_responses()  # nothing after the failure was even tried
    error = info.value
    assert [c.alarm_name for c in error.applied] == NAMES[:2]
    assert [(c.action, c.alarm_name) for c in error.not_applied] == [("create", n) for n in NAMES[2:]] + [
        ("delete", GONE)]
    assert [c.alarm_name for c in error.failed] == [NAMES[2]]
    assert error.operation == "PutMetricAlarm" and "LimitExceeded" in str(error.cause)
    assert str(error) == f"PutMetricAlarm failed for {NAMES[2]} after 2 of 6 changes"


def test_a_failed_delete_after_every_put_reports_the_puts_applied() -> None:
    cw = client()
    with Stubber(cw) as stub:
        stub_plan(stub)
        for name in NAMES:
            stub.add_response("put_metric_alarm", {}, desired_requests(SPEC, NS)[name])
        stub.add_client_error("delete_alarms", "ResourceNotFound", "gone", expected_params={"AlarmNames": [GONE]})
        with pytest.raises(PartialApplyError) as info:
            apply(SPEC, cw, NS)
    assert [c.alarm_name for c in info.value.applied] == NAMES
    assert [c.alarm_name for c in info.value.not_applied] == [GONE]
    assert info.value.operation == "DeleteAlarms"


def test_a_request_cloudwatch_would_refuse_stops_apply_before_any_call() -> None:
    desired = desired_requests(SPEC, NS)
    bad = dict(desired[NAMES[2]])
    bad["Metrics"] = [*bad["Metrics"][:-1], {**bad["Metrics"][-1], "Expression": "FOOBAR(tp)"}]
    changes = [Change("create", n, bad if n == NAMES[2] else desired[n]) for n in NAMES] + [Change("delete", GONE)]
    cw = client()
    with Stubber(cw) as stub:  # no response stubbed: any call would fail the test
        with pytest.raises(SyncError) as info:
            apply(SPEC, cw, NS, changes)
        stub.assert_no_pending_responses()
    assert not isinstance(info.value, PartialApplyError)
    assert str(info.value).startswith(
        f"1 alarm(s) CloudWatch would refuse, nothing changed: {NAMES[2]}: expression value: unknown function "
        "'FOOBAR' at position 0")


class Settings:
    namespace, aws_endpoint_url, aws_region = NS, None, "us-east-1"


def test_cli_apply_prints_what_was_applied_and_what_was_not_and_exits_2(tmp_path: Path) -> None:
    desired = desired_requests(SPEC, NS)
    path = tmp_path / "alarms.yaml"
    path.write_text(yaml.safe_dump(DATA, sort_keys=False))
    cw = client()
    out, err = io.StringIO(), io.StringIO()
    with Stubber(cw) as stub:
        stub_plan(stub)
        stub.add_response("put_metric_alarm", {}, desired[NAMES[0]])
        stub.add_response("put_metric_alarm", {}, desired[NAMES[1]])
        stub.add_client_error("put_metric_alarm", "LimitExceeded", "too many alarms")
        code = cli.main(["apply", "--spec", str(path)], settings=Settings, client_factory=lambda _: cw, out=out,
                        err=err)
    assert code == 2
    assert out.getvalue() == (
        f"created   {NAMES[0]}\n"
        f"created   {NAMES[1]}\n"
        "apply (fraud): incomplete: 2 created, 0 updated, 0 deleted; 4 not applied\n"
    )
    assert err.getvalue().splitlines() == [
        f"rollguard alarms apply: PutMetricAlarm failed for {NAMES[2]}: LimitExceededFault: An error occurred "
        "(LimitExceeded) when calling the PutMetricAlarm operation: too many alarms",
        f"rollguard alarms apply: applied (2): {NAMES[0]}, {NAMES[1]}",
        f"rollguard alarms apply: not applied (4): create {NAMES[2]}, create {NAMES[3]}, create {NAMES[4]}, "
        f"delete {GONE}",
        "rollguard alarms apply: fix the cause and run apply again: it applies only what is still missing",
    ]
