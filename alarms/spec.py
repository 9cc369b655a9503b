"""Alarm spec files: parse, validate, and turn each alarm into its exact PutMetricAlarm request.

A spec is YAML (``.yaml``/``.yml``) or TOML (``.toml``); both carry the same shape::

    version: 1                      # optional, the only format so far
    name: fraud                     # the spec's name: tag rollguard:spec=<name>; [A-Za-z0-9_.-]{1,64}
    defaults:                       # optional; any alarm key below except the metric itself
      period: 60                    # seconds: 10, 20, 30 or a multiple of 60
      evaluation_periods: 5         # N
      datapoints_to_alarm: 3        # M (default: N)
      min_samples: 50               # sample-size guard (default 30)
      treat_missing_data: notBreaching
    endpoints:
      - name: fraud-ep              # SageMaker endpoint name
        variant: AllTraffic         # or `variants: [a, b]`: each alarm is made once per variant
        model_version: fraud-v6     # optional: the new fleet, used by `scope: model_version`
        alarms:
          - name: recall            # [A-Za-z0-9][A-Za-z0-9_-]{0,63}, unique per endpoint
            metric: recall          # see "What an alarm watches"
            threshold: 0.80
            comparison: "<"         # <, <=, >, >= or the CloudWatch operator name
            scope: model_version    # all (default) | model_version (only the new fleet)
            segment: {merchant_category: "5411"}   # optional: one segment attribute = value
            guardrail: true         # listed in the guardrail's AutoRollbackConfiguration (default)
            # also: description, alarm_actions / ok_actions (<= 5 ARNs each), and all `defaults` keys

What an alarm watches (exactly one of):

- ``metric``: a rate built by metric math from the ``Sum`` of the count metrics, each count
  wrapped in ``FILL(id, 0)``: a count with no event in a period may not be published at all,
  and it must then read as an explicit 0 (a period of only false positives is precision 0,
  not a gap), whatever the publisher does with zeros:

  ================  ===========================  ================  ==================
  metric            value                        sample size n     default comparison
  ================  ===========================  ================  ==================
  precision         tp/(tp+fp)                   tp+fp             <
  recall            tp/(tp+fn)                   tp+fn             <
  f1                2tp/(2tp+fp+fn)              tp+fp+fn          <
  error_rate        errors/invocations           invocations       >
  label_coverage    labeled/invocations          invocations       <
  shadow_agreement  agreements/comparisons       comparisons       <
  pNN_latency       pNN of the Latency            SampleCount of    >
                    distribution (p99, p99.9)    Latency
  ================  ===========================  ================  ==================

- ``expression``: free metric math over the count ids ``tp fp fn tn labeled invocations
  errors agreements comparisons expired`` (each the ``Sum`` of its count metric; no FILL is
  added, write ``FILL(fp, 0)`` yourself). ``comparison`` is required; ``min_samples`` needs
  ``sample``, an expression over the same ids giving the sample size.
- ``gauge``: one of the daemon's gauges (``Precision``, ``RecallLowerBound``, ...) as a plain
  single-metric alarm with ``statistic`` (Average, Minimum or Maximum; default Average).
  Gauges are not published below the daemon's own min_samples, so ``min_samples`` is refused.

The sample-size guard is part of the math: ``IF(n >= min_samples, value, safe)``, where
``safe`` is a value on the non-breaching side of the threshold (the rate's natural bound when
that is on the safe side, e.g. 1 for ``precision < 0.9``, else the threshold itself for ``<``/``>``
or the threshold moved by max(1, |threshold|) for ``<=``/``>=``). A period with too few samples
is therefore OK, not breaching and not missing; ``treat_missing_data`` (default notBreaching)
only matters when CloudWatch has no data at all. ``pNN_latency`` with ``min_samples: 0`` is a
plain single-metric alarm with ``ExtendedStatistic: pNN``.

Dimensions: ``EndpointName``, ``VariantName``; plus ``ModelVersion`` when ``scope:
model_version``; plus the segment attribute when ``segment`` is set.

Alarm names follow one convention::

    rollguard-{endpoint}-{fleet}-{alarm}     fleet = {variant}                  (scope: all)
                                             fleet = {variant}.{model_version}  (scope: model_version)

Endpoint and variant names cannot contain ``.`` (SageMaker's pattern), so the first ``.``
always separates variant and model version. A name must fit CloudWatch's 255 characters
(no truncation: a guardrail must be able to predict it), and two alarms of one spec may not
end up with the same name; both are refused at load time with the key path.

Everything CloudWatch would refuse is refused before calling AWS (:func:`check_put_metric_alarm`):
periods other than 10, 20, 30 or a multiple of 60; Period x EvaluationPeriods over one day
(over seven days when the period is one hour or more); DatapointsToAlarm > EvaluationPeriods;
more than 10 MetricStat or 10 expressions in a math alarm; expressions over 2048 characters.
"""
from __future__ import annotations

import math
import re
import tomllib
import types
import typing
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Literal

