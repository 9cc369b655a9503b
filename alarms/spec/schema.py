"""The spec file's schema: pydantic models of what a spec may say, with the checks one alarm
or endpoint can make on its own (see `alarms.spec` for the format)."""
from __future__ import annotations

import math
import re
from collections.abc import Mapping
from typing import Any, Literal

from pydantic import BaseModel, ConfigDict, Field, field_validator, model_validator

from alarms.spec.expressions import expression_problem
from pipelines import cloudwatch_rules, metrics
from pipelines.comparison import config as comparison_config
from pipelines.comparison.config import Arm, Comparison, MetricSpec

DEFAULT_MIN_SAMPLES = 30
DEFAULT_PERIOD = 60
DEFAULT_EVALUATION_PERIODS = 5

_LATENCY_RE = re.compile(r"^p(\d{1,2}(?:\.\d{1,3})?)_latency$")
# SageMaker's EndpointName / VariantName pattern (botocore service model), max 63 characters
SAGEMAKER_NAME_RE = re.compile(r"^[a-zA-Z0-9](-*[a-zA-Z0-9]){0,62}$")
_ALARM_SHORT_RE = re.compile(r"^[A-Za-z0-9][A-Za-z0-9_-]{0,63}$")
_SPEC_NAME_RE = re.compile(r"^[A-Za-z0-9_.-]{1,64}$")
_MODEL_VERSION_RE = re.compile(r"^[!-~]{1,128}$")  # printable ASCII, no spaces: it is a dimension value
CONTROL_RE = re.compile(r"[\x00-\x1f\x7f]")
MAX_NAME, MAX_VALUE = cloudwatch_rules.MAX_NAME, cloudwatch_rules.MAX_DIMENSION_VALUE
#: the rates an alarm's ``metric`` can name: those CloudWatch computes from published counts
RATES = metrics.PUBLISHED_RATES


def evaluation_window_problem(period: int, evaluation_periods: int) -> str | None:
    """Why Period x EvaluationPeriods is too long for CloudWatch, or None when it fits."""
    total = period * evaluation_periods
    limit = cloudwatch_rules.max_evaluation_s(period)
    if total <= limit:
        return None
    which = (
        f"one day ({limit} s) for periods under an hour" if limit == cloudwatch_rules.ONE_DAY_S
        else f"seven days ({limit} s)"
    )
    return (
        f"period x evaluation_periods = {period} x {evaluation_periods} = {total} s exceeds "
        f"CloudWatch's limit of {which}"
    )


def comparison_operator(value: object) -> str:
    """``<``, ``<=``, ``>``, ``>=`` or a ComparisonOperator name -> the ComparisonOperator name."""
    operators = cloudwatch_rules.COMPARISON_OPERATORS
    if isinstance(value, str):
        if value in operators:
            return operators[value]
        if value in operators.values():
            return value
    allowed = ", ".join([*operators, *operators.values()])
    raise ValueError(f"comparison must be one of {allowed}; got {value!r}")


class _Tuning(BaseModel):
    """Keys an alarm may take from `defaults`."""

    model_config = ConfigDict(extra="forbid", frozen=True)

    period: int = DEFAULT_PERIOD
    evaluation_periods: int = Field(DEFAULT_EVALUATION_PERIODS, ge=1)
    datapoints_to_alarm: int | None = Field(None, ge=1)
    min_samples: int | None = Field(None, ge=0)
    treat_missing_data: Literal["breaching", "notBreaching", "ignore", "missing"] = "notBreaching"
    scope: Literal["all", "model_version"] = "all"
    guardrail: bool = True
    #: go to ALARM when the daemon's heartbeat is missing; unset: the same as ``guardrail``
    fail_safe: bool | None = None
    alarm_actions: tuple[str, ...] = Field((), max_length=cloudwatch_rules.MAX_ACTIONS)
    ok_actions: tuple[str, ...] = Field((), max_length=cloudwatch_rules.MAX_ACTIONS)

    @field_validator("period")
    @classmethod
    def _period(cls, v: int) -> int:
        # CloudWatch also takes 10, 20 and 30 s, but only over data stored at 1 s resolution
        # (StorageResolution=1); rollguard publishes at 60 s, so such an alarm would never see data.
        if v in cloudwatch_rules.HIGH_RESOLUTION_PERIODS:
            raise ValueError(
                f"period must be a multiple of 60 seconds; got {v} (10, 20 and 30 s alarms need "
                "high-resolution metrics, and rollguard publishes at 60 s resolution)"
            )
        if not cloudwatch_rules.valid_alarm_period(v):
            raise ValueError(f"period must be a multiple of 60 seconds; got {v}")
        return v


