"""Fail-safe alarms (issue 10, item 1): a dead daemon or a lost feed must not read OK.

Judged with rollguard's own evaluator on the exact PutMetricAlarm requests the spec produces:
with no data at all a fail-safe alarm goes to ALARM, with heartbeats and good data it is OK,
with heartbeats but no traffic the sample guard keeps it OK as before; fail-open requests are
the ones rollguard always sent.
"""
from __future__ import annotations

import dataclasses
from collections.abc import Iterable
from typing import Any

import botocore.session
import pytest
import yaml
from botocore.validate import validate_parameters

from alarms import evaluator
from alarms.evaluator import Datum, State, evaluate, timeline
from alarms.spec import AlarmLimitError, SpecError, expand, parse_spec, to_put_metric_alarm
from pipelines import metrics
from tests.unit.alarms.helpers import END

_PUT = botocore.session.get_session().get_service_model("cloudwatch").operation_model("PutMetricAlarm").input_shape
N, M = 5, 3


def spec_alarms(*alarms: dict[str, Any], defaults: dict[str, Any] | None = None) -> list[Any]:
    data: dict[str, Any] = {"name": "fraud", "endpoints": [
        {"name": "fraud-ep", "variant": "AllTraffic", "alarms": list(alarms)}]}
    if defaults is not None:
        data["defaults"] = defaults
    return list(expand(parse_spec(yaml.safe_dump(data, sort_keys=False), source="t.yaml")))


def request_of(alarm: dict[str, Any], **defaults: Any) -> dict[str, Any]:
    (one,) = spec_alarms(alarm, defaults=defaults or None)
    request = to_put_metric_alarm(one, "Rollguard")
    validate_parameters(request, _PUT)
    return request


def evaluator_alarm(alarm: dict[str, Any]) -> evaluator.Alarm:
    return evaluator.Alarm.from_request(request_of(alarm))


# the guardrail alarms of the story, as the spec writes them: fail-safe by default (guardrail: true)
GUARDRAIL = {
    "precision": {"name": "precision", "metric": "precision", "threshold": 0.9},
    "recall": {"name": "recall", "metric": "recall", "threshold": 0.8},
    "label_coverage": {"name": "coverage", "metric": "label_coverage", "threshold": 0.05},
    "error_rate": {"name": "errors", "metric": "error_rate", "threshold": 0.01},
    "p99_latency": {"name": "p99", "metric": "p99_latency", "threshold": 40},
}
for body in GUARDRAIL.values():
    body.update(evaluation_periods=N, datapoints_to_alarm=M)


def minutes(count: int) -> list[int]:
    """The starts of the ``count`` minutes before END."""
    return [END - 60 * k for k in range(count, 0, -1)]


def counts(per_minute: dict[str, float], starts: Iterable[int]) -> dict[str, list[Datum]]:
    return {key: [Datum(t + 5, (v,), (1.0,)) for t in starts] for key, v in per_minute.items()}


def heartbeats(starts: Iterable[int]) -> list[Datum]:
    return [Datum(t, (1.0,), (1.0,)) for t in starts]


GOOD = {  # one healthy minute of traffic per metric id the alarms read
    "tp": 90.0, "fp": 2.0, "fn": 5.0, "labeled": 400.0, "invocations": 1000.0, "errors": 1.0,
}


def good_data(alarm: evaluator.Alarm, starts: list[int]) -> dict[str, list[Datum]]:
    data = counts({k: v for k, v in GOOD.items() if k in alarm.data_keys}, starts)
    if "latency" in alarm.data_keys:
        data["latency"] = data["samples"] = [Datum(t + 5, (12.0, 30.0), (1900.0, 100.0)) for t in starts]
    data["alive"] = heartbeats(starts)
    return data


@pytest.mark.parametrize("metric", list(GUARDRAIL))
def test_no_data_at_all_goes_to_alarm(metric: str) -> None:
    alarm = evaluator_alarm(GUARDRAIL[metric])
    assert alarm.treat_missing_data == "breaching" and "alive" in alarm.data_keys
    result = evaluate(alarm, {}, END)
    assert result.state is State.ALARM, result.reason


@pytest.mark.parametrize("metric", list(GUARDRAIL))
def test_heartbeats_and_good_data_are_ok(metric: str) -> None:
    alarm = evaluator_alarm(GUARDRAIL[metric])
    result = evaluate(alarm, good_data(alarm, minutes(N + 2)), END)
    assert result.state is State.OK, result.reason
    assert all(p.value is not None for p in result.evaluated)


@pytest.mark.parametrize("metric", list(GUARDRAIL))
def test_heartbeats_without_traffic_read_the_sample_guard_as_before(metric: str) -> None:
    fail_safe = evaluator_alarm(GUARDRAIL[metric])
    fail_open = evaluator_alarm({**GUARDRAIL[metric], "fail_safe": False})
    safe = evaluate(fail_safe, {"alive": heartbeats(minutes(N + 2))}, END)
    before = evaluate(fail_open, {}, END)
    assert safe.state is before.state is State.OK
    if metric != "p99_latency":  # a rate reads its safe value in every period, as before
        assert [p.value for p in safe.evaluated] == [p.value for p in before.evaluated]
    else:  # no samples: the guarded percentile has no value, which now reads as the safe one
        assert {p.value for p in safe.evaluated} == {0.0} and {p.value for p in before.evaluated} == {None}