import yaml
from pydantic import BaseModel, ConfigDict, Field, ValidationError, field_validator, model_validator

NAME_PREFIX = "rollguard-"
OWNER_TAG = "rollguard:owner"
OWNER_VALUE = "rollguard"
SPEC_TAG = "rollguard:spec"

# count id in metric math -> published count metric (all additive, read with Stat Sum)
COUNT_METRICS: dict[str, str] = {
    "tp": "TruePositives",
    "fp": "FalsePositives",
    "fn": "FalseNegatives",
    "tn": "TrueNegatives",
    "labeled": "Labeled",
    "invocations": "Invocations",
    "errors": "Errors",
    "agreements": "ShadowAgreements",
    "comparisons": "ShadowComparisons",
    "expired": "Expired",
}

GAUGES: tuple[str, ...] = (
    "Precision", "Recall", "F1", "ErrorRate", "PositiveRate", "LabelCoverage",
    "LatencyP50", "LatencyP90", "LatencyP99", "PrecisionLowerBound", "RecallLowerBound",
)

COMPARISONS: dict[str, str] = {
    "<": "LessThanThreshold",
    "<=": "LessThanOrEqualToThreshold",
    ">": "GreaterThanThreshold",
    ">=": "GreaterThanOrEqualToThreshold",
}
_CW_COMPARISONS = frozenset(COMPARISONS.values())

DEFAULT_MIN_SAMPLES = 30
DEFAULT_PERIOD = 60
DEFAULT_EVALUATION_PERIODS = 5
MAX_ALARM_NAME = 255
MAX_EXPRESSION = 2048
MAX_METRIC_STATS = 10
MAX_EXPRESSIONS = 10
ONE_DAY = 86_400
SEVEN_DAYS = 604_800


@dataclass(frozen=True, slots=True)
class Rate:
    """A built-in rate: templates over count ids ("{tp}" becomes FILL(tp,0))."""

    numerator: str
    denominator: str
    sample: str
    default_comparison: str
    bounds: tuple[float, float]
    label: str


RATES: dict[str, Rate] = {
    "precision": Rate("{tp}", "{tp}+{fp}", "{tp}+{fp}", "<", (0.0, 1.0), "precision"),
    "recall": Rate("{tp}", "{tp}+{fn}", "{tp}+{fn}", "<", (0.0, 1.0), "recall"),
    "f1": Rate("2*{tp}", "2*{tp}+{fp}+{fn}", "{tp}+{fp}+{fn}", "<", (0.0, 1.0), "F1"),
    "error_rate": Rate("{errors}", "{invocations}", "{invocations}", ">", (0.0, 1.0), "error rate"),
    "label_coverage": Rate("{labeled}", "{invocations}", "{invocations}", "<", (0.0, 1.0), "label coverage"),
    "shadow_agreement": Rate(
        "{agreements}", "{comparisons}", "{comparisons}", "<", (0.0, 1.0), "shadow agreement"
    ),
}
_LATENCY_RE = re.compile(r"^p(\d{1,2}(?:\.\d{1,3})?)_latency$")
_LATENCY_BOUNDS = (0.0, math.inf)

# SageMaker's EndpointName / VariantName pattern (botocore service model), max 63 characters
_SAGEMAKER_NAME_RE = re.compile(r"^[a-zA-Z0-9](-*[a-zA-Z0-9]){0,62}$")
_ALARM_SHORT_RE = re.compile(r"^[A-Za-z0-9][A-Za-z0-9_-]{0,63}$")
_SPEC_NAME_RE = re.compile(r"^[A-Za-z0-9_.-]{1,64}$")
_MODEL_VERSION_RE = re.compile(r"^[!-~]{1,128}$")  # printable ASCII, no spaces: it is a dimension value
_METRIC_ID_RE = re.compile(r"^[a-z][a-zA-Z0-9_]*$")
_CONTROL_RE = re.compile(r"[\x00-\x1f\x7f]")
_TOKEN_RE = re.compile(
    r"\s*(?:(?P<num>(?:\d+\.?\d*|\.\d+)(?:[eE][+-]?\d+)?)|(?P<id>[A-Za-z_][A-Za-z0-9_]*)"
    r"|(?P<op>>=|<=|==|!=|[-+*/^(),<>]))"
)


class SpecError(ValueError):
    """A spec file that cannot be used; ``problems`` holds one line per problem."""

    def __init__(self, problems: Sequence[str]) -> None:
        self.problems = tuple(problems)
        super().__init__("\n".join(self.problems))


class AlarmLimitError(ValueError):
    """A PutMetricAlarm request CloudWatch would refuse; ``problems`` holds one line each."""

    def __init__(self, alarm_name: str, problems: Sequence[str]) -> None:
        self.problems = tuple(problems)
        super().__init__(f"alarm {alarm_name}: " + "; ".join(self.problems))


# ---------------------------------------------------------------------------------------------
# the file format (pydantic at the boundary)


def valid_period(period: int) -> bool:
    """CloudWatch alarm periods: 10, 20, 30 (high resolution) or any multiple of 60."""
    return period in (10, 20, 30) or (period >= 60 and period % 60 == 0)


