"""`rollguard dashboard`: the body's structure, its metric math, discovery and PutDashboard."""
from __future__ import annotations

import io
import json
from pathlib import Path
from typing import Any

import boto3
import pytest
from botocore.stub import ANY, Stubber

from alarms import dashboard
from alarms.dashboard import PANELS, RatePanel, dashboard_body, fleets
from alarms.metric_math import ID_PATTERN, parse
from pipelines import metrics

BODY = dashboard_body("fraud-ep", ["v5", "v6-shadow"], model_version="fraud-v6", namespace="NS",
                      region="eu-west-1", period=60)


def metric_widgets(body: dict[str, Any]) -> list[dict[str, Any]]:
    return [w for w in body["widgets"] if w["type"] == "metric"]


def split_row(row: list[Any]) -> tuple[list[Any], dict[str, Any]]:
    *parts, options = row
    return parts, options


def test_every_expression_references_ids_of_its_own_widget() -> None:
    for w in metric_widgets(BODY):
        rows = w["properties"]["metrics"]
        ids = [split_row(r)[1]["id"] for r in rows]
        assert len(ids) == len(set(ids)), w["properties"]["title"]
        assert all(ID_PATTERN.match(i) for i in ids)
        metric_ids = {split_row(r)[1]["id"] for r in rows if len(r) > 1}
        for r in rows:
            options = r[-1]
            if "expression" in options:
                assert len(r) == 1
                expr = parse(options["expression"], known_ids=metric_ids)  # raises on an unknown id
                assert expr.ids() <= metric_ids


def test_rate_widgets_compute_the_alarm_math_from_hidden_counts() -> None:
    widgets = {w["properties"]["title"]: w for w in metric_widgets(BODY)}
    precision = widgets["Precision  tp/(tp+fp)"]["properties"]
    expressions = [r[0] for r in precision["metrics"] if "expression" in r[0]]
    assert [e["expression"] for e in expressions] == [f"tp{i}/(tp{i}+fp{i})" for i in range(4)]
    assert [e["label"] for e in expressions] == ["v5", "v6-shadow", "v5 fraud-v6", "v6-shadow fraud-v6"]
    hidden = [split_row(r) for r in precision["metrics"] if len(r) > 1]
    assert all(opts["visible"] is False and opts["stat"] == "Sum" for _, opts in hidden)
    by_id = {opts["id"]: parts for parts, opts in hidden}
    assert by_id["tp0"] == ["NS", "TruePositives", "EndpointName", "fraud-ep", "VariantName", "v5"]
    assert by_id["fp3"] == ["NS", "FalsePositives", "EndpointName", "fraud-ep", "VariantName", "v6-shadow",
                            "ModelVersion", "fraud-v6"]
    f1 = dashboard.rate_expression("f1", "0")
    assert f1[0] == "2*tp0/(2*tp0+fp0+fn0)" and set(f1[2]) == {"tp", "fp", "fn"}
    coverage = widgets["Label coverage  labeled/invocations"]["properties"]["metrics"]
    assert coverage[0][0]["expression"] == "labeled0/(invocations0)"


def test_every_count_row_names_a_published_metric_and_layout_is_a_grid() -> None:
    published = set(metrics.COUNTS) | {metrics.LATENCY}
    for w in metric_widgets(BODY):
        props = w["properties"]
        assert props["region"] == "eu-west-1" and props["period"] == 60 and props["view"] == "timeSeries"
        for r in props["metrics"]:
            if len(r) > 1:
                assert r[0] == "NS" and r[1] in published
        assert w["width"] == 12 and w["height"] == 6 and w["x"] in (0, 12)
    latency = next(w for w in metric_widgets(BODY) if w["properties"]["title"].startswith("Latency p99"))
    assert [split_row(r)[1]["stat"] for r in latency["properties"]["metrics"]] == ["p99"] * 4
    positions = {(w["x"], w["y"]) for w in BODY["widgets"]}
    assert len(positions) == len(BODY["widgets"])  # no overlap
    assert len(metric_widgets(BODY)) == len(PANELS)
    assert {p.rate for p in PANELS if isinstance(p, RatePanel)} == {
        "precision", "recall", "error_rate", "label_coverage", "shadow_agreement"}
    json.dumps(BODY)


def test_fleets_and_refusals() -> None:
    assert [f.label for f in fleets("e", ["a"])] == ["a"]
    assert fleets("e", ["a"], "m")[1].dimensions == (("EndpointName", "e"), ("VariantName", "a"), ("ModelVersion", "m"))
    with pytest.raises(ValueError, match="at least one variant"):
        dashboard_body("e", [], region="r")
    with pytest.raises(ValueError, match="period"):
        dashboard_body("e", ["a"], region="r", period=90)