def test_a_daemon_that_dies_alarms_within_n_periods() -> None:
    alarm = evaluator_alarm(GUARDRAIL["recall"])
    history = minutes(60)
    data = good_data(alarm, history[:40])  # the daemon (and all data) stops 20 minutes before END
    changes = timeline(alarm, data, history[0] + 60 * (N + 2), END)
    died = history[40]
    assert [c.state for c in changes] == [State.OK, State.ALARM]
    # the filled gaps are the most recent ones: M of N breaching once N - M + 1 real periods are left
    assert changes[1].timestamp == died + 60 * (M + 2)


def test_a_gauge_and_an_unguarded_percentile_become_fail_safe_math() -> None:
    gauge = request_of({"name": "plb", "gauge": "PrecisionLowerBound", "threshold": 0.85, "comparison": "<"})
    assert [q["Id"] for q in gauge["Metrics"]] == ["gauge", "alive", "value"]
    assert gauge["Metrics"][0]["MetricStat"]["Stat"] == "Average"
    assert gauge["Metrics"][-1]["Expression"] == "IF(alive > 0, FILL(gauge, 0.85))"
    latency = request_of({"name": "p99", "metric": "p99_latency", "threshold": 40, "min_samples": 0})
    assert latency["Metrics"][-1]["Expression"] == "IF(alive > 0, FILL(latency, 0))"  # latency's safe bound
    for request in (gauge, latency):
        alarm = evaluator.Alarm.from_request(request)
        assert evaluate(alarm, {}, END).state is State.ALARM
        # a gauge below its sample size is not published: with the heartbeat that is OK, not breaching
        assert evaluate(alarm, {"alive": heartbeats(minutes(N + 2))}, END).state is State.OK


def test_the_fail_safe_request_shape() -> None:
    request = request_of(GUARDRAIL["error_rate"])
    alive = request["Metrics"][-2]
    assert alive == {
        "Id": "alive",
        "MetricStat": {"Metric": {"Namespace": "Rollguard", "MetricName": metrics.HEARTBEAT}, "Period": 60, "Stat": "Sum"},
        "ReturnData": False,
    }
    assert request["Metrics"][-1]["Expression"] == (
        "IF(alive > 0, IF(FILL(invocations,0) >= 30, FILL(errors,0)/FILL(invocations,0), 0))"
    )
    assert request["TreatMissingData"] == "breaching"
    assert "heartbeat is missing" in request["AlarmDescription"]


def test_fail_open_requests_are_unchanged() -> None:
    body = GUARDRAIL["error_rate"]
    fail_open = request_of({**body, "fail_safe": False})
    watched = request_of({**body, "guardrail": False})  # not a guardrail alarm: fail-open by default
    assert fail_open == watched
    assert [q["Id"] for q in fail_open["Metrics"]] == ["invocations", "errors", "value"]
    assert fail_open["Metrics"][-1]["Expression"] == "IF(FILL(invocations,0) >= 30, FILL(errors,0)/FILL(invocations,0), 0)"
    assert fail_open["TreatMissingData"] == "notBreaching"
    fail_safe = request_of(body)
    same = {k for k in fail_open if fail_open[k] == fail_safe.get(k)}
    assert set(fail_open) - same == {"AlarmDescription", "Metrics", "TreatMissingData"}
    # and a guardrail alarm can be fail-open
    assert request_of({**body, "guardrail": True, "fail_safe": False})["TreatMissingData"] == "notBreaching"


def test_treat_missing_data_of_defaults_is_for_fail_open_alarms() -> None:
    guard, watched = spec_alarms(
        {"name": "r", "metric": "recall", "threshold": 0.8},
        {"name": "w", "metric": "recall", "threshold": 0.8, "guardrail": False},
        defaults={"treat_missing_data": "notBreaching", "evaluation_periods": 5, "datapoints_to_alarm": 3},
    )
    assert (guard.fail_safe, guard.treat_missing_data) == (True, "breaching")
    assert (watched.fail_safe, watched.treat_missing_data) == (False, "notBreaching")
    (opted_out,) = spec_alarms({"name": "r", "metric": "recall", "threshold": 0.8}, defaults={"fail_safe": False})
    assert not opted_out.fail_safe


def test_a_fail_safe_alarm_refuses_another_missing_data_policy() -> None:
    with pytest.raises(SpecError, match="treat_missing_data notBreaching contradicts fail_safe"):
        spec_alarms({"name": "r", "metric": "recall", "threshold": 0.8, "treat_missing_data": "notBreaching"})
    (ok,) = spec_alarms({"name": "r", "metric": "recall", "threshold": 0.8, "treat_missing_data": "breaching"})
    assert ok.fail_safe


def test_the_heartbeat_counts_against_the_ten_metrics_of_an_alarm() -> None:
    ten = "+".join(list(metrics.COUNT_IDS)[:10])
    body = {"name": "wide", "expression": ten, "threshold": 1, "comparison": ">"}
    assert len(request_of({**body, "fail_safe": False})["Metrics"]) == 11
    with pytest.raises(SpecError, match="a fail-safe alarm also reads the Heartbeat metric, so it may read at most 9"):
        spec_alarms(body)
    (alarm,) = spec_alarms({**body, "fail_safe": False})
    with pytest.raises(AlarmLimitError):
        to_put_metric_alarm(dataclasses.replace(alarm, fail_safe=True), "Rollguard")