def evaluation_window_problem(period: int, evaluation_periods: int) -> str | None:
    """Why Period x EvaluationPeriods is too long for CloudWatch, or None when it fits."""
    total = period * evaluation_periods
    limit = ONE_DAY if period < 3600 else SEVEN_DAYS
    if total <= limit:
        return None
    which = "one day (86400 s) for periods under an hour" if limit == ONE_DAY else "seven days (604800 s)"
    return (
        f"period x evaluation_periods = {period} x {evaluation_periods} = {total} s exceeds "
        f"CloudWatch's limit of {which}"
    )


def _comparison(value: object) -> str:
    if isinstance(value, str):
        if value in COMPARISONS:
            return COMPARISONS[value]
        if value in _CW_COMPARISONS:
            return value
    allowed = ", ".join([*COMPARISONS, *COMPARISONS.values()])
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
    alarm_actions: tuple[str, ...] = Field((), max_length=5)
    ok_actions: tuple[str, ...] = Field((), max_length=5)

    @field_validator("period")
    @classmethod
    def _period(cls, v: int) -> int:
        if not valid_period(v):
            raise ValueError(f"period must be 10, 20, 30 or a multiple of 60 seconds; got {v}")
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
    description: str | None = Field(None, max_length=1024)

    @field_validator("name")
    @classmethod
    def _name(cls, v: str) -> str:
        if not _ALARM_SHORT_RE.match(v):
            raise ValueError(
                f"alarm name must match [A-Za-z0-9][A-Za-z0-9_-]{{0,63}} (letters, digits, _ and -); got {v!r}"
            )
        return v

    @field_validator("comparison", mode="before")
    @classmethod
    def _cmp(cls, v: object) -> object:
        return None if v is None else _comparison(v)

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
        if not isinstance(key, str) or not 1 <= len(key) <= 255 or _CONTROL_RE.search(key):
            raise ValueError(f"segment attribute must be a dimension name of 1-255 characters; got {key!r}")
        if not isinstance(value, str):
            raise ValueError(
                f"segment value must be a string; quote it, e.g. {key}: \"{value}\" (got {type(value).__name__})"
            )
        if not 1 <= len(value) <= 1024 or _CONTROL_RE.search(value):
            raise ValueError(f"segment value must be 1-1024 characters without control characters; got {value!r}")
        return dict(v)

    @model_validator(mode="after")
    def _consistent(self) -> AlarmSpec:
        chosen = [k for k in ("metric", "expression", "gauge") if getattr(self, k) is not None]
        if len(chosen) != 1:
            got = ", ".join(chosen) if chosen else "none"
            raise ValueError(f"set exactly one of metric, expression, gauge; got {got}")
        if self.metric is not None and self.metric not in RATES and not _latency_percentile(self.metric):
            allowed = ", ".join([*RATES, "pNN_latency (e.g. p99_latency, p99.9_latency)"])
            raise ValueError(f"metric must be one of {allowed}; got {self.metric!r}")
        if self.metric is not None and self.metric in RATES and self.min_samples == 0:
            raise ValueError("min_samples must be >= 1 for a rate (a rate over 0 samples is undefined)")
        if self.gauge is not None:
            if self.gauge not in GAUGES:
                raise ValueError(f"gauge must be one of {', '.join(GAUGES)}; got {self.gauge!r}")
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
        return self


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
        if v is not None and not _MODEL_VERSION_RE.match(v):
            raise ValueError(f"model_version must be 1-128 printable ASCII characters without spaces; got {v!r}")
        return v

    @model_validator(mode="after")
    def _consistent(self) -> EndpointSpec:
        if (self.variant is None) == (self.variants is None):
            raise ValueError("set exactly one of variant (a name) or variants (a list of names)")
        seen: set[str] = set()
        for alarm in self.alarms:
            if alarm.name in seen:
                raise ValueError(f"alarm name {alarm.name!r} is used twice in endpoint {self.name}")
            seen.add(alarm.name)
            if alarm.scope == "model_version" and self.model_version is None:
                raise ValueError(
                    f"alarm {alarm.name!r} has scope model_version but endpoint {self.name} sets no model_version"
                )
        return self

    def variant_names(self) -> tuple[str, ...]:
        """The variants every alarm of this endpoint is made for."""
        return self.variants if self.variants is not None else (self.variant or "",)


