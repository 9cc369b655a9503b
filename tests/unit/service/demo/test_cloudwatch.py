"""CloudWatch's part: alarms as DescribeAlarms returns them, their datapoints as GetMetricData
returns them, and the state CloudWatch's rules give, recorded only when it changes."""
from __future__ import annotations

import copy
from collections.abc import Mapping
from datetime import datetime, timezone
from typing import Any

import pytest

from alarms.evaluator import Alarm, State, evaluate
from alarms.spec import expand, to_put_metric_alarm, verdict_alarms
from alarms.spec.loader import parse_spec
from service.demo.cloudwatch import AlarmEvaluator, datums_from_results, instant, metric_queries, request_from_description
from service.demo.scenario import Scenario, spec_yaml

T = 1_796_126_460  # a minute boundary
VERDICT = "rollguard-fraud-ep-verdict-fraud-v6-vs-v5"
ERRORS = "rollguard-fraud-ep-AllTraffic.fraud-v6-error-rate"


def _requests() -> dict[str, dict[str, Any]]:
    spec = parse_spec(spec_yaml(Scenario.of()), "demo.yaml")
    return {a.name: to_put_metric_alarm(a, "Rollguard") for a in [*expand(spec), *verdict_alarms(spec)]}


def _described(request: Mapping[str, Any]) -> dict[str, Any]:
    """What DescribeAlarms (moto's) answers for a math alarm: state, ARN, empty single-metric fields."""
    out = copy.deepcopy(dict(request))
    out.pop("Tags", None)
    out.update(AlarmArn=f"arn:aws:cloudwatch:us-east-1:123456789012:alarm:{request['AlarmName']}",
               StateValue="OK", StateReason="Unchecked: Initial alarm creation", Dimensions=[],
               AlarmConfigurationUpdatedTimestamp=datetime(2026, 1, 1, tzinfo=timezone.utc), Statistic=None)
    return out


def test_a_described_alarm_is_the_request_that_made_it() -> None:
    for request in _requests().values():
        rebuilt = request_from_description(_described(request))
        assert Alarm.from_request(rebuilt) == Alarm.from_request({k: v for k, v in request.items() if k != "Tags"})


def _results(alarm: Alarm, series: Mapping[str, Mapping[int, float]]) -> list[dict[str, Any]]:
    """GetMetricData's answer: per query, timestamps and values (query ids as metric_queries names them)."""
    out = []
    for query in metric_queries(alarm):
        points = series.get(query["Label"], {})
        out.append({"Id": query["Id"], "Timestamps": [datetime.fromtimestamp(t, timezone.utc) for t in points],
                    "Values": list(points.values())})
    return out


@pytest.mark.parametrize(("verdict", "alive", "expected"), [
    ({T - 60: 2.0}, {T - 60: 60.0}, State.ALARM),  # FAIL
    ({T - 60: 1.0}, {T - 60: 60.0}, State.OK),  # INCONCLUSIVE
    ({T - 60: 1.0}, {}, State.ALARM),  # no heartbeat: fail-safe
    ({}, {}, State.ALARM),  # nothing at all: fail-safe
])
def test_the_verdict_alarm_evaluates_as_cloudwatch_would(verdict: dict[int, float], alive: dict[int, float],
                                                        expected: State) -> None:
    alarm = Alarm.from_request(request_from_description(_described(_requests()[VERDICT])))
    data = datums_from_results(alarm, _results(alarm, {"verdict": verdict, "alive": alive}))
    assert evaluate(alarm, data, T + 3).state is expected


def test_sample_counts_and_missing_values_survive_the_round_trip() -> None:
    request = {"AlarmName": "n", "Namespace": "R", "MetricName": "Latency", "Period": 60, "Statistic": "SampleCount",
               "EvaluationPeriods": 1, "Threshold": 100, "ComparisonOperator": "GreaterThanThreshold"}
    alarm = Alarm.from_request(request)
    data = datums_from_results(alarm, _results(alarm, {"Latency": {T - 60: 250.0, T - 120: 0.0}}))
    assert len(data["Latency"]) == 1  # a zero SampleCount is no datapoint
    assert evaluate(alarm, data, T).evaluated[-1].value == 250.0
    with pytest.raises(ValueError, match="percentile"):
        metric_queries(Alarm.from_request({**request, "Statistic": None, "ExtendedStatistic": "p99"}))


