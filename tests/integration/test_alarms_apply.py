"""`alarms apply` against a real moto server over HTTP: idempotence, deletes, and ownership.

The moto server is shared by the session, so every test uses its own endpoint and spec names.
"""
from __future__ import annotations

import io
import os
import subprocess
import sys
import uuid
from pathlib import Path
from typing import Any

import boto3
import pytest
import yaml

from alarms.spec import SpecFile, parse_spec
from alarms.sync import SyncError, apply, plan
from service.commands import alarms as alarms_command

NAMESPACE = "RollguardTest"


@pytest.fixture
def cloudwatch(moto_endpoint: str) -> Any:
    return boto3.client("cloudwatch", endpoint_url=moto_endpoint, region_name="us-east-1")


@pytest.fixture
def endpoint() -> str:
    return f"ep-{uuid.uuid4().hex[:8]}"


def spec_data(endpoint: str, spec_name: str, alarms: list[dict[str, Any]]) -> dict[str, Any]:
    return {
        "name": spec_name,
        "defaults": {"period": 60, "evaluation_periods": 5, "datapoints_to_alarm": 3, "min_samples": 50},
        "endpoints": [{"name": endpoint, "variant": "AllTraffic", "model_version": "v6", "alarms": alarms}],
    }


ALARMS: list[dict[str, Any]] = [
    {"name": "precision", "metric": "precision", "threshold": 0.9, "scope": "model_version"},
    {"name": "recall", "metric": "recall", "threshold": 0.8, "scope": "model_version"},
    {"name": "p99-latency", "metric": "p99_latency", "threshold": 40, "min_samples": 100},
    {"name": "p50-latency", "metric": "p50_latency", "threshold": 10, "min_samples": 0},
    {"name": "error-rate", "metric": "error_rate", "threshold": 0.01},
    {"name": "recall-5411", "metric": "recall", "threshold": 0.75, "segment": {"merchant_category": "5411"},
     "period": 300, "evaluation_periods": 3, "datapoints_to_alarm": 2},
    {"name": "fnr", "expression": "FILL(fn,0)/(FILL(tp,0)+FILL(fn,0))", "sample": "tp+fn", "min_samples": 20,
     "threshold": 0.3, "comparison": ">"},
    {"name": "precision-gauge", "gauge": "PrecisionLowerBound", "threshold": 0.85, "comparison": "<"},
]


def make_spec(endpoint: str, spec_name: str, alarms: list[dict[str, Any]] = ALARMS) -> SpecFile:
    return parse_spec(yaml.safe_dump(spec_data(endpoint, spec_name, alarms), sort_keys=False), "test.yaml")


def described(cloudwatch: Any, prefix: str) -> dict[str, dict[str, Any]]:
    response = cloudwatch.describe_alarms(AlarmNamePrefix=prefix)
    return {a["AlarmName"]: a for a in response["MetricAlarms"]}


def test_apply_twice_changes_nothing_the_second_time(cloudwatch: Any, endpoint: str) -> None:
    spec = make_spec(endpoint, f"s-{endpoint}")
    first = apply(spec, cloudwatch, NAMESPACE)
    assert [c.action for c in first] == ["create"] * len(ALARMS)
    before = described(cloudwatch, f"rollguard-{endpoint}-")
    assert len(before) == len(ALARMS)
    assert f"rollguard-{endpoint}-AllTraffic.v6-precision" in before
    assert f"rollguard-{endpoint}-AllTraffic-error-rate" in before

    changes = plan(spec, cloudwatch, NAMESPACE)
    assert [(c.action, c.diffs) for c in changes] == [("unchanged", ())] * len(ALARMS)
    assert apply(spec, cloudwatch, NAMESPACE) == []
    assert described(cloudwatch, f"rollguard-{endpoint}-") == before  # not even re-put: timestamps equal


def test_changed_threshold_is_an_update_of_that_field_only(cloudwatch: Any, endpoint: str) -> None:
    spec = make_spec(endpoint, f"s-{endpoint}")
    apply(spec, cloudwatch, NAMESPACE)
    changed = [dict(a) for a in ALARMS]
    changed[1]["threshold"] = 0.85
    new_spec = make_spec(endpoint, f"s-{endpoint}", changed)
    changes = {c.alarm_name: c for c in plan(new_spec, cloudwatch, NAMESPACE)}
    recall = changes[f"rollguard-{endpoint}-AllTraffic.v6-recall"]
    assert recall.action == "update"
    fields = {d.field for d in recall.diffs}
    assert "Threshold" in fields
    assert fields <= {"Threshold", "AlarmDescription"}
    assert sum(c.action == "update" for c in changes.values()) == 1
    assert [c.alarm_name for c in apply(new_spec, cloudwatch, NAMESPACE)] == [recall.alarm_name]
    assert described(cloudwatch, recall.alarm_name)[recall.alarm_name]["Threshold"] == 0.85
    assert all(c.action == "unchanged" for c in plan(new_spec, cloudwatch, NAMESPACE))