class Settings:
    """What the command reads from `service.settings.Settings` (alarms.aws_clients.AwsSettings)."""

    namespace = "Rollguard"
    aws_endpoint_url = None
    aws_region = "eu-west-1"


def no_client(settings: Any) -> Any:
    raise AssertionError("with --variant and without --apply the command must not make a client")


def cloudwatch() -> Any:
    # a real client (real service model), never reaching the network: Stubber answers every call
    return boto3.client("cloudwatch", region_name="us-east-1", aws_access_key_id="x", aws_secret_access_key="x")


def run(argv: list[str], client: Any = None) -> tuple[int, str, str]:
    out, err = io.StringIO(), io.StringIO()
    factory = no_client if client is None else (lambda _settings: client)
    code = dashboard.main(argv, settings=Settings, client_factory=factory, out=out, err=err)
    return code, out.getvalue(), err.getvalue()


ENDPOINT_DIMS = [{"Name": "EndpointName", "Value": "fraud-ep"}]
LIST_PARAMS = {"Namespace": "Rollguard", "MetricName": "Invocations", "Dimensions": ENDPOINT_DIMS}


def test_main_writes_the_body_to_stdout() -> None:
    code, out, _ = run(["--endpoint", "fraud-ep", "--variant", "v5", "--region", "us-east-1"])
    assert code == 0
    body = json.loads(out)
    assert body["widgets"][1]["properties"]["metrics"][1][:2] == ["Rollguard", "TruePositives"]
    assert body["widgets"][1]["properties"]["region"] == "us-east-1"
    _, out, _ = run(["--endpoint", "fraud-ep", "--variant", "v5"])
    assert json.loads(out)["widgets"][1]["properties"]["region"] == "eu-west-1"  # the settings' region


def test_main_discovers_variants_on_every_page_and_applies(tmp_path: Path) -> None:
    cw = cloudwatch()
    out = tmp_path / "body.json"
    argv = ["--endpoint", "fraud-ep", "--region", "us-east-1", "--apply", "--out", str(out)]
    with Stubber(cw) as stub:
        stub.add_response("list_metrics", {
            "Metrics": [{"Dimensions": ENDPOINT_DIMS + [{"Name": "VariantName", "Value": "v6-shadow"}]},
                        {"Dimensions": ENDPOINT_DIMS + [{"Name": "VariantName", "Value": "v5"},
                                                        {"Name": "ModelVersion", "Value": "fraud-v5"}]}],
            "NextToken": "2"}, LIST_PARAMS)
        stub.add_response("list_metrics", {
            "Metrics": [{"Dimensions": ENDPOINT_DIMS + [{"Name": "VariantName", "Value": "v5"}]}]},
            {**LIST_PARAMS, "NextToken": "2"})
        stub.add_response("put_dashboard", {"DashboardValidationMessages": []},
                          {"DashboardName": "rollguard-fraud-ep", "DashboardBody": ANY})
        code, printed, err = run(argv, cw)
        stub.assert_no_pending_responses()
    assert code == 0, err
    assert printed == "put dashboard rollguard-fraud-ep (9 widgets, fleets: v5, v6-shadow)\n"
    assert json.loads(out.read_text())["widgets"][1]["properties"]["region"] == "us-east-1"


def test_main_refusals() -> None:
    cw = cloudwatch()
    with Stubber(cw) as stub:
        stub.add_response("list_metrics", {"Metrics": []},
                          {"Namespace": "Rollguard", "MetricName": "Invocations",
                           "Dimensions": [{"Name": "EndpointName", "Value": "e"}]})
        code, _, err = run(["--endpoint", "e", "--region", "r"], cw)
    assert code == 2
    assert "no variant of 'e' published Invocations" in err
    with Stubber(cw) as stub:
        stub.add_client_error("list_metrics", "AccessDenied", "not\nallowed")
        code, _, err = run(["--endpoint", "e", "--region", "r"], cw)
    assert code == 1
    assert err == "rollguard dashboard: cannot list variants (pass --variant): ClientError: An error occurred " \
                  "(AccessDenied) when calling the ListMetrics operation: not allowed\n"


def test_main_usage_error_names_the_dashboard_name_rule(capsys: pytest.CaptureFixture[str]) -> None:
    assert run(["--endpoint", "e", "--variant", "v", "--region", "r", "--name", "bad name"])[0] == 2
    assert "must be 1-255 of" in capsys.readouterr().err
