"""Alarms that watch a series CloudWatch has never received: a typo in an endpoint, variant,
model version or segment value makes an alarm that reads nothing and never fires.

For each alarm, ListMetrics (through boto3's paginator) is asked for every metric name the
alarm reads with its own dimensions (`Alarm.dimensions`). ListMetrics returns metrics that
have those dimensions and possibly more (segment copies, ``ModelVersion``), so a metric counts
only when its dimension set is exactly the alarm's. An alarm is reported when none of its
metrics is found: a count that had no event (``FalsePositives`` of a perfect model) is not
published, so one missing metric is normal, all of them missing is not. ListMetrics only knows
metrics with data in the last two weeks, and a new metric may take up to 15 minutes to appear.
"""
from __future__ import annotations

from collections.abc import Iterable, Mapping
from dataclasses import dataclass
from typing import Any, Protocol

from alarms.spec import Alarm

Dimensions = tuple[tuple[str, str], ...]


class MetricsClient(Protocol):
    """The part of a boto3 CloudWatch client this check uses."""

    def get_paginator(self, operation_name: str) -> Any: ...


@dataclass(frozen=True, slots=True)
class Unpublished:
    """An alarm none of whose metrics (``metric_names`` in ``namespace`` with ``dimensions``) exists."""

    alarm_name: str
    namespace: str
    metric_names: tuple[str, ...]
    dimensions: Dimensions

    def describe(self) -> str:
        """One line for people: the alarm, what it reads, what to check."""
        dims = ", ".join(f"{k}={v}" for k, v in self.dimensions)
        return (
            f"{self.alarm_name} watches a series with no data in CloudWatch: none of "
            f"{', '.join(self.metric_names)} in {self.namespace} with {dims} was published in the last "
            "two weeks (ListMetrics); check the endpoint, variant, model_version and segment"
        )


def read_metrics(alarm: Alarm, request: Mapping[str, Any]) -> tuple[str, tuple[str, ...]] | None:
    """(namespace, metric names) that ``request`` reads with ``alarm``'s own dimensions, or None."""
    wanted = _dims_key(alarm.dimensions)
    found: list[tuple[str, str]] = []
    if "Metrics" in request:
        for query in request["Metrics"]:
            metric = (query.get("MetricStat") or {}).get("Metric")
            if metric and _dims_key(_pairs(metric.get("Dimensions"))) == wanted:
                found.append((str(metric["Namespace"]), str(metric["MetricName"])))
    elif _dims_key(_pairs(request.get("Dimensions"))) == wanted:
        found.append((str(request["Namespace"]), str(request["MetricName"])))
    if not found:
        return None
    namespace = found[0][0]
    names = tuple(dict.fromkeys(name for ns, name in found if ns == namespace))
    return namespace, names


def never_published(
    alarms: Iterable[Alarm], requests: Mapping[str, Mapping[str, Any]], client: MetricsClient
) -> list[Unpublished]:
    """The alarms (with a request in ``requests``, by name) none of whose metrics CloudWatch lists.

    Read-only: one paginated ListMetrics per distinct (namespace, metric name, dimensions),
    stopping at the first exact match; an alarm stops at its first metric found.
    """
    known: dict[tuple[str, str, frozenset[tuple[str, str]]], bool] = {}
    out: list[Unpublished] = []
    for alarm in alarms:
        request = requests.get(alarm.name)
        read = read_metrics(alarm, request) if request is not None else None
        if read is None:
            continue
        namespace, names = read
        dims = _dims_key(alarm.dimensions)
        for name in names:
            key = (namespace, name, dims)
            if key not in known:
                known[key] = _listed(client, namespace, name, alarm.dimensions)
            if known[key]:
                break
        else:
            out.append(Unpublished(alarm.name, namespace, names, alarm.dimensions))
    return out


def _listed(client: MetricsClient, namespace: str, name: str, dimensions: Dimensions) -> bool:
    wanted = _dims_key(dimensions)
    pages = client.get_paginator("list_metrics").paginate(
        Namespace=namespace, MetricName=name, Dimensions=[{"Name": k, "Value": v} for k, v in dimensions]
    )
    for page in pages:
        for metric in page.get("Metrics", ()):
            if metric.get("MetricName") == name and _dims_key(_pairs(metric.get("Dimensions"))) == wanted:
                return True
    return False


def _pairs(dims: object) -> Dimensions:
    if not dims:
        return ()
    return tuple((str(d["Name"]), str(d["Value"])) for d in dims)  # type: ignore[attr-defined]


def _dims_key(dims: Dimensions) -> frozenset[tuple[str, str]]:
    return frozenset(dims)
