"""CloudWatch's part in the demo: the local AWS API stores alarms but never evaluates them, so
this evaluates each one the way CloudWatch would and records the result with SetAlarmState.

Per alarm, at each of CloudWatch's evaluation instants (every minute for 60 s periods, or
``every_s`` in the fast demo): the definition as DescribeAlarms returns it, the datapoints of
its metrics read back with GetMetricData (one value per period and statistic), and
`alarms.evaluator` (M of N, TreatMissingData, metric math) on them. SageMaker's part (the
driver) then reads the states with DescribeAlarms, as SageMaker does.

The pure half (`request_from_description`, `metric_queries`, `datums_from_results`,
`instant`) is separate from `AlarmEvaluator`, which makes the calls.
"""
from __future__ import annotations

import dataclasses
import math
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass
from datetime import datetime, timezone
from typing import Any

from alarms.evaluator import Alarm, Datum, State, StatisticSet, evaluate, percentile_of
from alarms.evaluator.shapes import PutMetricAlarmIn

#: seconds after an evaluation instant before the demo evaluates: the publisher's last datums
#: of the period are a tick plus a request away
SETTLE_S = 3.0
_REQUEST_KEYS = frozenset(PutMetricAlarmIn.model_fields)


def request_from_description(described: Mapping[str, Any]) -> dict[str, Any]:
    """A DescribeAlarms ``MetricAlarms`` entry as the PutMetricAlarm request that made it: state,
    ARNs and timestamps dropped, and the empty fields DescribeAlarms fills in for math alarms."""
    out: dict[str, Any] = {}
    for key, value in described.items():
        if key not in _REQUEST_KEYS or key == "Tags" or value is None or value == [] or value == "":
            continue
        out[key] = value
    if "Metrics" in out:
        out["Metrics"] = [{k: v for k, v in q.items() if k in ("Id", "MetricStat", "Expression", "Label",
                                                                "ReturnData", "Period")}
                          for q in out["Metrics"]]
    return out