class SpecFile(BaseModel):
    """A whole alarm spec file."""

    model_config = ConfigDict(extra="forbid", frozen=True)

    version: Literal[1] = 1
    name: str
    defaults: Defaults | None = None
    endpoints: tuple[EndpointSpec, ...]

    @field_validator("name")
    @classmethod
    def _name(cls, v: str) -> str:
        if not _SPEC_NAME_RE.match(v):
            raise ValueError(f"spec name must be 1-64 characters of letters, digits, _ . -; got {v!r}")
        return v

    @field_validator("endpoints")
    @classmethod
    def _some_endpoints(cls, v: tuple[EndpointSpec, ...]) -> tuple[EndpointSpec, ...]:
        if not v:
            raise ValueError("list at least one endpoint")
        return v

    @model_validator(mode="before")
    @classmethod
    def _apply_defaults(cls, data: Any) -> Any:
        # Defaults are copied into each alarm before the alarm is validated, so every alarm
        # validator (M <= N, window limits) sees the values that will actually be sent.
        if not isinstance(data, Mapping):
            return data
        defaults = data.get("defaults")
        endpoints = data.get("endpoints")
        if not isinstance(defaults, Mapping) or not isinstance(endpoints, list):
            return data
        known = set(_Tuning.model_fields)
        usable = {k: v for k, v in defaults.items() if k in known}
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
                        alarms.append(merged)
                    else:
                        alarms.append(alarm)
                ep = {**ep, "alarms": alarms}
            new_endpoints.append(ep)
        return {**data, "endpoints": new_endpoints}

    @model_validator(mode="after")
    def _unique_endpoints(self) -> SpecFile:
        names = [e.name for e in self.endpoints]
        dupes = sorted({n for n in names if names.count(n) > 1})
        if dupes:
            raise ValueError(f"endpoint listed more than once: {', '.join(dupes)} (list its alarms under one entry)")
        return self


def _sagemaker_name(v: str, what: str) -> str:
    if not _SAGEMAKER_NAME_RE.match(v):
        raise ValueError(
            f"{what} must be 1-63 letters, digits and hyphens, starting and ending with a letter or digit; got {v!r}"
        )
    return v


def _latency_percentile(metric: str) -> str | None:
    """'p99.9_latency' -> '99.9'; None when not a latency metric or the percentile is out of (0, 100)."""
    m = _LATENCY_RE.match(metric)
    if not m:
        return None
    return m.group(1) if 0 < float(m.group(1)) < 100 else None


def expression_ids(expression: str) -> tuple[str, ...]:
    """The count ids an expression refers to, in first-use order (validate first)."""
    out: list[str] = []
    for tok in _tokens(expression):
        if tok[0] == "id" and tok[1] in COUNT_METRICS and tok[1] not in out:
            out.append(tok[1])
    return tuple(out)


def expression_problem(expression: str) -> str | None:
    """Why a user expression is unusable (unknown ids, bad characters, parentheses), or None."""
    if not expression.strip():
        return "must not be empty"
    try:
        tokens = _tokens(expression)
    except ValueError as exc:
        return str(exc)
    depth = 0
    for kind, text in tokens:
        if kind == "op" and text == "(":
            depth += 1
        elif kind == "op" and text == ")":
            depth -= 1
            if depth < 0:
                return "unbalanced parentheses"
        elif kind == "id" and text[0].islower() and text not in COUNT_METRICS:
            # Lower-case names can only be metric ids; upper-case ones are CloudWatch
            # functions (IF, FILL, MAX, ...), which CloudWatch itself validates.
            return f"unknown id {text!r}; the ids are {', '.join(COUNT_METRICS)}"
    if depth:
        return "unbalanced parentheses"
    if not any(kind == "id" and text in COUNT_METRICS for kind, text in tokens):
        return f"must use at least one of the ids {', '.join(COUNT_METRICS)}"
    return None


def _tokens(expression: str) -> list[tuple[str, str]]:
    out: list[tuple[str, str]] = []
    pos = 0
    text = expression.rstrip()
    while pos < len(text):
        m = _TOKEN_RE.match(text, pos)
        if not m or m.end() == pos:
            raise ValueError(f"unexpected character {text[pos:].lstrip()[:1]!r} at position {pos}")
        kind = m.lastgroup or ""
        out.append((kind, m.group(kind)))
        pos = m.end()
    return out


# ---------------------------------------------------------------------------------------------
# loading, with errors that name the file, the key path and (YAML) the line


def load_spec(path: str | Path) -> SpecFile:
    """Read and validate a spec file (.yaml, .yml or .toml); raises SpecError naming file, key path and line."""
    p = Path(path)
    suffix = p.suffix.lower()
    if suffix not in (".yaml", ".yml", ".toml"):
        raise SpecError([f"{p}: unsupported spec file extension {p.suffix!r}; use .yaml, .yml or .toml"])
    try:
        text = p.read_text(encoding="utf-8")
    except OSError as exc:
        raise SpecError([f"{p}: cannot read spec file: {exc.strerror or exc}"]) from exc
    except UnicodeDecodeError as exc:
        raise SpecError([f"{p}: spec file is not UTF-8: {exc.reason}"]) from exc
    return parse_spec(text, source=str(p), fmt="toml" if suffix == ".toml" else "yaml")


