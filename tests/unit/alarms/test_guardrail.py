"""The guardrail's UpdateEndpoint request: validated by botocore's real SageMaker model via Stubber."""
from __future__ import annotations

import io
import json
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import boto3
import pytest
from botocore.stub import Stubber

from alarms import guardrail
from alarms.guardrail import GuardrailError, build_update_endpoint, total_wait_s

EXAMPLE = Path(__file__).resolve().parents[3] / "examples" / "alarms.yaml"
ALARMS = ["rollguard-fraud-ep-AllTraffic.fraud-v6-precision", "rollguard-fraud-ep-AllTraffic.fraud-v6-recall"]
GUARDRAIL_ALARMS = [
    "rollguard-fraud-ep-AllTraffic.fraud-v6-precision",
    "rollguard-fraud-ep-AllTraffic.fraud-v6-recall",
    "rollguard-fraud-ep-AllTraffic.fraud-v6-p99-latency",
    "rollguard-fraud-ep-AllTraffic.fraud-v6-error-rate",
    "rollguard-fraud-ep-verdict-fraud-v6-vs-v5",  # the shift comparison's verdict (the shadow one is guardrail: false)
]
ARN = "arn:aws:sagemaker:us-east-1:123456789012:endpoint/fraud-ep"


def _client(service: str) -> Any:
    # a real client (real service model), never reaching the network: Stubber answers every call
    return boto3.client(service, region_name="us-east-1", aws_access_key_id="x", aws_secret_access_key="x")


@pytest.fixture
def sagemaker() -> Iterator[tuple[Any, Stubber]]:
    client = _client("sagemaker")
    with Stubber(client) as stubber:
        yield client, stubber
        stubber.assert_no_pending_responses()


def send(sagemaker: tuple[Any, Stubber], request: dict[str, Any]) -> None:
    """Stubber validates the request against botocore's UpdateEndpoint input shape."""
    client, stubber = sagemaker
    stubber.add_response("update_endpoint", {"EndpointArn": ARN}, request)
    assert client.update_endpoint(**request)["EndpointArn"] == ARN


def test_canary_request(sagemaker: tuple[Any, Stubber]) -> None:
    request = build_update_endpoint("fraud-ep", "fraud-ep-v6", ALARMS, canary_pct=10, wait_s=600,
                                    termination_wait_s=120)
    assert request == {
        "EndpointName": "fraud-ep",
        "EndpointConfigName": "fraud-ep-v6",
        "DeploymentConfig": {
            "BlueGreenUpdatePolicy": {
                "TrafficRoutingConfiguration": {
                    "Type": "CANARY",
                    "CanarySize": {"Type": "CAPACITY_PERCENT", "Value": 10},
                    "WaitIntervalInSeconds": 600,
                },
                "TerminationWaitInSeconds": 120,
                # two bakes (canary, final) + termination wait + provisioning headroom
                "MaximumExecutionTimeoutInSeconds": 2 * 600 + 120 + 1800,
            },
            "AutoRollbackConfiguration": {"Alarms": [{"AlarmName": n} for n in ALARMS]},
        },
    }
    send(sagemaker, request)


def test_linear_request(sagemaker: tuple[Any, Stubber]) -> None:
    request = build_update_endpoint("fraud-ep", "fraud-ep-v6", ALARMS, linear_pct=10, wait_s=300,
                                    max_execution_timeout_s=3600)
    policy = request["DeploymentConfig"]["BlueGreenUpdatePolicy"]
    assert policy["TrafficRoutingConfiguration"] == {
        "Type": "LINEAR",
        "LinearStepSize": {"Type": "CAPACITY_PERCENT", "Value": 10},
        "WaitIntervalInSeconds": 300,
    }
    assert policy["MaximumExecutionTimeoutInSeconds"] == 3600
    assert policy["TerminationWaitInSeconds"] == 0
    send(sagemaker, request)


def test_all_at_once_request(sagemaker: tuple[Any, Stubber]) -> None:
    request = build_update_endpoint("fraud-ep", "fraud-ep-v6", ALARMS, wait_s=0)
    policy = request["DeploymentConfig"]["BlueGreenUpdatePolicy"]
    assert policy["TrafficRoutingConfiguration"] == {"Type": "ALL_AT_ONCE", "WaitIntervalInSeconds": 0}
    assert policy["MaximumExecutionTimeoutInSeconds"] == 1800
    send(sagemaker, request)


