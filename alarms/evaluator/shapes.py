"""CloudWatch's request shapes (MetricDatum, PutMetricAlarm) as strict pydantic models: the
boundary where simulated input is validated as CloudWatch would."""
from __future__ import annotations

from typing import Any, Union

from pydantic import BaseModel, ConfigDict, ValidationError


class Boundary(BaseModel):
    model_config = ConfigDict(strict=True, extra="forbid", frozen=True, allow_inf_nan=False)


class DimensionIn(Boundary):
    Name: str
    Value: str


class StatisticValuesIn(Boundary):
    SampleCount: float
    Sum: float
    Minimum: float
    Maximum: float


class DatumIn(Boundary):
    Timestamp: Union[str, float]
    MetricName: str | None = None
    Dimensions: list[DimensionIn] | None = None
    Value: float | None = None
    StatisticValues: StatisticValuesIn | None = None
    Values: list[float] | None = None
    Counts: list[float] | None = None
    Unit: str | None = None
    StorageResolution: int | None = None


class MetricIn(Boundary):
    Namespace: str | None = None
    MetricName: str | None = None
    Dimensions: list[DimensionIn] | None = None


class MetricStatIn(Boundary):
    Metric: MetricIn
    Period: int
    Stat: str
    Unit: str | None = None


class QueryIn(Boundary):
    Id: str
    MetricStat: MetricStatIn | None = None
    Expression: str | None = None
    Label: str | None = None
    ReturnData: bool | None = None
    Period: int | None = None
    AccountId: str | None = None


class TagIn(Boundary):
    Key: str
    Value: str


class PutMetricAlarmIn(Boundary):
    AlarmName: str
    AlarmDescription: str | None = None
    ActionsEnabled: bool | None = None
    OKActions: list[str] | None = None
    AlarmActions: list[str] | None = None
    InsufficientDataActions: list[str] | None = None
    MetricName: str | None = None
    Namespace: str | None = None
    Statistic: str | None = None
    ExtendedStatistic: str | None = None
    Dimensions: list[DimensionIn] | None = None
    Period: int | None = None
    Unit: str | None = None
    EvaluationPeriods: int
    DatapointsToAlarm: int | None = None
    Threshold: float | None = None
    ComparisonOperator: str
    TreatMissingData: str | None = None
    EvaluateLowSampleCountPercentile: str | None = None
    Metrics: list[QueryIn] | None = None
    Tags: list[TagIn] | None = None
    ThresholdMetricId: str | None = None
    EvaluationCriteria: dict[str, Any] | None = None  # PromQL alarms: refused as not simulated
    EvaluationInterval: int | None = None


def first_error(error: ValidationError) -> str:
    """One line from a pydantic error: where, and what was expected."""
    details = error.errors()
    first = details[0]
    where = "".join(f"[{p}]" if isinstance(p, int) else f".{p}" for p in first["loc"]).lstrip(".")
    message = "unknown parameter" if first["type"] == "extra_forbidden" else first["msg"]
    more = f" (and {len(details) - 1} more problem{'s' if len(details) > 2 else ''})" if len(details) > 1 else ""
    return f"{where}: {message}{more}" if where else f"{message}{more}"