def test_removed_alarm_is_deleted_and_nothing_else(cloudwatch: Any, endpoint: str) -> None:
    spec_name = f"s-{endpoint}"
    apply(make_spec(endpoint, spec_name), cloudwatch, NAMESPACE)
    before = described(cloudwatch, f"rollguard-{endpoint}-")
    smaller = make_spec(endpoint, spec_name, [a for a in ALARMS if a["name"] != "recall"])
    gone = f"rollguard-{endpoint}-AllTraffic.v6-recall"

    changes = plan(smaller, cloudwatch, NAMESPACE)
    assert [(c.action, c.alarm_name) for c in changes if c.action != "unchanged"] == [("delete", gone)]
    done = apply(smaller, cloudwatch, NAMESPACE)
    assert [(c.action, c.alarm_name) for c in done] == [("delete", gone)]
    after = described(cloudwatch, f"rollguard-{endpoint}-")
    assert set(before) - set(after) == {gone}
    assert after == {k: v for k, v in before.items() if k != gone}


def test_alarms_not_owned_are_never_touched(cloudwatch: Any, endpoint: str) -> None:
    spec_name = f"s-{endpoint}"
    manual = {
        "EvaluationPeriods": 1, "Threshold": 1.0, "ComparisonOperator": "GreaterThanThreshold",
        "Namespace": NAMESPACE, "MetricName": "Errors", "Statistic": "Sum", "Period": 60,
    }
    # same prefix and endpoint, no tags; a rollguard alarm of another spec; an unrelated name
    untagged = f"rollguard-{endpoint}-AllTraffic-handmade"
    other_spec = f"rollguard-{endpoint}-AllTraffic-other"
    unrelated = f"team-{endpoint}-errors"
    cloudwatch.put_metric_alarm(AlarmName=untagged, **manual)
    cloudwatch.put_metric_alarm(AlarmName=other_spec, **manual, Tags=[
        {"Key": "rollguard:owner", "Value": "rollguard"}, {"Key": "rollguard:spec", "Value": "someone-else"}])
    cloudwatch.put_metric_alarm(AlarmName=unrelated, **manual)
    theirs = {n: described(cloudwatch, n)[n] for n in (untagged, other_spec, unrelated)}

    spec = make_spec(endpoint, spec_name)
    apply(spec, cloudwatch, NAMESPACE)
    changes = plan(spec, cloudwatch, NAMESPACE)
    assert {c.alarm_name for c in changes}.isdisjoint(theirs)
    apply(make_spec(endpoint, spec_name, ALARMS[:1]), cloudwatch, NAMESPACE)  # deletes all but one of ours
    assert set(described(cloudwatch, f"rollguard-{endpoint}-")) == {
        f"rollguard-{endpoint}-AllTraffic.v6-precision", untagged, other_spec}
    for name, alarm in theirs.items():
        assert described(cloudwatch, name)[name] == alarm


def test_a_spec_alarm_named_like_a_foreign_alarm_is_a_conflict(cloudwatch: Any, endpoint: str) -> None:
    taken = f"rollguard-{endpoint}-AllTraffic.v6-recall"
    cloudwatch.put_metric_alarm(
        AlarmName=taken, EvaluationPeriods=1, Threshold=1.0, ComparisonOperator="GreaterThanThreshold",
        Namespace=NAMESPACE, MetricName="Errors", Statistic="Sum", Period=60,
    )
    original = described(cloudwatch, taken)[taken]
    spec = make_spec(endpoint, f"s-{endpoint}")
    conflicts = [c for c in plan(spec, cloudwatch, NAMESPACE) if c.action == "conflict"]
    assert [c.alarm_name for c in conflicts] == [taken]
    assert "not rollguard's" in conflicts[0].detail
    with pytest.raises(SyncError, match="1 conflict"):
        apply(spec, cloudwatch, NAMESPACE)
    assert described(cloudwatch, f"rollguard-{endpoint}-") == {taken: original}  # nothing created either