def test_limits_at_their_edges_are_accepted(sagemaker: tuple[Any, Stubber]) -> None:
    ten = [f"alarm-{i}" for i in range(10)]
    send(sagemaker, build_update_endpoint("e", "c", ten, canary_pct=50, wait_s=3600, termination_wait_s=3600,
                                          max_execution_timeout_s=28800))
    send(sagemaker, build_update_endpoint("e", "c", ["a"], linear_pct=50, wait_s=0, max_execution_timeout_s=600))
    send(sagemaker, build_update_endpoint("e", "c", ["a"], canary_pct=1))


def test_total_wait() -> None:
    assert total_wait_s(None, 10, 300, 0) == 3000
    assert total_wait_s(None, 30, 300, 60) == 4 * 300 + 60  # ceil(100/30) = 4 steps
    assert total_wait_s(25, None, 300, 0) == 600
    assert total_wait_s(None, None, 300, 0) == 300


@pytest.mark.parametrize(
    ("kwargs", "message"),
    [
        ({"alarm_names": []}, "takes 1-10 alarms; got 0"),
        ({"alarm_names": [f"a{i}" for i in range(11)]}, "takes 1-10 alarms; got 11"),
        ({"alarm_names": ["a", "a"]}, "alarm names must be unique"),
        ({"alarm_names": ["x" * 256]}, "alarm name must be 1-255 characters"),
        ({"canary_pct": 51}, "canary size must be 1-50 % of the new fleet; got 51 %"),
        ({"canary_pct": 0}, "canary size must be 1-50 %"),
        ({"linear_pct": 9}, "linear step size must be 10-50 % of the new fleet; got 9 %"),
        ({"linear_pct": 51}, "linear step size must be 10-50 %"),
        ({"canary_pct": 10, "linear_pct": 10}, "choose canary or linear traffic shifting, not both"),
        ({"wait_s": 3601}, "wait (WaitIntervalInSeconds) must be 0-3600 s; got 3601"),
        ({"wait_s": -1}, "wait (WaitIntervalInSeconds) must be 0-3600 s"),
        ({"termination_wait_s": 3601}, "termination wait must be 0-3600 s; got 3601"),
        ({"max_execution_timeout_s": 599}, "max execution timeout must be 600-28800 s; got 599"),
        ({"max_execution_timeout_s": 28801}, "max execution timeout must be 600-28800 s; got 28801"),
        ({"linear_pct": 10, "wait_s": 300, "max_execution_timeout_s": 3000},
         "max execution timeout (3000 s) must be larger than the waits add up to 3000 s (10 bakes x 300 s"),
        ({"canary_pct": 10, "wait_s": 600, "termination_wait_s": 600, "max_execution_timeout_s": 1700},
         "must be larger than the waits add up to 1800 s (2 bakes x 600 s + 600 s termination wait)"),
        ({"linear_pct": 10, "wait_s": 3000},
         "the waits add up to 30000 s (10 bakes x 3000 s + 0 s termination wait), which does not fit"),
        ({"endpoint": "fraud_ep"}, "endpoint name must be 1-63 letters, digits and hyphens"),
        ({"endpoint_config": "c" * 64}, "endpoint config name must be 1-63"),
    ],
)
def test_every_limit_is_refused(kwargs: dict[str, Any], message: str) -> None:
    args: dict[str, Any] = {"endpoint": "fraud-ep", "endpoint_config": "fraud-ep-v6", "alarm_names": ALARMS}
    args.update(kwargs)
    with pytest.raises(GuardrailError) as info:
        build_update_endpoint(**args)
    assert message in str(info.value)


# ------------------------------------------------------------------------------------------
# the command


class Settings:
    """What the command reads from `service.settings.Settings` (alarms.aws_clients.AwsSettings)."""

    namespace = "Rollguard"
    aws_endpoint_url = None
    aws_region = "us-east-1"


def run(argv: list[str], clients: Any = None) -> tuple[int, str, str]:
    out, err = io.StringIO(), io.StringIO()
    kwargs: dict[str, Any] = {"out": out, "err": err}
    if clients is not None:
        kwargs["clients"] = lambda _settings: clients()
    code = guardrail.main(argv, settings=Settings, **kwargs)
    return code, out.getvalue(), err.getvalue()


BASE_ARGS = ["--endpoint", "fraud-ep", "--endpoint-config", "fraud-ep-v6", "--spec", str(EXAMPLE)]


def test_main_prints_the_request_with_the_spec_guardrail_alarms() -> None:
    code, out, err = run([*BASE_ARGS, "--linear", "10%", "--wait", "300"])
    assert code == 0, err
    request = json.loads(out)
    assert [a["AlarmName"] for a in request["DeploymentConfig"]["AutoRollbackConfiguration"]["Alarms"]] == GUARDRAIL_ALARMS
    routing = request["DeploymentConfig"]["BlueGreenUpdatePolicy"]["TrafficRoutingConfiguration"]
    assert routing["LinearStepSize"] == {"Type": "CAPACITY_PERCENT", "Value": 10}