def parse_spec(text: str, source: str = "<spec>", fmt: Literal["yaml", "toml"] = "yaml") -> SpecFile:
    """Validate spec text; ``source`` names it in errors. Raises SpecError."""
    lines: dict[tuple[str | int, ...], int] = {}
    data: Any
    if fmt == "toml":
        try:
            data = tomllib.loads(text)
        except tomllib.TOMLDecodeError as exc:
            raise SpecError([f"{source}: invalid TOML: {exc}"]) from exc
    else:
        try:
            node = yaml.compose(text, Loader=yaml.SafeLoader)
            if node is not None:
                _yaml_lines(node, (), lines, source)
            data = yaml.safe_load(text)
        except yaml.MarkedYAMLError as exc:
            mark = exc.problem_mark or exc.context_mark
            where = f"{source}:{mark.line + 1}" if mark else source
            raise SpecError([f"{where}: invalid YAML: {exc.problem or exc.context}"]) from exc
        except yaml.YAMLError as exc:
            raise SpecError([f"{source}: invalid YAML: {exc}"]) from exc
    if not isinstance(data, Mapping):
        raise SpecError([f"{source}: the spec must be a mapping with keys name, endpoints (and optional version, defaults)"])
    try:
        spec = SpecFile.model_validate(data)
    except ValidationError as exc:
        raise SpecError([_format_error(source, lines, err) for err in exc.errors()]) from exc
    problems = _cross_checks(spec, source, lines)
    if problems:
        raise SpecError(problems)
    return spec


def _yaml_lines(
    node: yaml.Node, path: tuple[str | int, ...], out: dict[tuple[str | int, ...], int], source: str
) -> None:
    out.setdefault(path, node.start_mark.line + 1)
    if isinstance(node, yaml.MappingNode):
        seen: set[str] = set()
        for key_node, value_node in node.value:
            key = str(key_node.value)
            if key in seen:
                # PyYAML would silently keep the last one; a repeated key is nearly always a mistake
                raise SpecError([f"{source}:{key_node.start_mark.line + 1}: {_path_text(path + (key,))}: duplicate key"])
            seen.add(key)
            out[path + (key,)] = key_node.start_mark.line + 1
            _yaml_lines(value_node, path + (key,), out, source)
    elif isinstance(node, yaml.SequenceNode):
        for i, item in enumerate(node.value):
            _yaml_lines(item, path + (i,), out, source)


def _path_text(path: Sequence[str | int]) -> str:
    out = ""
    for part in path:
        out += f"[{part}]" if isinstance(part, int) else (f".{part}" if out else str(part))
    return out or "(top level)"


def _line_of(lines: Mapping[tuple[str | int, ...], int], path: tuple[str | int, ...]) -> int | None:
    for n in range(len(path), -1, -1):
        if path[:n] in lines:
            return lines[path[:n]]
    return None


def _where(source: str, lines: Mapping[tuple[str | int, ...], int], path: tuple[str | int, ...]) -> str:
    line = _line_of(lines, path) if lines else None
    return f"{source}:{line}" if line is not None else source


def _format_error(source: str, lines: Mapping[tuple[str | int, ...], int], err: Any) -> str:
    path = tuple(err["loc"])
    kind = err["type"]
    msg = str(err["msg"])
    if kind == "extra_forbidden":
        allowed = _allowed_keys(path[:-1])
        msg = f"unknown key {path[-1]!r}" + (f"; allowed: {', '.join(allowed)}" if allowed else "")
    elif kind == "missing":
        msg = "required key is missing"
    elif kind == "value_error":
        msg = msg.removeprefix("Value error, ")
    else:
        value = err.get("input")
        if isinstance(value, (str, int, float, bool)) or value is None:
            msg = f"{msg}; got {value!r}"
    return f"{_where(source, lines, path)}: {_path_text(path)}: {msg}"


def _allowed_keys(path: Sequence[str | int]) -> list[str]:
    """The keys of the model found at ``path`` in SpecFile (for 'unknown key' messages)."""
    model: Any = SpecFile
    for part in path:
        if isinstance(part, int):
            continue
        field = model.model_fields.get(part) if isinstance(model, type) and issubclass(model, BaseModel) else None
        if field is None:
            return []
        model = _model_in(field.annotation)
        if model is None:
            return []
    if isinstance(model, type) and issubclass(model, BaseModel):
        # the class's own keys first (name, metric, ...), then inherited tuning keys
        own = [k for k in model.model_fields if k in vars(model).get("__annotations__", {})]
        return own + [k for k in model.model_fields if k not in own]
    return []


def _model_in(annotation: Any) -> type[BaseModel] | None:
    if isinstance(annotation, type) and issubclass(annotation, BaseModel):
        return annotation
    origin = typing.get_origin(annotation)
    if origin in (typing.Union, types.UnionType, tuple, list):
        for arg in typing.get_args(annotation):
            found = _model_in(arg)
            if found is not None:
                return found
    return None


