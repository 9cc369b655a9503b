"""MetricDatum objects as PutMetricData accepts them, validated into :class:`Datum` values."""
from __future__ import annotations

import math
from collections.abc import Mapping
from dataclasses import dataclass
from typing import Any

from pydantic import ValidationError

from alarms.evaluator.shapes import DatumIn, first_error
from alarms.evaluator.timestamps import parse_time
from pipelines import cloudwatch_rules as rules


class DatumError(ValueError):
    """A MetricDatum CloudWatch would not accept."""


@dataclass(frozen=True, slots=True)
class StatisticSet:
    """A pre-aggregated ``StatisticValues`` entry."""

    sample_count: float
    sum: float
    minimum: float
    maximum: float


@dataclass(frozen=True, slots=True)
class Datum:
    """One MetricDatum: values with counts (``Value`` is one value, count 1) or a statistic set.

    ``timestamp`` is epoch seconds; ``storage_resolution`` is 1 (high resolution) or 60;
    ``arrival`` is when CloudWatch has it (epoch seconds): an evaluation before then does not
    see it (the publishing lag); None means it is already there.
    """

    timestamp: float
    values: tuple[float, ...] = ()
    counts: tuple[float, ...] = ()
    statistics: StatisticSet | None = None
    storage_resolution: int = 60
    arrival: float | None = None

    @property
    def stored_at(self) -> int:
        """The timestamp CloudWatch stores: truncated to the second or to the minute."""
        return int(self.timestamp // self.storage_resolution * self.storage_resolution)


def _check_value(value: float, where: str) -> float:
    if not math.isfinite(value) or abs(value) > rules.MAX_ABS_VALUE:
        raise DatumError(f"{where}: {value!r} is outside what CloudWatch accepts (finite, |v| <= 2^360)")
    return value


def datum_from_cloudwatch(raw: Mapping[str, Any], where: str = "datum") -> Datum:
    """Validate one MetricDatum-shaped mapping as PutMetricData would; DatumError if not."""
    try:
        model = DatumIn.model_validate(raw)
    except ValidationError as exc:
        raise DatumError(f"{where}: {first_error(exc)}") from None
    try:
        timestamp = parse_time(model.Timestamp)
    except ValueError as exc:
        raise DatumError(f"{where}.Timestamp: {exc}") from None
    given = [k for k in ("Value", "StatisticValues", "Values") if getattr(model, k) is not None]
    if len(given) != 1:
        raise DatumError(f"{where}: needs exactly one of Value, StatisticValues or Values, got {given or 'none'}")
    resolution = 60 if model.StorageResolution is None else model.StorageResolution
    if resolution not in rules.STORAGE_RESOLUTIONS:
        raise DatumError(f"{where}.StorageResolution: must be 1 or 60, got {resolution}")
    if model.Counts is not None and model.Values is None:
        raise DatumError(f"{where}: Counts given without Values")
    if model.Value is not None:
        return Datum(timestamp, (_check_value(model.Value, f"{where}.Value"),), (1.0,), storage_resolution=resolution)
    if model.Values is not None:
        values = tuple(_check_value(v, f"{where}.Values[{i}]") for i, v in enumerate(model.Values))
        if not values or len(values) > rules.MAX_DATUM_VALUES:
            raise DatumError(f"{where}.Values: must hold 1 to {rules.MAX_DATUM_VALUES} values, got {len(values)}")
        counts = tuple(model.Counts) if model.Counts is not None else (1.0,) * len(values)
        if len(counts) != len(values):
            raise DatumError(f"{where}: Counts has {len(counts)} entries but Values has {len(values)}")
        if any(c < 0 for c in counts):
            raise DatumError(f"{where}.Counts: counts can't be negative")
        return Datum(timestamp, values, counts, storage_resolution=resolution)
    s = model.StatisticValues
    assert s is not None
    for name in ("SampleCount", "Sum", "Minimum", "Maximum"):
        _check_value(getattr(s, name), f"{where}.StatisticValues.{name}")
    if s.SampleCount <= 0:
        raise DatumError(f"{where}.StatisticValues.SampleCount: must be > 0, got {s.SampleCount:g}")
    if s.Minimum > s.Maximum:
        raise DatumError(f"{where}.StatisticValues: Minimum {s.Minimum:g} is above Maximum {s.Maximum:g}")
    return Datum(
        timestamp,
        statistics=StatisticSet(s.SampleCount, s.Sum, s.Minimum, s.Maximum),
        storage_resolution=resolution,
    )


def parse_datapoints(raw: Mapping[str, Any]) -> dict[str, tuple[Datum, ...]]:
    """``{key: [MetricDatum, ...]}`` to Datum tuples; DatumError names the key and index."""
    out: dict[str, tuple[Datum, ...]] = {}
    for key, items in raw.items():
        if not isinstance(items, list):
            raise DatumError(f"{key}: expected a list of MetricDatum objects, got {type(items).__name__}")
        data: list[Datum] = []
        for i, item in enumerate(items):
            if not isinstance(item, Mapping):
                raise DatumError(f"{key}[{i}]: expected a MetricDatum object, got {type(item).__name__}")
            data.append(datum_from_cloudwatch(item, f"{key}[{i}]"))
        out[key] = tuple(data)
    return out