def test_main_apply_sends_through_sagemaker_after_checking_the_alarms_exist() -> None:
    sagemaker, cloudwatch = _client("sagemaker"), _client("cloudwatch")
    with Stubber(sagemaker) as sm, Stubber(cloudwatch) as cw:
        cw.add_response(
            "describe_alarms",
            {"MetricAlarms": [{"AlarmName": n} for n in GUARDRAIL_ALARMS]},
            {"AlarmNames": GUARDRAIL_ALARMS},
        )
        _, out, _ = run([*BASE_ARGS, "--canary", "10"])
        sm.add_response("update_endpoint", {"EndpointArn": ARN}, json.loads(out))
        code, _, err = run([*BASE_ARGS, "--canary", "10", "--apply"], clients=lambda: (sagemaker, cloudwatch))
        assert code == 0, err
        assert ARN in err
        sm.assert_no_pending_responses()
        cw.assert_no_pending_responses()


def test_main_apply_reads_every_page_of_describe_alarms() -> None:
    sagemaker, cloudwatch = _client("sagemaker"), _client("cloudwatch")
    with Stubber(sagemaker) as sm, Stubber(cloudwatch) as cw:
        first, rest = GUARDRAIL_ALARMS[:2], GUARDRAIL_ALARMS[2:]
        cw.add_response("describe_alarms", {"MetricAlarms": [{"AlarmName": n} for n in first], "NextToken": "t"},
                        {"AlarmNames": GUARDRAIL_ALARMS})
        cw.add_response("describe_alarms", {"MetricAlarms": [{"AlarmName": n} for n in rest]},
                        {"AlarmNames": GUARDRAIL_ALARMS, "NextToken": "t"})
        sm.add_response("update_endpoint", {"EndpointArn": ARN})
        code, _, err = run([*BASE_ARGS, "--apply"], clients=lambda: (sagemaker, cloudwatch))
        assert code == 0, err
        cw.assert_no_pending_responses()


def test_main_apply_refuses_when_alarms_are_missing() -> None:
    sagemaker, cloudwatch = _client("sagemaker"), _client("cloudwatch")
    with Stubber(sagemaker), Stubber(cloudwatch) as cw:
        cw.add_response("describe_alarms", {"MetricAlarms": [{"AlarmName": GUARDRAIL_ALARMS[0]}]})
        code, _, err = run([*BASE_ARGS, "--apply"], clients=lambda: (sagemaker, cloudwatch))
    assert code == 1
    assert "alarms missing in CloudWatch" in err and "rollguard alarms apply --spec" in err


def test_main_reports_a_sagemaker_error_in_one_line() -> None:
    sagemaker, cloudwatch = _client("sagemaker"), _client("cloudwatch")
    with Stubber(sagemaker) as sm, Stubber(cloudwatch) as cw:
        cw.add_response("describe_alarms", {"MetricAlarms": [{"AlarmName": n} for n in GUARDRAIL_ALARMS]})
        sm.add_client_error("update_endpoint", "ValidationException", "Could not find endpoint fraud-ep")
        code, _, err = run([*BASE_ARGS, "--apply"], clients=lambda: (sagemaker, cloudwatch))
    assert code == 1
    assert err.strip().count("\n") == 0 and "Could not find endpoint" in err


@pytest.mark.parametrize(
    ("extra", "message"),
    [
        (["--canary", "60%"], "canary size must be 1-50 %"),
        (["--linear", "5%"], "linear step size must be 10-50 %"),
        (["--wait", "4000"], "must be 0-3600 s"),
        (["--max-execution-timeout", "100"], "must be 600-28800 s"),
    ],
)
def test_main_refuses_limits_with_exit_2(extra: list[str], message: str) -> None:
    code, out, err = run([*BASE_ARGS, *extra])
    assert code == 2
    assert out == ""
    assert message in err


def test_main_usage_errors() -> None:
    assert run([*BASE_ARGS, "--canary", "10%", "--linear", "10%"])[0] == 2
    assert run([*BASE_ARGS, "--canary", "ten"])[0] == 2
    code, _, err = run(["--endpoint", "other-ep", "--endpoint-config", "c", "--spec", str(EXAMPLE)])
    assert code == 2 and "no guardrail alarms or comparisons for endpoint other-ep" in err