def _cross_checks(spec: SpecFile, source: str, lines: Mapping[tuple[str | int, ...], int]) -> list[str]:
    """Checks that need the expanded alarms: name length and uniqueness, and the final request limits."""
    problems: list[str] = []
    first_use: dict[str, tuple[str | int, ...]] = {}
    for ei, ep in enumerate(spec.endpoints):
        for ai, alarm_spec in enumerate(ep.alarms):
            path: tuple[str | int, ...] = ("endpoints", ei, "alarms", ai)
            for alarm in _expand_one(spec, ep, alarm_spec):
                if len(alarm.name) > MAX_ALARM_NAME:
                    problems.append(
                        f"{_where(source, lines, path)}: {_path_text(path + ('name',))}: alarm name "
                        f"{alarm.name[:60]}... is {len(alarm.name)} characters, over CloudWatch's "
                        f"{MAX_ALARM_NAME}; shorten the alarm, variant or model_version name"
                    )
                    continue
                if alarm.name in first_use:
                    problems.append(
                        f"{_where(source, lines, path)}: {_path_text(path + ('name',))}: alarm name "
                        f"{alarm.name} is also produced by {_path_text(first_use[alarm.name])}; rename one"
                    )
                    continue
                first_use[alarm.name] = path
                try:
                    to_put_metric_alarm(alarm, "Rollguard")
                except AlarmLimitError as exc:
                    problems += [f"{_where(source, lines, path)}: {_path_text(path)}: {p}" for p in exc.problems]
    return problems


# ---------------------------------------------------------------------------------------------
# expanded alarms and their PutMetricAlarm requests


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

    @property
    def name(self) -> str:
        """The CloudWatch alarm name (see the module docstring for the convention)."""
        return alarm_name(self.endpoint, self.variant, self.model_version, self.short_name)

    @property
    def dimensions(self) -> tuple[tuple[str, str], ...]:
        """The dimensions of every metric this alarm reads."""
        dims: list[tuple[str, str]] = [("EndpointName", self.endpoint), ("VariantName", self.variant)]
        if self.model_version is not None:
            dims.append(("ModelVersion", self.model_version))
        if self.segment is not None:
            dims.append(self.segment)
        return tuple(dims)


def alarm_name(endpoint: str, variant: str, model_version: str | None, alarm: str) -> str:
    """``rollguard-{endpoint}-{variant}-{alarm}``, or ``rollguard-{endpoint}-{variant}.{model_version}-{alarm}``."""
    fleet = variant if model_version is None else f"{variant}.{model_version}"
    return f"{NAME_PREFIX}{endpoint}-{fleet}-{alarm}"


def expand(spec: SpecFile) -> tuple[Alarm, ...]:
    """Every alarm of the spec, one per (endpoint, variant, alarm), in spec order."""
    return tuple(a for ep in spec.endpoints for s in ep.alarms for a in _expand_one(spec, ep, s))


def _expand_one(spec: SpecFile, ep: EndpointSpec, s: AlarmSpec) -> list[Alarm]:
    if s.metric is not None and s.metric in RATES:
        kind: Literal["rate", "latency", "expression", "gauge"] = "rate"
        metric = s.metric
        comparison = s.comparison or COMPARISONS[RATES[s.metric].default_comparison]
    elif s.metric is not None:
        kind, metric, comparison = "latency", s.metric, s.comparison or COMPARISONS[">"]
    elif s.expression is not None:
        kind, metric, comparison = "expression", s.expression.strip(), s.comparison or ""
    else:
        kind, metric, comparison = "gauge", s.gauge or "", s.comparison or ""
    if kind in ("rate", "latency"):
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
            treat_missing_data=s.treat_missing_data,
            segment=segment,
            sample=s.sample.strip() if s.sample else None,
            statistic=(s.statistic or "Average") if kind == "gauge" else None,
            description=s.description,
            alarm_actions=s.alarm_actions,
            ok_actions=s.ok_actions,
            guardrail=s.guardrail,
        )
        for variant in ep.variant_names()
    ]


def safe_value(comparison: str, threshold: float, bounds: tuple[float, float] | None = None) -> float:
    """A value on the non-breaching side of ``threshold`` (a bound of the metric when that one is safe)."""
    comparison = _comparison(comparison)
    strict = comparison in ("LessThanThreshold", "GreaterThanThreshold")
    alarms_low = comparison.startswith("LessThan")
    step = max(1.0, abs(threshold))
    if alarms_low:
        if bounds is not None and math.isfinite(bounds[1]) and (bounds[1] > threshold or (strict and bounds[1] == threshold)):
            return bounds[1]
        return threshold if strict else threshold + step
    if bounds is not None and math.isfinite(bounds[0]) and (bounds[0] < threshold or (strict and bounds[0] == threshold)):
        return bounds[0]
    return threshold if strict else threshold - step


def _num(x: float) -> str:
    """A number as metric math text: integers without '.0', others exact (repr)."""
    if float(x).is_integer() and abs(x) < 1e15:
        return str(int(x))
    return repr(float(x))


def _filled(template: str) -> str:
    return template.format(**{k: f"FILL({k},0)" for k in COUNT_METRICS})


def _guard(n: str, min_samples: int, value: str, safe: float) -> str:
    return f"IF({n} >= {min_samples}, {value}, {_num(safe)})"