class Defaults(_Tuning):
    """The `defaults` block: applied to every alarm that does not set the key itself."""

    @model_validator(mode="after")
    def _window(self) -> Defaults:
        problem = evaluation_window_problem(self.period, self.evaluation_periods)
        if problem:
            raise ValueError(problem)
        return self


class AlarmSpec(_Tuning):
    """One alarm as written in the spec (before expansion per variant)."""

    name: str
    metric: str | None = None
    expression: str | None = None
    sample: str | None = None
    gauge: str | None = None
    statistic: Literal["Average", "Minimum", "Maximum"] | None = None
    threshold: float
    comparison: str | None = None
    segment: dict[str, str] | None = None
    #: the one variant this alarm watches, instead of every variant of its endpoint
    variant: str | None = None
    #: EvaluateLowSampleCountPercentile of a single-metric percentile alarm
    evaluate_low_sample_count_percentile: Literal["evaluate", "ignore"] | None = None
    description: str | None = Field(None, max_length=cloudwatch_rules.MAX_ALARM_DESCRIPTION)

    @field_validator("name")
    @classmethod
    def _name(cls, v: str) -> str:
        return _short_name(v, "alarm")

    @field_validator("comparison", mode="before")
    @classmethod
    def _cmp(cls, v: object) -> object:
        return None if v is None else comparison_operator(v)

    @field_validator("variant")
    @classmethod
    def _variant(cls, v: str | None) -> str | None:
        return None if v is None else _sagemaker_name(v, "variant name")

    @field_validator("threshold")
    @classmethod
    def _finite(cls, v: float) -> float:
        if not math.isfinite(v):
            raise ValueError(f"threshold must be a finite number; got {v}")
        return v

    @field_validator("segment", mode="before")
    @classmethod
    def _segment(cls, v: object) -> object:
        if v is None:
            return v
        if not isinstance(v, Mapping) or len(v) != 1:
            raise ValueError("segment must be a mapping with exactly one attribute, e.g. {merchant_category: \"5411\"}")
        ((key, value),) = v.items()
        if not isinstance(key, str) or not 1 <= len(key) <= MAX_NAME or CONTROL_RE.search(key):
            raise ValueError(f"segment attribute must be a dimension name of 1-{MAX_NAME} characters; got {key!r}")
        if not isinstance(value, str):
            raise ValueError(
                f"segment value must be a string; quote it, e.g. {key}: \"{value}\" (got {type(value).__name__})"
            )
        if not 1 <= len(value) <= MAX_VALUE or CONTROL_RE.search(value):
            raise ValueError(f"segment value must be 1-{MAX_VALUE} characters without control characters; got {value!r}")
        return dict(v)

    @model_validator(mode="after")
    def _consistent(self) -> AlarmSpec:
        chosen = [k for k in ("metric", "expression", "gauge") if getattr(self, k) is not None]
        if len(chosen) != 1:
            got = ", ".join(chosen) if chosen else "none"
            raise ValueError(f"set exactly one of metric, expression, gauge; got {got}")
        if self.metric is not None and self.metric not in RATES and not latency_percentile(self.metric):
            allowed = ", ".join([*RATES, "pNN_latency (e.g. p99_latency, p99.9_latency)"])
            raise ValueError(f"metric must be one of {allowed}; got {self.metric!r}")
        if self.metric is not None and self.metric in RATES and self.min_samples == 0:
            raise ValueError("min_samples must be >= 1 for a rate (a rate over 0 samples is undefined)")
        if self.gauge is not None:
            if self.gauge not in metrics.GAUGES:
                raise ValueError(f"gauge must be one of {', '.join(metrics.GAUGES)}; got {self.gauge!r}")
            if self.min_samples is not None:
                raise ValueError(
                    "min_samples does not apply to a gauge (the daemon does not publish a gauge "
                    "below its own ROLLGUARD_MIN_SAMPLES); remove it"
                )
        elif self.statistic is not None:
            raise ValueError("statistic applies to gauge alarms only")
        if self.expression is not None:
            if self.comparison is None:
                raise ValueError("comparison is required with expression (<, <=, >, >=)")
            problem = expression_problem(self.expression)
            if problem:
                raise ValueError(f"expression: {problem}")
            if self.sample is not None:
                problem = expression_problem(self.sample)
                if problem:
                    raise ValueError(f"sample: {problem}")
            if (self.sample is None) != (self.min_samples is None):
                raise ValueError("with expression, set both sample (the sample-size expression) and min_samples, or neither")
        elif self.sample is not None:
            raise ValueError("sample applies to expression alarms only (built-in metrics know their sample size)")
        if self.gauge is not None and self.comparison is None:
            raise ValueError("comparison is required with gauge (<, <=, >, >=)")
        m = self.datapoints_to_alarm
        if m is not None and m > self.evaluation_periods:
            raise ValueError(
                f"datapoints_to_alarm ({m}) must not exceed evaluation_periods ({self.evaluation_periods})"
            )
        problem = evaluation_window_problem(self.period, self.evaluation_periods)
        if problem:
            raise ValueError(problem)
        if self.fails_safe and "treat_missing_data" in self.model_fields_set and self.treat_missing_data != "breaching":
            raise ValueError(
                f"treat_missing_data {self.treat_missing_data} contradicts fail_safe: a fail-safe alarm reads a "
                "period without the daemon's heartbeat as missing and missing as breaching; set fail_safe: false "
                "to choose another policy"
            )
        if self.evaluate_low_sample_count_percentile is not None:
            if self.metric is None or not latency_percentile(self.metric):
                raise ValueError("evaluate_low_sample_count_percentile applies to pNN_latency alarms only")
            if self.min_samples != 0 or self.fails_safe:
                raise ValueError(
                    "evaluate_low_sample_count_percentile needs min_samples: 0 and fail_safe: false: CloudWatch "
                    "applies it to an alarm whose statistic is the percentile, and a guarded or fail-safe "
                    "latency alarm is metric math (its guard is min_samples)"
                )
        return self

    @property
    def fails_safe(self) -> bool:
        """Whether the alarm goes to ALARM without the daemon's heartbeat: ``fail_safe``, else ``guardrail``."""
        return self.guardrail if self.fail_safe is None else self.fail_safe


