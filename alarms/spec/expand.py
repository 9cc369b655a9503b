"""Spec alarms made concrete: one :class:`Alarm` per (endpoint, variant, alarm), and the one
naming convention CloudWatch alarm names follow (see `alarms.spec`)."""
from __future__ import annotations

import math
from dataclasses import dataclass
from typing import Literal

from alarms.spec.schema import DEFAULT_MIN_SAMPLES, RATES, AlarmSpec, EndpointSpec, SpecFile, latency_percentile
from pipelines import cloudwatch_rules, metrics

NAME_PREFIX = "rollguard-"
OWNER_TAG = "rollguard:owner"
OWNER_VALUE = "rollguard"
SPEC_TAG = "rollguard:spec"
_OPERATORS = cloudwatch_rules.COMPARISON_OPERATORS


@dataclass(frozen=True, slots=True)
class Alarm:
    """One CloudWatch alarm: an AlarmSpec made concrete for one endpoint variant."""

    spec_name: str
    endpoint: str
    variant: str
    model_version: str | None  # set only when the alarm watches the new fleet (scope model_version)
    short_name: str
    kind: Literal["rate", "latency", "expression", "gauge"]
    metric: str  # rate or latency metric name, the expression, or the gauge name
    threshold: float
    comparison: str  # CloudWatch ComparisonOperator
    period: int
    evaluation_periods: int
    datapoints_to_alarm: int
    min_samples: int  # 0 = no sample guard
    treat_missing_data: str
    segment: tuple[str, str] | None = None
    sample: str | None = None  # expression alarms: the sample-size expression
    statistic: str | None = None  # gauge alarms
    description: str | None = None
    alarm_actions: tuple[str, ...] = ()
    ok_actions: tuple[str, ...] = ()
    guardrail: bool = True
    fail_safe: bool = False  # ALARM without the daemon's heartbeat (see `alarms.spec.requests`)
    evaluate_low_sample_count_percentile: str | None = None  # single-metric percentile alarms

    @property
    def name(self) -> str:
        """The CloudWatch alarm name (see the module docstring for the convention)."""
        return alarm_name(self.endpoint, self.variant, self.model_version, self.short_name)

    @property
    def dimensions(self) -> tuple[tuple[str, str], ...]:
        """The dimensions of every metric this alarm reads."""
        dims: list[tuple[str, str]] = [(metrics.ENDPOINT_NAME, self.endpoint), (metrics.VARIANT_NAME, self.variant)]
        if self.model_version is not None:
            dims.append((metrics.MODEL_VERSION, self.model_version))
        if self.segment is not None:
            dims.append(self.segment)
        return tuple(dims)


def alarm_name(endpoint: str, variant: str, model_version: str | None, alarm: str) -> str:
    """``rollguard-{endpoint}-{variant}-{alarm}``, or ``rollguard-{endpoint}-{variant}.{model_version}-{alarm}``."""
    fleet = variant if model_version is None else f"{variant}.{model_version}"
    return f"{NAME_PREFIX}{endpoint}-{fleet}-{alarm}"


def expand(spec: SpecFile) -> tuple[Alarm, ...]:
    """Every alarm of the spec, one per (endpoint, variant, alarm), in spec order."""
    return tuple(a for ep in spec.endpoints for s in ep.alarms for a in expand_one(spec, ep, s))


def expand_one(spec: SpecFile, ep: EndpointSpec, s: AlarmSpec) -> list[Alarm]:
    """One spec alarm of ``ep``, once per variant it is made for (its own, else the endpoint's)."""
    if s.metric is not None and s.metric in RATES:
        kind: Literal["rate", "latency", "expression", "gauge"] = "rate"
        metric = s.metric
        comparison = s.comparison or _OPERATORS[RATES[s.metric].bad_when]
    elif s.metric is not None:
        kind, metric, comparison = "latency", s.metric, s.comparison or _OPERATORS[">"]
    elif s.expression is not None:
        kind, metric, comparison = "expression", s.expression.strip(), s.comparison or ""
    else:
        kind, metric, comparison = "gauge", s.gauge or "", s.comparison or ""
    if kind == "latency" and s.min_samples is None:
        min_samples = _latency_min_samples(metric)
    elif kind in ("rate", "latency"):
        min_samples = DEFAULT_MIN_SAMPLES if s.min_samples is None else s.min_samples
    else:
        min_samples = s.min_samples or 0
    segment = next(iter(s.segment.items())) if s.segment else None
    return [
        Alarm(
            spec_name=spec.name,
            endpoint=ep.name,
            variant=variant,
            model_version=ep.model_version if s.scope == "model_version" else None,
            short_name=s.name,
            kind=kind,
            metric=metric,
            threshold=float(s.threshold),
            comparison=comparison,
            period=s.period,
            evaluation_periods=s.evaluation_periods,
            datapoints_to_alarm=s.datapoints_to_alarm or s.evaluation_periods,
            min_samples=min_samples,
            treat_missing_data="breaching" if s.fails_safe else s.treat_missing_data,
            segment=segment,
            sample=s.sample.strip() if s.sample else None,
            statistic=(s.statistic or "Average") if kind == "gauge" else None,
            description=s.description,
            alarm_actions=s.alarm_actions,
            ok_actions=s.ok_actions,
            guardrail=s.guardrail,
            fail_safe=s.fails_safe,
            evaluate_low_sample_count_percentile=s.evaluate_low_sample_count_percentile,
        )
        for variant in ep.variants_for(s)
    ]


def _latency_min_samples(metric: str) -> int:
    """The default guard of a percentile alarm: AWS's significance rule (1000 samples for p99,
    10000 for p99.9), never below the rates' default."""
    needed = cloudwatch_rules.percentile_min_samples(float(latency_percentile(metric) or 0))
    return max(DEFAULT_MIN_SAMPLES, math.ceil(needed or 0))
