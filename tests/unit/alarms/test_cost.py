"""`rollguard cost`: the metric count per kind and the monthly estimate (issue 10, item 11)."""
from __future__ import annotations

import io
import json
from pathlib import Path

import pytest

from alarms import cost
from alarms.sync import desired_requests
from alarms.spec import expand, load_spec, to_put_metric_alarm
from service.commands import cost as cost_command
from service.settings import load_settings

EXAMPLE = Path(__file__).parents[3] / "examples" / "alarms.yaml"
MCC_VALUES = ("5411", *(str(6000 + i) for i in range(49)))  # 50 values
assert len(MCC_VALUES) == 50


def the_issue_case(**shape: object) -> cost.Shape:
    """One endpoint, two variants, a model version each and one 50-value segment attribute (plus
    `__other__`): 4,161 metrics (about $1,250/month) before segment gauges went off by default and
    segment copies went under one dimension set."""
    fleets = (cost.Fleet("fraud-ep", "v5", ("fraud-v5",)), cost.Fleet("fraud-ep", "v6", ("fraud-v6",)))
    return cost.Shape(fleets, {"merchant_category": (*MCC_VALUES, "__other__")}, **shape)  # type: ignore[arg-type]


def test_the_issue_case_is_under_1000_metrics() -> None:
    est = cost.estimate(the_issue_case())
    assert est.metrics < 1000
    # per variant: 2 base dimension sets x (8 counts + Latency + 11 gauges), 51 segment values x (7 counts + Latency)
    assert dict(est.metrics_by_kind) == {
        "counts": 2 * 2 * 8, "latency": 2 * 2, "gauges": 2 * 2 * 11, "segment counts": 2 * 51 * 7,
        "segment latency": 2 * 51, "segment gauges": 0, "per endpoint": 1, "liveness": 1, "verdicts": 0,
    }
    assert est.metrics == 898 and est.metrics_monthly == pytest.approx(898 * 0.30)
    with_gauges = cost.estimate(the_issue_case(segment_gauges=True))
    assert with_gauges.metrics_by_kind["segment gauges"] == 2 * 51 * 11  # ROLLGUARD_SEGMENT_GAUGES=true


def test_every_alarm_of_the_example_spec_reads_published_metrics() -> None:
    """Segment copies under one dimension set still carry what examples/alarms.yaml reads."""
    settings = load_settings(_env_file=None, segment_attributes="merchant_category",
                             segment_values="merchant_category=" + "|".join(MCC_VALUES))
    spec = load_spec(str(EXAMPLE))
    requests = [to_put_metric_alarm(a, settings.namespace) for a in expand(spec)]
    shape = cost.Shape(cost_command.fleets_of(spec, requests, None), cost_command.segment_values(settings))
    published = cost.published_metrics(shape)
    read = set()
    for request in requests:
        stats = [q["MetricStat"]["Metric"] for q in request.get("Metrics", ()) if "MetricStat" in q] or [request]
        read |= {(s["MetricName"], tuple((d["Name"], d["Value"]) for d in s.get("Dimensions", ()))) for s in stats}
    assert any(len(dims) == 4 for _, dims in read)  # the segment alarm on the new fleet is among them
    assert read <= set(published)
    assert cost_command.notes(settings, spec) == []


def test_list_price_tiers_alarms_and_requests() -> None:
    assert cost.metrics_price(10_000) == pytest.approx(3000.0)
    assert cost.metrics_price(10_010) == pytest.approx(3001.0)
    assert cost.metrics_price(260_000) == pytest.approx(3000 + 24_000 + 500)
    alarms = cost.alarm_cost([
        {"Metrics": [{"Id": "tp", "MetricStat": {"Period": 60}}, {"Id": "fp", "MetricStat": {"Period": 60}},
                     {"Id": "value", "Expression": "tp/(tp+fp)"}]},
        {"MetricName": "Latency", "Period": 10},
    ])
    assert (alarms.alarms, alarms.metrics, alarms.high_resolution_metrics) == (2, 2, 1)
    assert alarms.monthly == pytest.approx(0.5)
    idle = cost.estimate(cost.Shape(()))  # no traffic: the heartbeat alone, one request per tick
    assert idle.metrics == 1 and idle.requests_per_tick == 1 and idle.requests_per_month == 730 * 60
    assert cost.estimate(cost.Shape((), tick_seconds=30, instances=3)).requests_per_month == 730 * 120 * 3


def test_the_command_prints_the_estimate_for_settings_and_spec() -> None:
    settings = load_settings(_env_file=None, segment_attributes="merchant_category", segment_first_come=True)
    out, err = io.StringIO(), io.StringIO()
    assert cost_command.main(["--spec", str(EXAMPLE), "--json"], settings=settings, out=out, err=err) == 0
    doc = json.loads(out.getvalue())
    assert doc["metrics"]["total"] == sum(doc["metrics"]["by_kind"].values())
    assert doc["metrics"]["by_kind"]["segment counts"] > 0 and doc["alarms"]["alarms"] == len(desired_requests(load_spec(str(EXAMPLE)), "Rollguard"))
    assert doc["notes"] == []
    out = io.StringIO()
    assert cost_command.main([], settings=load_settings(_env_file=None), out=out, err=err) == 0
    assert "custom metrics" in out.getvalue() and "/month" in out.getvalue()
    assert cost_command.main(["--instances", "0"], settings=settings, out=out, err=err) == 2


def test_notes_name_segment_alarms_that_would_read_nothing() -> None:
    from alarms.spec import parse_spec

    spec = parse_spec(json.dumps({"name": "t", "endpoints": [{"name": "ep", "variant": "v", "model_version": "m",
        "alarms": [
            {"name": "all-traffic", "metric": "recall", "threshold": 0.5, "segment": {"merchant_category": "5411"}},
            {"name": "unlisted", "metric": "recall", "threshold": 0.5, "scope": "model_version",
             "segment": {"merchant_category": "9999"}},
            {"name": "country", "metric": "recall", "threshold": 0.5, "scope": "model_version",
             "segment": {"country": "de"}},
        ]}]}))
    settings = load_settings(_env_file=None, segment_attributes="merchant_category",
                             segment_values="merchant_category=5411")
    notes = cost_command.notes(settings, spec)
    assert len(notes) == 3
    assert "segment copies carry ModelVersion" in notes[0] and "use scope: model_version" in notes[0]
    assert "merchant_category=9999, which ROLLGUARD_SEGMENT_VALUES does not list (it is __other__)" in notes[1]
    assert "'country', which ROLLGUARD_SEGMENT_ATTRIBUTES does not list" in notes[2]