def _metric_stat(alarm: Alarm, namespace: str, query_id: str, metric_name: str, stat: str) -> dict[str, Any]:
    return {
        "Id": query_id,
        "MetricStat": {
            "Metric": {
                "Namespace": namespace,
                "MetricName": metric_name,
                "Dimensions": [{"Name": k, "Value": v} for k, v in alarm.dimensions],
            },
            "Period": alarm.period,
            "Stat": stat,
        },
        "ReturnData": False,
    }


def _describe(alarm: Alarm) -> str:
    if alarm.description:
        return alarm.description
    what = {"rate": alarm.metric, "latency": alarm.metric, "gauge": f"gauge {alarm.metric}"}.get(
        alarm.kind, f"expression {alarm.metric}"
    )
    where = f"{alarm.endpoint}/{alarm.variant}"
    if alarm.model_version is not None:
        where += f" model {alarm.model_version}"
    if alarm.segment is not None:
        where += f" {alarm.segment[0]}={alarm.segment[1]}"
    op = {v: k for k, v in COMPARISONS.items()}.get(alarm.comparison, alarm.comparison)
    guard = f", min {alarm.min_samples} samples" if alarm.min_samples else ""
    text = (
        f"rollguard spec {alarm.spec_name}: {what} of {where} {op} {_num(alarm.threshold)} in "
        f"{alarm.datapoints_to_alarm} of {alarm.evaluation_periods} periods of {alarm.period} s{guard}. "
        "Managed by rollguard: change the spec, not this alarm."
    )
    return text[:1024]


def to_put_metric_alarm(alarm: Alarm, namespace: str) -> dict[str, Any]:
    """The exact PutMetricAlarm request for ``alarm``; raises AlarmLimitError when CloudWatch would refuse it.

    Rates, latency with a sample guard and expressions are math alarms: one MetricStat per
    id (ReturnData false) and one expression ``value`` (ReturnData true). Gauges and unguarded
    latency are single-metric alarms (Statistic / ExtendedStatistic).
    """
    request: dict[str, Any] = {
        "AlarmName": alarm.name,
        "AlarmDescription": _describe(alarm),
        "ActionsEnabled": True,
        "OKActions": list(alarm.ok_actions),
        "AlarmActions": list(alarm.alarm_actions),
        "InsufficientDataActions": [],
        "EvaluationPeriods": alarm.evaluation_periods,
        "DatapointsToAlarm": alarm.datapoints_to_alarm,
        "Threshold": float(alarm.threshold),
        "ComparisonOperator": alarm.comparison,
        "TreatMissingData": alarm.treat_missing_data,
    }
    single: dict[str, Any] | None = None
    metrics: list[dict[str, Any]] = []
    if alarm.kind == "rate":
        rate = RATES[alarm.metric]
        ids = [k for k in COUNT_METRICS if "{" + k + "}" in rate.numerator + rate.denominator + rate.sample]
        metrics = [_metric_stat(alarm, namespace, i, COUNT_METRICS[i], "Sum") for i in ids]
        den = _filled(rate.denominator)
        value = f"{_filled(rate.numerator)}/" + (f"({den})" if "+" in den else den)
        safe = safe_value(alarm.comparison, alarm.threshold, rate.bounds)
        expr = _guard(_filled(rate.sample), alarm.min_samples, value, safe)
        metrics.append({"Id": "value", "Expression": expr, "Label": rate.label, "ReturnData": True})
    elif alarm.kind == "latency":
        pct = _latency_percentile(alarm.metric)
        if pct is None:
            raise AlarmLimitError(alarm.name, [f"unknown latency metric {alarm.metric!r}"])
        if alarm.min_samples == 0:
            single = {"Namespace": namespace, "MetricName": "Latency", "ExtendedStatistic": f"p{pct}"}
        else:
            metrics = [
                _metric_stat(alarm, namespace, "latency", "Latency", f"p{pct}"),
                _metric_stat(alarm, namespace, "samples", "Latency", "SampleCount"),
            ]
            safe = safe_value(alarm.comparison, alarm.threshold, _LATENCY_BOUNDS)
            expr = _guard("samples", alarm.min_samples, "latency", safe)
            metrics.append({"Id": "value", "Expression": expr, "Label": f"p{pct} latency (ms)", "ReturnData": True})
    elif alarm.kind == "expression":
        problem = expression_problem(alarm.metric) or (expression_problem(alarm.sample) if alarm.sample else None)
        if problem:
            raise AlarmLimitError(alarm.name, [f"expression: {problem}"])
        ids = list(expression_ids(alarm.metric))
        if alarm.sample:
            ids += [i for i in expression_ids(alarm.sample) if i not in ids]
        metrics = [_metric_stat(alarm, namespace, i, COUNT_METRICS[i], "Sum") for i in ids]
        if alarm.min_samples and alarm.sample:
            safe = safe_value(alarm.comparison, alarm.threshold)
            expr = _guard(f"({alarm.sample})", alarm.min_samples, f"({alarm.metric})", safe)
        else:
            expr = alarm.metric
        metrics.append({"Id": "value", "Expression": expr, "Label": alarm.short_name, "ReturnData": True})
    else:
        single = {"Namespace": namespace, "MetricName": alarm.metric, "Statistic": alarm.statistic or "Average"}
    if single is not None:
        single["Dimensions"] = [{"Name": k, "Value": v} for k, v in alarm.dimensions]
        single["Period"] = alarm.period
        request.update(single)
    else:
        request["Metrics"] = metrics
    request["Tags"] = [
        {"Key": OWNER_TAG, "Value": OWNER_VALUE},
        {"Key": SPEC_TAG, "Value": alarm.spec_name},
    ]
    problems = check_put_metric_alarm(request)
    if problems:
        raise AlarmLimitError(alarm.name, problems)
    return request