class EndpointSpec(BaseModel):
    """One endpoint: its variant(s), the new fleet's model version, and its alarms."""

    model_config = ConfigDict(extra="forbid", frozen=True)

    name: str
    variant: str | None = None
    variants: tuple[str, ...] | None = None
    model_version: str | None = None
    alarms: tuple[AlarmSpec, ...]

    @field_validator("name")
    @classmethod
    def _name(cls, v: str) -> str:
        return _sagemaker_name(v, "endpoint name")

    @field_validator("alarms")
    @classmethod
    def _some_alarms(cls, v: tuple[AlarmSpec, ...]) -> tuple[AlarmSpec, ...]:
        # checked here, not with min_length, so a bad alarm is not also reported as "no alarms"
        if not v:
            raise ValueError("list at least one alarm")
        return v

    @field_validator("variant")
    @classmethod
    def _variant(cls, v: str | None) -> str | None:
        return None if v is None else _sagemaker_name(v, "variant name")

    @field_validator("variants")
    @classmethod
    def _variants(cls, v: tuple[str, ...] | None) -> tuple[str, ...] | None:
        if v is None:
            return v
        if not v:
            raise ValueError("variants must list at least one variant name")
        if len(set(v)) != len(v):
            raise ValueError(f"variants must be unique; got {list(v)}")
        return tuple(_sagemaker_name(x, "variant name") for x in v)

    @field_validator("model_version")
    @classmethod
    def _model_version(cls, v: str | None) -> str | None:
        return None if v is None else _model_version_name(v)

    @model_validator(mode="after")
    def _consistent(self) -> EndpointSpec:
        if self.variant is not None and self.variants is not None:
            raise ValueError("set exactly one of variant (a name) or variants (a list of names)")
        if self.variant is None and self.variants is None and any(a.variant is None for a in self.alarms):
            raise ValueError("set exactly one of variant (a name) or variants (a list of names), or variant on every alarm")
        seen: set[tuple[str, str]] = set()
        for alarm in self.alarms:
            # one short name may serve several variants (`variants:`, or alarms with their own variant)
            for variant in self.variants_for(alarm):
                if (alarm.name, variant) in seen:
                    which = f" for variant {variant}" if alarm.variant is not None else ""
                    raise ValueError(f"alarm name {alarm.name!r} is used twice in endpoint {self.name}{which}")
                seen.add((alarm.name, variant))
            if alarm.scope == "model_version" and self.model_version is None:
                raise ValueError(
                    f"alarm {alarm.name!r} has scope model_version but endpoint {self.name} sets no model_version"
                )
        return self

    def variant_names(self) -> tuple[str, ...]:
        """The variants every alarm of this endpoint is made for, unless it names its own."""
        if self.variants is not None:
            return self.variants
        return () if self.variant is None else (self.variant,)

    def variants_for(self, alarm: AlarmSpec) -> tuple[str, ...]:
        """The variants ``alarm`` is made for: its own ``variant``, else the endpoint's."""
        return (alarm.variant,) if alarm.variant is not None else self.variant_names()