def instant(now: float, cadence_s: int, settle_s: float = SETTLE_S) -> int:
    """The latest evaluation instant whose data has settled by ``now``."""
    return int((now - settle_s) // cadence_s * cadence_s)


def metric_queries(alarm: Alarm) -> list[dict[str, Any]]:
    """The GetMetricData queries for every metric the alarm reads (its ids as query ids)."""
    queries: list[dict[str, Any]] = []
    for i, m in enumerate(alarm.metrics):
        if percentile_of(m.stat) is not None:
            raise ValueError(f"alarm {alarm.name}: the local AWS API has no percentile statistics ({m.stat})")
        metric: dict[str, Any] = {"Namespace": m.namespace, "MetricName": m.metric_name}
        if m.dimensions:
            metric["Dimensions"] = [{"Name": k, "Value": v} for k, v in m.dimensions]
        queries.append({"Id": f"q{i}", "Label": m.key, "ReturnData": True,
                        "MetricStat": {"Metric": metric, "Period": m.period, "Stat": m.stat}})
    return queries


def _datum(timestamp: float, stat: str, value: float) -> Datum:
    # One datum per period that gives back the period's statistic when aggregated again, stored
    # at its own second: the fast demo's windows slide by 10 s, not by the minute.
    if stat == "SampleCount":
        return Datum(timestamp, statistics=StatisticSet(value, 0.0, 0.0, 0.0), storage_resolution=1)
    return Datum(timestamp, (value,), (1.0,), storage_resolution=1)


def datums_from_results(alarm: Alarm, results: Sequence[Mapping[str, Any]]) -> dict[str, tuple[Datum, ...]]:
    """GetMetricData's ``MetricDataResults`` (of `metric_queries`) as the evaluator's datums."""
    by_query = {f"q{i}": m for i, m in enumerate(alarm.metrics)}
    out: dict[str, tuple[Datum, ...]] = {}
    for result in results:
        metric = by_query.get(result["Id"])
        if metric is None:
            continue
        data = []
        for stamp, value in zip(result.get("Timestamps", ()), result.get("Values", ())):
            if value is None or not math.isfinite(value) or (metric.stat == "SampleCount" and value <= 0):
                continue
            seconds = stamp.timestamp() if isinstance(stamp, datetime) else float(stamp)
            data.append(_datum(seconds, metric.stat, float(value)))
        out[metric.key] = tuple(sorted(data, key=lambda d: d.timestamp))
    return out


@dataclass(frozen=True)
class Evaluated:
    """One alarm's evaluation: its state, CloudWatch's reason, and whether the state changed."""

    name: str
    state: State
    reason: str
    at: int
    changed: bool
    value: float | None = None  # the newest evaluated period's value


class AlarmEvaluator:
    """Evaluates ``names`` against the local AWS API and records their state (SetAlarmState).

    ``every_s`` replaces CloudWatch's evaluation interval (None: the alarm's own, 60 s)."""

    def __init__(self, cloudwatch: Any, names: Sequence[str], *, every_s: int | None = None,
                 clock: Callable[[], float] | None = None) -> None:
        import time

        self.cloudwatch, self.names, self.every_s = cloudwatch, list(names), every_s
        self.clock = clock or time.time
        self._alarms: dict[str, Alarm] = {}
        self._last: dict[str, int] = {}
        self.states: dict[str, Evaluated] = {}

    def _definitions(self) -> dict[str, Alarm]:
        if not self._alarms:
            pages = self.cloudwatch.get_paginator("describe_alarms").paginate(AlarmNames=self.names)
            for page in pages:
                for described in page.get("MetricAlarms", []):
                    alarm = Alarm.from_request(request_from_description(described))
                    if self.every_s is not None:
                        alarm = dataclasses.replace(alarm, evaluation_interval=self.every_s)
                    self._alarms[alarm.name] = alarm
            missing = sorted(set(self.names) - set(self._alarms))
            if missing:
                self._alarms.clear()
                raise LookupError(f"alarms missing in CloudWatch: {', '.join(missing)}")
        return self._alarms

    def evaluated_all(self) -> bool:
        return all(name in self.states for name in self.names)

    def poll(self) -> list[Evaluated]:
        """Evaluate each alarm whose next evaluation instant has come; the evaluations made."""
        now = self.clock()
        done = []
        for name, alarm in self._definitions().items():
            at = instant(now, alarm.cadence)
            if self._last.get(name) == at:
                continue
            done.append(self._evaluate(alarm, at))
            self._last[name] = at
        return done

    def _evaluate(self, alarm: Alarm, at: int) -> Evaluated:
        size = alarm.evaluation_periods + 2
        end = at // alarm.cadence * alarm.cadence
        # the evaluator's windows start at end - k * period, and GetMetricData buckets from StartTime
        start = end - size * alarm.period
        response = self.cloudwatch.get_metric_data(
            MetricDataQueries=metric_queries(alarm),
            StartTime=datetime.fromtimestamp(start, timezone.utc),
            EndTime=datetime.fromtimestamp(end, timezone.utc))
        data = datums_from_results(alarm, response.get("MetricDataResults", []))
        previous = self.states.get(alarm.name)
        current = previous.state if previous is not None else State.INSUFFICIENT_DATA
        evaluation = evaluate(alarm, data, at, current)
        newest = next((p.value for p in reversed(evaluation.evaluated) if p.value is not None), None)
        changed = previous is None or evaluation.state is not previous.state
        if changed:
            self.cloudwatch.set_alarm_state(AlarmName=alarm.name, StateValue=evaluation.state.value,
                                            StateReason=evaluation.reason[:1023])
        result = Evaluated(alarm.name, evaluation.state, evaluation.reason, at, changed, newest)
        self.states[alarm.name] = result
        return result