def test_cli_plan_apply_exit_codes(moto_endpoint: str, endpoint: str, tmp_path: Path,
                                   monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("ROLLGUARD_AWS_ENDPOINT_URL", moto_endpoint)
    monkeypatch.setenv("ROLLGUARD_NAMESPACE", NAMESPACE)
    path = tmp_path / "alarms.yaml"
    path.write_text(yaml.safe_dump(spec_data(endpoint, f"s-{endpoint}", ALARMS[:3]), sort_keys=False))

    def run(*argv: str) -> tuple[int, str]:
        out, err = io.StringIO(), io.StringIO()
        code = alarms_command.main([*argv, "--spec", str(path)], out=out, err=err)
        return code, out.getvalue() + err.getvalue()

    code, text = run("plan")
    assert code == 1, text
    assert text.count("create ") == 3 and "plan (s-" in text and "3 to create" in text
    code, text = run("apply")
    assert code == 0, text
    assert text.count("created ") == 3
    code, text = run("plan")
    assert code == 0, text
    assert "3 unchanged" in text
    code, text = run("apply")
    assert code == 0 and "0 created, 0 updated, 0 deleted" in text


def test_alarms_and_guardrail_take_namespace_region_and_endpoint_from_the_config_file(
        moto_endpoint: str, endpoint: str, tmp_path: Path) -> None:
    spec_path = tmp_path / "alarms.yaml"
    spec_path.write_text(yaml.safe_dump(spec_data(endpoint, f"s-{endpoint}", ALARMS[:3]), sort_keys=False))
    config = tmp_path / "rollguard.yaml"
    config.write_text(yaml.safe_dump(
        {"namespace": "ProbeNS", "aws_region": "eu-west-1", "aws_endpoint_url": moto_endpoint}))
    # the session's AWS_REGION=us-east-1 is what the clients used to get; the settings must win
    env = {k: v for k, v in os.environ.items() if not k.startswith("ROLLGUARD_")}
    env |= {"ROLLGUARD_CONFIG_FILE": str(config), "PYTHONPATH": str(Path(__file__).resolve().parents[2])}

    def rollguard(*argv: str) -> subprocess.CompletedProcess[str]:
        return subprocess.run([sys.executable, "-m", "service.cli", *argv], cwd=tmp_path, env=env,
                              capture_output=True, text=True, timeout=120)

    applied = rollguard("alarms", "apply", "--spec", str(spec_path))
    assert applied.returncode == 0, applied.stderr
    assert applied.stdout.count("created ") == 3
    prefix = f"rollguard-{endpoint}-"
    eu = boto3.client("cloudwatch", endpoint_url=moto_endpoint, region_name="eu-west-1")
    alarms = described(eu, prefix)
    assert len(alarms) == 3
    namespaces = {a["Namespace"] for a in alarms.values() if a.get("Namespace")}
    namespaces |= {m["MetricStat"]["Metric"]["Namespace"] for a in alarms.values() for m in a.get("Metrics", [])
                   if "MetricStat" in m}
    assert namespaces == {"ProbeNS"}
    us = boto3.client("cloudwatch", endpoint_url=moto_endpoint, region_name="us-east-1")
    assert described(us, prefix) == {}

    planned = rollguard("alarms", "plan", "--spec", str(spec_path))
    assert planned.returncode == 0 and "3 unchanged" in planned.stdout, planned.stdout + planned.stderr

    # guardrail --apply finds the alarms in eu-west-1 (else: "alarms missing in CloudWatch") and
    # goes on to UpdateEndpoint, which moto refuses: there is no such endpoint
    deployed = rollguard("guardrail", "--endpoint", endpoint, "--endpoint-config", f"{endpoint}-v6",
                         "--spec", str(spec_path), "--apply")
    assert deployed.returncode == 1
    assert "alarms missing" not in deployed.stderr
    assert "rollguard guardrail: AWS call failed" in deployed.stderr, deployed.stderr
    assert "UpdateEndpoint operation" in deployed.stderr, deployed.stderr


def test_plan_warns_only_about_the_alarm_whose_series_was_never_published(
        cloudwatch: Any, moto_endpoint: str, endpoint: str, tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("ROLLGUARD_AWS_ENDPOINT_URL", moto_endpoint)
    monkeypatch.setenv("ROLLGUARD_NAMESPACE", NAMESPACE)
    alarms = [{"name": "recall", "metric": "recall", "threshold": 0.8},
              {"name": "agreement", "metric": "shadow_agreement", "threshold": 0.95, "variant": "v6-shadow"}]
    data = spec_data(endpoint, f"s-{endpoint}", alarms)
    path = tmp_path / "alarms.yaml"
    path.write_text(yaml.safe_dump(data, sort_keys=False))
    dims = [{"Name": "EndpointName", "Value": endpoint}, {"Name": "VariantName", "Value": "AllTraffic"}]
    cloudwatch.put_metric_data(Namespace=NAMESPACE, MetricData=[
        {"MetricName": "TruePositives", "Dimensions": dims, "Value": 3, "Unit": "Count"},
        # the shadow variant's counts exist only as a segment copy: not the series the alarm reads
        {"MetricName": "ShadowAgreements", "Unit": "Count", "Value": 1, "Dimensions": [
            {"Name": "EndpointName", "Value": endpoint}, {"Name": "VariantName", "Value": "v6-shadow"},
            {"Name": "merchant_category", "Value": "5411"}]},
    ])
    out, err = io.StringIO(), io.StringIO()
    code = alarms_command.main(["plan", "--spec", str(path)], out=out, err=err)
    assert code == 1, out.getvalue() + err.getvalue()
    assert out.getvalue().count("create ") == 2
    warnings = err.getvalue().splitlines()
    assert len(warnings) == 1, warnings
    assert warnings[0].startswith(
        f"rollguard alarms plan: warning: rollguard-{endpoint}-v6-shadow-agreement watches a series with no data "
        f"in CloudWatch: none of ShadowAgreements, ShadowComparisons in {NAMESPACE} with EndpointName={endpoint}, "
        "VariantName=v6-shadow was published")