class ArmSpec(BaseModel):
    """One side of a comparison: a variant, a model version, or both (`pipelines.comparison.config.Arm`)."""

    model_config = ConfigDict(extra="forbid", frozen=True)

    variant: str | None = None
    model_version: str | None = None

    @field_validator("variant")
    @classmethod
    def _variant(cls, v: str | None) -> str | None:
        return None if v is None else _sagemaker_name(v, "variant name")

    @field_validator("model_version")
    @classmethod
    def _model_version(cls, v: str | None) -> str | None:
        return None if v is None else _model_version_name(v)

    @model_validator(mode="after")
    def _some_side(self) -> ArmSpec:
        if self.variant is None and self.model_version is None:
            raise ValueError("an arm needs a variant, a model_version or both, e.g. {variant: v5} or {model_version: fraud-v5}")
        return self

    def to_arm(self) -> Arm:
        return Arm(self.variant, self.model_version)


class ToleranceSpec(BaseModel):
    """A judged rate: how much worse (an absolute difference) the candidate may be."""

    model_config = ConfigDict(extra="forbid", frozen=True)

    tolerance: float

    @field_validator("tolerance")
    @classmethod
    def _tolerance(cls, v: float) -> float:
        if not (math.isfinite(v) and 0 <= v < 1):
            raise ValueError(
                f"tolerance must be in [0, 1): an absolute difference in the rate, e.g. 0.02 for 0.80 -> 0.78; got {v!r}"
            )
        return v


class LatencyOverSpec(ToleranceSpec):
    """The share of requests slower than ``threshold_ms``, judged like a rate."""

    threshold_ms: float

    @field_validator("threshold_ms")
    @classmethod
    def _threshold(cls, v: float) -> float:
        if not (math.isfinite(v) and v > 0):
            raise ValueError(f"threshold_ms must be a number of milliseconds > 0; got {v!r}")
        return v


class ComparisonMetrics(BaseModel):
    """The metrics a comparison judges (`pipelines.comparison.config.METRICS`), each with its tolerance."""

    model_config = ConfigDict(extra="forbid", frozen=True)

    recall: ToleranceSpec | None = None
    precision: ToleranceSpec | None = None
    error_rate: ToleranceSpec | None = None
    latency_over: LatencyOverSpec | None = None

    @model_validator(mode="after")
    def _some_metric(self) -> ComparisonMetrics:
        if not self.specs():
            raise ValueError(f"list at least one metric: {', '.join(comparison_config.METRICS)}")
        return self

    def specs(self) -> tuple[MetricSpec, ...]:
        """The judged metrics in `METRICS` order."""
        out: list[MetricSpec] = []
        for name in comparison_config.METRICS:
            given = getattr(self, name)
            if given is not None:
                threshold = given.threshold_ms if isinstance(given, LatencyOverSpec) else None
                out.append(MetricSpec(name, given.tolerance, threshold))
        return tuple(out)


