"""What rollguard costs in CloudWatch per month, at list price: the custom metrics the daemon
creates (counted from the same dimension sets and vocabulary it publishes with, plus one
``Verdict`` per comparison), the spec's alarms (per metric each reads, high resolution dearer;
a comparison's verdict alarm reads two, its Verdict and the Heartbeat: `alarms.sync.desired_requests`
lists every request of a spec) and the PutMetricData requests of every tick. Pure: the shape of the traffic comes in as a :class:`Shape`, the alarms as their
PutMetricAlarm requests.

The count is an upper bound at steady state: every series that can receive data does, within
CloudWatch's two-week memory (a count with no event is not published, e.g. ``Errors`` of a
variant without errors). ``Evicted`` is left out (only under the memory cap), shadow counts
are counted on shadow variants only.
"""
from __future__ import annotations

import math
from collections.abc import Iterable, Mapping, Sequence
from dataclasses import dataclass, field
from typing import Any

from alarms.metric_data import REQUEST_ENVELOPE_BYTES, estimate_entry_bytes
from pipelines import cloudwatch_rules as rules
from pipelines import metrics
from pipelines.datum import Datum, Dimensions
from pipelines.series import dimension_sets

# -- CloudWatch list prices: us-east-1, USD (https://aws.amazon.com/cloudwatch/pricing/) ----------

#: custom metrics per month, by tier: (metrics in the tier, price per metric)
METRIC_TIERS: tuple[tuple[float, float], ...] = ((10_000, 0.30), (240_000, 0.10), (750_000, 0.05), (math.inf, 0.02))
#: per metric an alarm reads (a metric math alarm pays for each of its MetricStat), per month
ALARM_METRIC_PRICE = 0.10
HIGH_RESOLUTION_ALARM_METRIC_PRICE = 0.30  # periods under 60 s
#: PutMetricData (and every other metric API call but GetMetricData) per 1,000 requests
REQUEST_PRICE_PER_1000 = 0.01
HOURS_PER_MONTH = 730  # AWS's billing month

# -- which metrics a fleet publishes ------------------------------------------------------------

SHADOW_COUNTS = frozenset({metrics.SHADOW_AGREEMENTS, metrics.SHADOW_COMPARISONS})
SHADOW_GAUGES = frozenset({metrics.RATES["shadow_agreement"].gauge})
#: published per endpoint (no variant) or only under the memory cap
_NOT_PER_FLEET = frozenset({metrics.ORPHAN_LABELS, metrics.EVICTED})

KINDS = ("counts", "latency", "gauges", "segment counts", "segment latency", "segment gauges",
         "per endpoint", "liveness", "verdicts")

Metric = tuple[str, Dimensions]


@dataclass(frozen=True)
class Fleet:
    """One endpoint variant, with the model versions live in it at once (blue/green: two)."""

    endpoint: str
    variant: str
    model_versions: tuple[str, ...] = ()
    shadow: bool = False


@dataclass(frozen=True)
class Shape:
    """What the daemon sees and how it is configured, as far as the bill goes."""

    fleets: tuple[Fleet, ...]
    #: attribute -> the dimension values its segment copies take (with `__other__` when it can occur)
    segment_values: Mapping[str, tuple[str, ...]] = field(default_factory=dict)
    segment_gauges: bool = False
    tick_seconds: float = 60.0
    instances: int = 1
    #: (endpoint, comparison name) of every comparison judged: one ``Verdict`` metric each
    comparisons: tuple[tuple[str, str], ...] = ()


def published_metrics(shape: Shape) -> dict[Metric, str]:
    """Every (metric name, dimensions) the daemon publishes for ``shape`` -> its kind (:data:`KINDS`)."""
    out: dict[Metric, str] = {}
    width = max((len(v) for v in shape.segment_values.values()), default=0)
    for fleet in shape.fleets:
        counts = [n for n in metrics.COUNTS if n not in _NOT_PER_FLEET and (fleet.shadow or n not in SHADOW_COUNTS)]
        gauges = [g for g in metrics.GAUGES if fleet.shadow or g not in SHADOW_GAUGES]
        for version in fleet.model_versions or (None,):
            # one series per value index carries one value of every attribute, as a capture does
            series = [(fleet.endpoint, fleet.variant, version,
                       tuple((a, vs[i]) for a, vs in shape.segment_values.items() if i < len(vs)))
                      for i in range(max(width, 1))]
            for s in series:
                bases = dimension_sets(s, segments=False)
                for dims in dimension_sets(s):
                    segment = dims not in bases
                    prefix = "segment " if segment else ""
                    for name in counts:
                        if dims in dimension_sets(s, segments=name not in metrics.NOT_PER_SEGMENT):
                            out.setdefault((name, dims), prefix + "counts")
                    out.setdefault((metrics.LATENCY, dims), prefix + "latency")
                for dims in dimension_sets(s, segments=shape.segment_gauges):
                    for name in gauges:
                        out.setdefault((name, dims), "segment gauges" if dims not in bases else "gauges")
    for endpoint in dict.fromkeys(f.endpoint for f in shape.fleets):
        out[(metrics.ORPHAN_LABELS, ((metrics.ENDPOINT_NAME, endpoint),))] = "per endpoint"
    out[(metrics.HEARTBEAT, ())] = "liveness"
    for endpoint, comparison in shape.comparisons:
        out[(metrics.VERDICT, ((metrics.ENDPOINT_NAME, endpoint), (metrics.COMPARISON, comparison)))] = "verdicts"
    return out


def metrics_price(n: int) -> float:
    """The monthly list price of ``n`` custom metrics, tier by tier."""
    total, left = 0.0, float(n)
    for size, price in METRIC_TIERS:
        take = min(left, size)
        total += take * price
        left -= take
        if left <= 0:
            break
    return total


