"""Plan and apply against a real botocore client answered by Stubber: every DescribeAlarms page
is read through boto3's paginator, and only owned alarms are ever changed."""
from __future__ import annotations

from typing import Any

import boto3
import yaml
from botocore.stub import Stubber

from alarms.spec import parse_spec
from alarms.sync import apply, desired_requests, plan

NS = "Rollguard"
ARN = "arn:aws:cloudwatch:us-east-1:123456789012:alarm:"
SPEC = parse_spec(yaml.safe_dump({"name": "fraud", "endpoints": [{"name": "ep", "variant": "AllTraffic", "alarms": [
    {"name": "recall", "metric": "recall", "threshold": 0.8},
    {"name": "errors", "metric": "error_rate", "threshold": 0.01},
]}]}), source="t.yaml")
RECALL, ERRORS, GONE = "rollguard-ep-AllTraffic-recall", "rollguard-ep-AllTraffic-errors", "rollguard-ep-AllTraffic-old"
OWNED = [{"Key": "rollguard:owner", "Value": "rollguard"}, {"Key": "rollguard:spec", "Value": "fraud"}]
DESCRIBE = {"AlarmNamePrefix": "rollguard-", "AlarmTypes": ["MetricAlarm", "CompositeAlarm"]}


def described(request: dict[str, Any]) -> dict[str, Any]:
    """A MetricAlarm as DescribeAlarms echoes a PutMetricAlarm request (no Tags, an ARN)."""
    return {**{k: v for k, v in request.items() if k != "Tags"}, "AlarmArn": ARN + request["AlarmName"]}


def client() -> Any:
    return boto3.client("cloudwatch", region_name="us-east-1", aws_access_key_id="x", aws_secret_access_key="x")


def test_plan_reads_every_page_then_apply_creates_and_deletes_only_what_differs() -> None:
    desired = desired_requests(SPEC, NS)
    gone = {**described(desired[RECALL]), "AlarmName": GONE, "AlarmArn": ARN + GONE}
    cw = client()
    with Stubber(cw) as stub:
        stub.add_response("describe_alarms", {"MetricAlarms": [described(desired[RECALL])], "NextToken": "2"},
                          DESCRIBE)
        stub.add_response("list_tags_for_resource", {"Tags": OWNED}, {"ResourceARN": ARN + RECALL})
        stub.add_response("describe_alarms", {"MetricAlarms": [gone], "CompositeAlarms": []},
                          {**DESCRIBE, "NextToken": "2"})
        stub.add_response("list_tags_for_resource", {"Tags": OWNED}, {"ResourceARN": ARN + GONE})
        changes = plan(SPEC, cw, NS)
        assert [(c.action, c.alarm_name) for c in changes] == [
            ("unchanged", RECALL), ("create", ERRORS), ("delete", GONE)]
        stub.add_response("put_metric_alarm", {}, desired[ERRORS])
        stub.add_response("delete_alarms", {}, {"AlarmNames": [GONE]})
        done = apply(SPEC, cw, NS, changes)
        stub.assert_no_pending_responses()
    assert [(c.action, c.alarm_name) for c in done] == [("create", ERRORS), ("delete", GONE)]


def test_an_alarm_of_another_owner_is_a_conflict_and_never_deleted() -> None:
    desired = desired_requests(SPEC, NS)
    cw = client()
    with Stubber(cw) as stub:
        stub.add_response("describe_alarms", {"MetricAlarms": [described(desired[RECALL])]}, DESCRIBE)
        stub.add_response("list_tags_for_resource", {"Tags": []}, {"ResourceARN": ARN + RECALL})
        changes = plan(SPEC, cw, NS)
        stub.assert_no_pending_responses()
    assert [(c.action, c.alarm_name) for c in changes] == [("conflict", RECALL), ("create", ERRORS)]
    assert "not rollguard's" in changes[0].detail