def test_instants_fall_on_the_cadence_once_the_data_settled() -> None:
    assert instant(T + 2.9, 60) == T - 60
    assert instant(T + 3.0, 60) == T
    assert instant(T + 14.0, 10) == T + 10


class FakeCloudWatch:
    def __init__(self, requests: Mapping[str, dict[str, Any]], series: Mapping[str, Mapping[int, float]]) -> None:
        self.requests, self.series = requests, series
        self.gets: list[dict[str, Any]] = []
        self.set: list[tuple[str, str]] = []

    def get_paginator(self, name: str) -> Any:
        assert name == "describe_alarms"
        outer = self

        class Pages:
            def paginate(self, AlarmNames: list[str]) -> list[dict[str, Any]]:
                return [{"MetricAlarms": [_described(outer.requests[n]) for n in AlarmNames if n in outer.requests]}]

        return Pages()

    def get_metric_data(self, MetricDataQueries: list[dict[str, Any]], StartTime: datetime, EndTime: datetime) -> Any:
        self.gets.append({"start": StartTime.timestamp(), "end": EndTime.timestamp(), "queries": MetricDataQueries})
        results = []
        for q in MetricDataQueries:
            points = {t: v for t, v in self.series.get(q["Label"], {}).items()
                      if StartTime.timestamp() <= t < EndTime.timestamp()}
            results.append({"Id": q["Id"], "Timestamps": [datetime.fromtimestamp(t, timezone.utc) for t in points],
                            "Values": list(points.values())})
        return {"MetricDataResults": results}

    def set_alarm_state(self, AlarmName: str, StateValue: str, StateReason: str) -> None:
        self.set.append((AlarmName, StateValue))


def test_the_evaluator_evaluates_once_per_instant_and_records_changes_only() -> None:
    series: dict[str, dict[int, float]] = {"verdict": {T - 60: 1.0}, "alive": {T - 60: 60.0}}
    fake = FakeCloudWatch(_requests(), series)
    now = [T + 5.0]
    evaluator = AlarmEvaluator(fake, [VERDICT], clock=lambda: now[0])
    assert not evaluator.evaluated_all()
    first = evaluator.poll()
    assert [(e.state, e.changed, e.value) for e in first] == [(State.OK, True, 1.0)]
    assert fake.set == [(VERDICT, "OK")] and evaluator.evaluated_all()
    assert fake.gets[0]["start"] == T - 180 and fake.gets[0]["end"] == T  # N + 2 periods, ending at the instant
    assert evaluator.poll() == []  # the same instant: nothing to do
    series["verdict"][T] = 2.0
    series["alive"][T] = 60.0
    now[0] = T + 63.0
    assert [(e.state, e.changed) for e in evaluator.poll()] == [(State.ALARM, True)]
    now[0] = T + 123.0
    series["verdict"][T + 60] = 2.0
    series["alive"][T + 60] = 60.0
    assert [(e.state, e.changed) for e in evaluator.poll()] == [(State.ALARM, False)]
    assert fake.set == [(VERDICT, "OK"), (VERDICT, "ALARM")]


def test_a_faster_cadence_slides_the_windows() -> None:
    fake = FakeCloudWatch(_requests(), {"verdict": {T - 50: 2.0}, "alive": {T - 50: 60.0}})
    evaluator = AlarmEvaluator(fake, [VERDICT], every_s=10, clock=lambda: T + 13.0)
    assert evaluator.poll()[0].state is State.ALARM
    assert fake.gets[0]["end"] == T + 10 and fake.gets[0]["start"] == T + 10 - 180


def test_a_missing_alarm_is_named() -> None:
    evaluator = AlarmEvaluator(FakeCloudWatch(_requests(), {}), [VERDICT, "nope"], clock=lambda: T)
    with pytest.raises(LookupError, match="nope"):
        evaluator.poll()
