"""The metric model: what the core hands to the CloudWatch publisher."""
from __future__ import annotations

from dataclasses import dataclass

Dimensions = tuple[tuple[str, str], ...]


@dataclass(frozen=True, slots=True)
class Datum:
    """One CloudWatch MetricDatum: a plain value, or a distribution as values/counts."""

    name: str
    dimensions: Dimensions
    timestamp_ms: int
    unit: str = "Count"
    value: float | None = None
    values: tuple[float, ...] = ()
    counts: tuple[float, ...] = ()

    def to_cloudwatch(self) -> dict[str, object]:
        """The PutMetricData `MetricData` entry (Timestamp as epoch seconds)."""
        out: dict[str, object] = {
            "MetricName": self.name,
            "Dimensions": [{"Name": k, "Value": v} for k, v in self.dimensions],
            "Timestamp": self.timestamp_ms / 1000.0,
            "Unit": self.unit,
        }
        if self.values:
            out["Values"] = list(self.values)
            out["Counts"] = list(self.counts)
        else:
            out["Value"] = float(self.value if self.value is not None else 0.0)
        return out
