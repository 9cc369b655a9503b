"""`alarms plan` warns about alarms whose series CloudWatch has never received (ListMetrics through
boto3's paginator, answered by Stubber); the plan itself, its output and exit code, are unchanged."""
from __future__ import annotations

import io
from pathlib import Path
from typing import Any

import boto3
import yaml
from botocore.stub import Stubber

from alarms import cli
from alarms.published import never_published
from alarms.spec import expand, parse_spec
from alarms.sync import desired_requests

NS = "Rollguard"
DATA = {"name": "fraud", "endpoints": [{"name": "fraud-ep", "variant": "AllTraffic", "alarms": [
    {"name": "recall", "metric": "recall", "threshold": 0.8},
    {"name": "agreement", "metric": "shadow_agreement", "threshold": 0.95, "variant": "v6-shadow"},
]}]}
SPEC = parse_spec(yaml.safe_dump(DATA, sort_keys=False), source="t.yaml")
ALL = [{"Name": "EndpointName", "Value": "fraud-ep"}, {"Name": "VariantName", "Value": "AllTraffic"}]
SHADOW = [{"Name": "EndpointName", "Value": "fraud-ep"}, {"Name": "VariantName", "Value": "v6-shadow"}]
SHADOW_WARNING = (
    "rollguard alarms plan: warning: rollguard-fraud-ep-v6-shadow-agreement watches a series with no data in "
    "CloudWatch: none of ShadowAgreements, ShadowComparisons in Rollguard with EndpointName=fraud-ep, "
    "VariantName=v6-shadow was published in the last two weeks (ListMetrics); check the endpoint, variant, "
    "model_version and segment\n"
)


def client() -> Any:
    return boto3.client("cloudwatch", region_name="us-east-1", aws_access_key_id="x", aws_secret_access_key="x")


def metric(name: str, dims: list[dict[str, str]]) -> dict[str, Any]:
    return {"Namespace": NS, "MetricName": name, "Dimensions": dims}


def listed(name: str, dims: list[dict[str, str]], **extra: Any) -> dict[str, Any]:
    return {"Namespace": NS, "MetricName": name, "Dimensions": dims, **extra}


def stub_list_metrics(stub: Stubber) -> None:
    """TruePositives of AllTraffic exists (on page 2, after a ModelVersion copy); nothing of v6-shadow does,
    except a segment copy, which is another series."""
    with_version = [*ALL, {"Name": "ModelVersion", "Value": "fraud-v6"}]
    stub.add_response("list_metrics", {"Metrics": [metric("TruePositives", with_version)], "NextToken": "p2"},
                      listed("TruePositives", ALL))
    stub.add_response("list_metrics", {"Metrics": [metric("TruePositives", ALL)]},
                      listed("TruePositives", ALL, NextToken="p2"))
    stub.add_response("list_metrics", {"Metrics": []}, listed("ShadowAgreements", SHADOW))
    segment = [*SHADOW, {"Name": "merchant_category", "Value": "5411"}]
    stub.add_response("list_metrics", {"Metrics": [metric("ShadowComparisons", segment)]},
                      listed("ShadowComparisons", SHADOW))


def test_an_alarm_is_reported_when_none_of_its_exact_series_is_listed() -> None:
    cw = client()
    with Stubber(cw) as stub:
        stub_list_metrics(stub)
        found = never_published(expand(SPEC), desired_requests(SPEC, NS), cw)
        stub.assert_no_pending_responses()  # recall stopped at TruePositives: FalseNegatives was never asked
    assert [(u.alarm_name, u.metric_names, u.dimensions) for u in found] == [
        ("rollguard-fraud-ep-v6-shadow-agreement", ("ShadowAgreements", "ShadowComparisons"),
         (("EndpointName", "fraud-ep"), ("VariantName", "v6-shadow")))]


def test_each_series_is_listed_once_and_gauges_and_unguarded_latency_too() -> None:
    data = {"name": "g", "endpoints": [{"name": "fraud-ep", "variant": "AllTraffic", "alarms": [
        {"name": "p50", "metric": "p50_latency", "threshold": 10, "min_samples": 0},
        {"name": "p99", "metric": "p99_latency", "threshold": 40},
        {"name": "gauge", "gauge": "Precision", "threshold": 0.9, "comparison": "<"},
    ]}]}
    spec = parse_spec(yaml.safe_dump(data), source="g.yaml")
    cw = client()
    with Stubber(cw) as stub:
        stub.add_response("list_metrics", {"Metrics": [metric("Latency", ALL)]}, listed("Latency", ALL))
        stub.add_response("list_metrics", {"Metrics": []}, listed("Precision", ALL))
        found = never_published(expand(spec), desired_requests(spec, NS), cw)
        stub.assert_no_pending_responses()
    assert [u.alarm_name for u in found] == ["rollguard-fraud-ep-AllTraffic-gauge"]


class Settings:
    namespace, aws_endpoint_url, aws_region = NS, None, "us-east-1"


def run_plan(tmp_path: Path, cw: Any) -> tuple[int, str, str]:
    path = tmp_path / "alarms.yaml"
    path.write_text(yaml.safe_dump(DATA, sort_keys=False))
    out, err = io.StringIO(), io.StringIO()
    code = cli.main(["plan", "--spec", str(path)], settings=Settings, client_factory=lambda _: cw, out=out, err=err)
    return code, out.getvalue(), err.getvalue()


PLAN_OUT = (
    "create    rollguard-fraud-ep-AllTraffic-recall\n"
    "create    rollguard-fraud-ep-v6-shadow-agreement\n"
    "plan (fraud): 2 to create, 0 to update, 0 to delete, 0 unchanged\n"
)
DESCRIBE = {"AlarmNamePrefix": "rollguard-", "AlarmTypes": ["MetricAlarm", "CompositeAlarm"]}


def test_plan_warns_on_stderr_and_keeps_its_output_and_exit_code(tmp_path: Path) -> None:
    cw = client()
    with Stubber(cw) as stub:
        stub.add_response("describe_alarms", {"MetricAlarms": []}, DESCRIBE)
        stub_list_metrics(stub)
        code, out, err = run_plan(tmp_path, cw)
        stub.assert_no_pending_responses()
    assert (code, out, err) == (1, PLAN_OUT, SHADOW_WARNING)


def test_plan_without_list_metrics_permission_says_so_once_and_still_plans(tmp_path: Path) -> None:
    cw = client()
    with Stubber(cw) as stub:
        stub.add_response("describe_alarms", {"MetricAlarms": []}, DESCRIBE)
        stub.add_client_error("list_metrics", "AccessDenied", "not authorized to perform cloudwatch:ListMetrics")
        code, out, err = run_plan(tmp_path, cw)
    assert (code, out) == (1, PLAN_OUT)
    assert err.startswith("rollguard alarms plan: warning: cannot check which metrics were published: ClientError: ")
    assert "AccessDenied" in err and err.count("\n") == 1