class ComparisonSpec(BaseModel):
    """One comparison (SPEC.md "Comparisons and verdicts"): a candidate judged against a baseline."""

    model_config = ConfigDict(extra="forbid", frozen=True)

    name: str
    endpoint: str
    baseline: ArmSpec
    candidate: ArmSpec
    metrics: ComparisonMetrics
    segments: tuple[str, ...] = ()
    min_samples: int = Field(DEFAULT_MIN_SAMPLES, ge=1)
    alpha: float = 0.01
    concurrent_within_s: int = Field(comparison_config.DEFAULT_CONCURRENT_WITHIN_S, ge=1)
    #: its verdict alarm is listed in the guardrail's AutoRollbackConfiguration
    guardrail: bool = True
    alarm_actions: tuple[str, ...] = Field((), max_length=cloudwatch_rules.MAX_ACTIONS)
    ok_actions: tuple[str, ...] = Field((), max_length=cloudwatch_rules.MAX_ACTIONS)
    description: str | None = Field(None, max_length=cloudwatch_rules.MAX_ALARM_DESCRIPTION)

    @field_validator("name")
    @classmethod
    def _name(cls, v: str) -> str:
        return _short_name(v, "comparison")

    @field_validator("endpoint")
    @classmethod
    def _endpoint(cls, v: str) -> str:
        return _sagemaker_name(v, "endpoint name")

    @field_validator("segments")
    @classmethod
    def _segments(cls, v: tuple[str, ...]) -> tuple[str, ...]:
        for attr in v:
            if not 1 <= len(attr) <= MAX_NAME or CONTROL_RE.search(attr):
                raise ValueError(f"segment attribute must be a dimension name of 1-{MAX_NAME} characters; got {attr!r}")
        if len(set(v)) != len(v):
            raise ValueError(f"segments must be unique; got {list(v)}")
        return v

    @field_validator("alpha")
    @classmethod
    def _alpha(cls, v: float) -> float:
        if not 0 < v < 1:
            raise ValueError(f"alpha must be in (0, 1): the false-FAIL level for the whole comparison, e.g. 0.01; got {v!r}")
        return v

    @model_validator(mode="after")
    def _consistent(self) -> ComparisonSpec:
        if self.baseline == self.candidate:
            raise ValueError(
                f"baseline and candidate are the same captures ({self.baseline.to_arm()}); "
                "a comparison judges two different arms"
            )
        self.to_comparison()  # the verdict engine's own checks: a valid spec always converts
        return self

    def to_comparison(self) -> Comparison:
        """The comparison as the pipeline counts it and the verdict engine judges it."""
        return Comparison(
            name=self.name,
            endpoint=self.endpoint,
            baseline=self.baseline.to_arm(),
            candidate=self.candidate.to_arm(),
            metrics=self.metrics.specs(),
            segments=self.segments,
            min_samples=self.min_samples,
            alpha=self.alpha,
            concurrent_within_s=self.concurrent_within_s,
        )


