"""`rollguard dashboard`: the body's structure, its metric math, discovery and PutDashboard."""
from __future__ import annotations

import json
from pathlib import Path
from typing import Any

import pytest

from alarms import dashboard
from alarms.dashboard import PANELS, RatePanel, dashboard_body, fleets
from alarms.metric_math import ID_PATTERN, parse
from alarms.spec import COUNT_METRICS

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
    published = set(COUNT_METRICS.values()) | {"Latency"}
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


class FakeCloudWatch:
    def __init__(self) -> None:
        self.put: list[dict[str, Any]] = []

    def list_metrics(self, **kwargs: Any) -> dict[str, Any]:
        assert kwargs["MetricName"] == "Invocations"
        assert kwargs["Dimensions"] == [{"Name": "EndpointName", "Value": "fraud-ep"}]
        dims = [{"Name": "EndpointName", "Value": "fraud-ep"}]
        if "NextToken" not in kwargs:
            return {"Metrics": [{"Dimensions": dims + [{"Name": "VariantName", "Value": "v6-shadow"}]},
                                {"Dimensions": dims + [{"Name": "VariantName", "Value": "v5"},
                                                       {"Name": "ModelVersion", "Value": "fraud-v5"}]}],
                    "NextToken": "2"}
        return {"Metrics": [{"Dimensions": dims + [{"Name": "VariantName", "Value": "v5"}]}]}

    def put_dashboard(self, *, DashboardName: str, DashboardBody: str) -> dict[str, Any]:
        self.put.append({"name": DashboardName, "body": json.loads(DashboardBody)})
        return {"DashboardValidationMessages": []}


def test_main_writes_the_body_to_stdout(capsys: pytest.CaptureFixture[str]) -> None:
    assert dashboard.main(["--endpoint", "fraud-ep", "--variant", "v5", "--region", "us-east-1"]) == 0
    body = json.loads(capsys.readouterr().out)
    assert body["widgets"][1]["properties"]["metrics"][1][:2] == ["Rollguard", "TruePositives"]


def test_main_discovers_variants_and_applies(capsys: pytest.CaptureFixture[str], tmp_path: Path) -> None:
    cw = FakeCloudWatch()
    out = tmp_path / "body.json"
    argv = ["--endpoint", "fraud-ep", "--region", "us-east-1", "--apply", "--out", str(out)]
    assert dashboard.main(argv, client=cw) == 0
    assert capsys.readouterr().out == "put dashboard rollguard-fraud-ep (9 widgets, fleets: v5, v6-shadow)\n"
    assert cw.put[0]["name"] == "rollguard-fraud-ep"
    assert cw.put[0]["body"] == json.loads(out.read_text())


def test_main_refusals(capsys: pytest.CaptureFixture[str]) -> None:
    class Empty(FakeCloudWatch):
        def list_metrics(self, **kwargs: Any) -> dict[str, Any]:
            return {"Metrics": []}

    assert dashboard.main(["--endpoint", "e", "--region", "r"], client=Empty()) == 2
    assert "no variant of 'e' published Invocations" in capsys.readouterr().err
    with pytest.raises(SystemExit):
        dashboard.main(["--endpoint", "e", "--variant", "v", "--region", "r", "--name", "bad name"])
    assert "must be 1-255 of" in capsys.readouterr().err