def check_put_metric_alarm(request: Mapping[str, Any]) -> list[str]:
    """What CloudWatch would refuse in a PutMetricAlarm request, one line each (empty: fine)."""
    problems: list[str] = []
    name = str(request.get("AlarmName", ""))
    if not 1 <= len(name) <= MAX_ALARM_NAME:
        problems.append(f"AlarmName must be 1-{MAX_ALARM_NAME} characters; it is {len(name)}")
    if _CONTROL_RE.search(name):
        problems.append("AlarmName must not contain control characters")
    if len(str(request.get("AlarmDescription", ""))) > 1024:
        problems.append("AlarmDescription must be at most 1024 characters")
    for key in ("OKActions", "AlarmActions", "InsufficientDataActions"):
        if len(request.get(key, ())) > 5:
            problems.append(f"{key} may list at most 5 actions")
    if len(request.get("Tags", ())) > 50:
        problems.append("an alarm may have at most 50 tags")
    threshold = request.get("Threshold")
    if not isinstance(threshold, (int, float)) or not math.isfinite(threshold):
        problems.append(f"Threshold must be a finite number; got {threshold!r}")
    n = request.get("EvaluationPeriods")
    m = request.get("DatapointsToAlarm", n)
    if not isinstance(n, int) or n < 1:
        problems.append(f"EvaluationPeriods must be an integer >= 1; got {n!r}")
        n = None
    if not isinstance(m, int) or m < 1:
        problems.append(f"DatapointsToAlarm must be an integer >= 1; got {m!r}")
    elif n is not None and m > n:
        problems.append(f"DatapointsToAlarm ({m}) must not exceed EvaluationPeriods ({n})")
    metrics = request.get("Metrics")
    periods: list[int] = []
    if metrics:
        if any(k in request for k in ("MetricName", "Namespace", "Dimensions", "Period", "Statistic", "ExtendedStatistic", "Unit")):
            problems.append("a math alarm (Metrics) must not also set MetricName, Namespace, Dimensions, Period, Statistic, ExtendedStatistic or Unit")
        stats = [q for q in metrics if "MetricStat" in q]
        exprs = [q for q in metrics if "Expression" in q]
        if len(stats) > MAX_METRIC_STATS:
            problems.append(f"a math alarm may read at most {MAX_METRIC_STATS} metrics (MetricStat); this one reads {len(stats)}")
        if len(exprs) > MAX_EXPRESSIONS:
            problems.append(f"a math alarm may have at most {MAX_EXPRESSIONS} expressions; this one has {len(exprs)}")
        returning = [q for q in metrics if q.get("ReturnData", True)]
        if len(returning) != 1:
            problems.append(f"exactly one Metrics entry must have ReturnData true; {len(returning)} do")
        ids = [str(q.get("Id", "")) for q in metrics]
        for query_id in ids:
            if not _METRIC_ID_RE.match(query_id):
                problems.append(f"metric id {query_id!r} must start with a lower-case letter and use only letters, digits and _")
        if len(set(ids)) != len(ids):
            problems.append("metric ids must be unique")
        for q in exprs:
            if not 1 <= len(q["Expression"]) <= MAX_EXPRESSION:
                problems.append(f"expression {q['Id']} is {len(q['Expression'])} characters; CloudWatch allows 1-{MAX_EXPRESSION}")
        for q in stats:
            periods.append(int(q["MetricStat"].get("Period", 0)))
    else:
        if "MetricName" not in request or "Namespace" not in request:
            problems.append("set Metrics, or MetricName and Namespace")
        if ("Statistic" in request) == ("ExtendedStatistic" in request):
            problems.append("set exactly one of Statistic and ExtendedStatistic")
        periods.append(int(request.get("Period", 0)))
    for period in sorted(set(periods)):
        if not valid_period(period):
            problems.append(f"period must be 10, 20, 30 or a multiple of 60 seconds; got {period}")
        elif isinstance(n, int):
            problem = evaluation_window_problem(period, n)
            if problem:
                problems.append(problem)
    return problems


def guardrail_alarm_names(spec: SpecFile, endpoint: str) -> list[str]:
    """Names of the alarms of ``endpoint`` marked for the guardrail (``guardrail: true``), in spec order."""
    return [a.name for a in expand(spec) if a.endpoint == endpoint and a.guardrail]