class SpecFile(BaseModel):
    """A whole alarm spec file."""

    model_config = ConfigDict(extra="forbid", frozen=True)

    version: Literal[1] = 1
    name: str
    defaults: Defaults | None = None
    endpoints: tuple[EndpointSpec, ...] = ()
    comparisons: tuple[ComparisonSpec, ...] = ()

    @field_validator("name")
    @classmethod
    def _name(cls, v: str) -> str:
        if not _SPEC_NAME_RE.match(v):
            raise ValueError(f"spec name must be 1-64 characters of letters, digits, _ . -; got {v!r}")
        return v

    @model_validator(mode="before")
    @classmethod
    def _apply_defaults(cls, data: Any) -> Any:
        # Defaults are copied into each alarm before the alarm is validated, so every alarm
        # validator (M <= N, window limits) sees the values that will actually be sent.
        if not isinstance(data, Mapping):
            return data
        defaults = data.get("defaults")
        if not isinstance(defaults, Mapping):
            return data
        known = set(_Tuning.model_fields)
        usable = {k: v for k, v in defaults.items() if k in known}
        if "comparisons" in data:
            data = {**data, "comparisons": _comparisons_with_defaults(data["comparisons"], usable)}
        endpoints = data.get("endpoints")
        if not isinstance(endpoints, list):
            return data
        new_endpoints: list[Any] = []
        for ep in endpoints:
            if isinstance(ep, Mapping) and isinstance(ep.get("alarms"), list):
                alarms = []
                for alarm in ep["alarms"]:
                    if isinstance(alarm, Mapping):
                        merged = dict(alarm)
                        for k, v in usable.items():
                            # a gauge has no sample guard of ours, so a default min_samples skips it
                            if k == "min_samples" and "gauge" in alarm:
                                continue
                            merged.setdefault(k, v)
                        # a fail-safe alarm reads missing data as breaching (no heartbeat): a default
                        # treat_missing_data is for the fail-open alarms
                        if "treat_missing_data" not in alarm and _fails_safe(merged):
                            merged.pop("treat_missing_data", None)
                        alarms.append(merged)
                    else:
                        alarms.append(alarm)
                ep = {**ep, "alarms": alarms}
            new_endpoints.append(ep)
        return {**data, "endpoints": new_endpoints}

    @model_validator(mode="after")
    def _unique_endpoints(self) -> SpecFile:
        if not self.endpoints and not self.comparisons:
            raise ValueError("list at least one endpoint (endpoints) or comparison (comparisons)")
        names = [e.name for e in self.endpoints]
        dupes = sorted({n for n in names if names.count(n) > 1})
        if dupes:
            raise ValueError(f"endpoint listed more than once: {', '.join(dupes)} (list its alarms under one entry)")
        return self


#: the `defaults` keys a comparison takes (the rest describe how an alarm reads a rate)
COMPARISON_DEFAULTS = ("alarm_actions", "ok_actions")


def _comparisons_with_defaults(comparisons: Any, usable: Mapping[str, Any]) -> Any:
    if not isinstance(comparisons, list):
        return comparisons
    inherited = {k: v for k, v in usable.items() if k in COMPARISON_DEFAULTS}
    return [{**inherited, **c} if isinstance(c, Mapping) else c for c in comparisons]


def _fails_safe(alarm: Mapping[str, Any]) -> bool:
    """AlarmSpec.fails_safe of an alarm mapping not validated yet (True only for a real True)."""
    fail_safe = alarm.get("fail_safe")
    return (alarm.get("guardrail", True) if fail_safe is None else fail_safe) is True


def _short_name(v: str, what: str) -> str:
    """An alarm's or comparison's name: part of the CloudWatch alarm names made from it."""
    if not _ALARM_SHORT_RE.match(v):
        raise ValueError(f"{what} name must match [A-Za-z0-9][A-Za-z0-9_-]{{0,63}} (letters, digits, _ and -); got {v!r}")
    return v


def _sagemaker_name(v: str, what: str) -> str:
    if not SAGEMAKER_NAME_RE.match(v):
        raise ValueError(
            f"{what} must be 1-63 letters, digits and hyphens, starting and ending with a letter or digit; got {v!r}"
        )
    return v


def _model_version_name(v: str) -> str:
    if not _MODEL_VERSION_RE.match(v):
        raise ValueError(f"model_version must be 1-128 printable ASCII characters without spaces; got {v!r}")
    return v


def latency_percentile(metric: str) -> str | None:
    """'p99.9_latency' -> '99.9'; None when not a latency metric or the percentile is out of (0, 100)."""
    m = _LATENCY_RE.match(metric)
    if not m:
        return None
    return m.group(1) if 0 < float(m.group(1)) < 100 else None