@dataclass(frozen=True)
class AlarmCost:
    alarms: int
    metrics: int  # metrics the alarms read, standard resolution
    high_resolution_metrics: int

    @property
    def monthly(self) -> float:
        return self.metrics * ALARM_METRIC_PRICE + self.high_resolution_metrics * HIGH_RESOLUTION_ALARM_METRIC_PRICE


def alarm_cost(requests: Iterable[Mapping[str, Any]]) -> AlarmCost:
    """What PutMetricAlarm ``requests`` cost: each alarm pays per metric it reads."""
    alarms = standard = high = 0
    for request in requests:
        alarms += 1
        if "Metrics" in request:
            stats = [q["MetricStat"] for q in request["Metrics"] if "MetricStat" in q]
            periods = [int(s.get("Period", 60)) for s in stats]
        else:
            periods = [int(request.get("Period", 60))]
        high += sum(1 for p in periods if p < 60)
        standard += sum(1 for p in periods if p >= 60)
    return AlarmCost(alarms, standard, high)


def requests_per_tick(published: Iterable[Metric]) -> int:
    """PutMetricData requests one instance makes per tick when every metric gets a datum (a latency
    distribution at CloudWatch's 150 values), packed as the publisher packs them; at least the
    heartbeat's."""
    n = size = 0
    for name, dims in published:
        n += 1
        if name == metrics.LATENCY:
            values = tuple(float(v) for v in range(rules.MAX_DATUM_VALUES))
            datum = Datum(name, dims, 0, metrics.LATENCY_UNIT, values=values, counts=values)
        else:
            datum = Datum(name, dims, 0, metrics.COUNT_UNIT, 1.0)
        size += estimate_entry_bytes(datum.to_cloudwatch())
    return max(1, math.ceil(n / rules.MAX_DATUMS_PER_REQUEST),
               math.ceil(size / (rules.MAX_REQUEST_BYTES - REQUEST_ENVELOPE_BYTES)))


@dataclass(frozen=True)
class Estimate:
    metrics_by_kind: Mapping[str, int]
    metrics: int
    metrics_monthly: float
    alarms: AlarmCost
    requests_per_tick: int  # per instance
    requests_per_month: int  # all instances
    requests_monthly: float

    @property
    def monthly(self) -> float:
        return self.metrics_monthly + self.alarms.monthly + self.requests_monthly

    def to_json(self) -> dict[str, Any]:
        return {
            "metrics": {"by_kind": dict(self.metrics_by_kind), "total": self.metrics,
                        "monthly_usd": round(self.metrics_monthly, 2)},
            "alarms": {"alarms": self.alarms.alarms, "metrics": self.alarms.metrics,
                       "high_resolution_metrics": self.alarms.high_resolution_metrics,
                       "monthly_usd": round(self.alarms.monthly, 2)},
            "put_metric_data": {"requests_per_tick_per_instance": self.requests_per_tick,
                                "requests_per_month": self.requests_per_month,
                                "monthly_usd": round(self.requests_monthly, 2)},
            "monthly_usd": round(self.monthly, 2),
        }


def estimate(shape: Shape, alarm_requests: Sequence[Mapping[str, Any]] = ()) -> Estimate:
    """The monthly bill of ``shape`` plus the alarms of ``alarm_requests``, at list price."""
    published = published_metrics(shape)
    by_kind = {kind: 0 for kind in KINDS}
    for kind in published.values():
        by_kind[kind] += 1
    per_tick = requests_per_tick(published)
    ticks = HOURS_PER_MONTH * 3600 / shape.tick_seconds
    per_month = math.ceil(per_tick * shape.instances * ticks)
    return Estimate(by_kind, len(published), metrics_price(len(published)), alarm_cost(alarm_requests),
                    per_tick, per_month, per_month / 1000 * REQUEST_PRICE_PER_1000)


def render(est: Estimate, shape: Shape) -> str:
    """The estimate for people: metrics per kind, alarms, requests, the total."""
    fleets = ", ".join(f"{f.endpoint}/{f.variant}" + (f" ({len(f.model_versions)} model version"
                       f"{'s' if len(f.model_versions) != 1 else ''})" if f.model_versions else "")
                       + (" shadow" if f.shadow else "") for f in shape.fleets)
    segments = ", ".join(f"{a} ({len(v)} values)" for a, v in shape.segment_values.items()) or "none"
    lines = [f"fleets: {fleets}",
             f"segments: {segments}; segment gauges {'on' if shape.segment_gauges else 'off'}",
             "", "custom metrics"]
    lines += [f"  {kind:<16} {n:>8,}" for kind, n in est.metrics_by_kind.items() if n]
    lines.append(f"  {'total':<16} {est.metrics:>8,}   ${est.metrics_monthly:,.2f}/month")
    a = est.alarms
    high = f", {a.high_resolution_metrics} high-resolution" if a.high_resolution_metrics else ""
    lines.append(f"alarms: {a.alarms} reading {a.metrics + a.high_resolution_metrics} metrics{high}"
                 f"   ${a.monthly:,.2f}/month")
    lines.append(f"PutMetricData: {est.requests_per_tick} request(s) per tick per instance, {shape.instances} "
                 f"instance(s), tick {shape.tick_seconds:g} s: {est.requests_per_month:,}/month"
                 f"   ${est.requests_monthly:,.2f}/month")
    lines.append(f"total about ${est.monthly:,.2f}/month at us-east-1 list price (free tier not deducted; "
                 "GetMetricData for query and dashboards not included)")
    return "\n".join(lines)
