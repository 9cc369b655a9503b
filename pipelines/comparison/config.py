"""A comparison as the pipeline counts it and the verdict engine judges it (SPEC.md
"Comparisons and verdicts"): plain frozen data, built by `alarms.spec` from the spec file.

Which captures belong to an arm (`Arm.matches`): the variant and model version it names.
An arm without a variant matches served (non-shadow) traffic only, so
``{model_version: fraud-v6}`` is the new fleet of a traffic shift and never the
``v6-shadow`` variant that carries the same model during the shadow phase; name a shadow
variant to judge it.

Design (`Comparison.paired`): when the candidate's captures are shadow captures, both models
scored the same requests and recall is judged paired (McNemar-type, on the same labels);
otherwise every metric compares the two arms over the same span (concurrent, unpaired). The
choice follows how the model is deployed, never the outcomes.
"""
from __future__ import annotations

import hashlib
import json
from dataclasses import dataclass

from pipelines.verdict import ComparisonConfig, MetricRule

#: the metrics a comparison can judge, in the order tables list them
METRICS = ("recall", "precision", "error_rate", "latency_over")
#: metrics judged from labels (the others from captures alone, as soon as they are served)
LABEL_METRICS = frozenset({"recall", "precision"})
#: the only metric judged paired on shadow traffic (precision's denominator is each model's own
#: flags, error rate and latency are measured on each model's own fleet)
PAIRED_METRICS = frozenset({"recall"})
#: an arm's capture is concurrent when the other arm was served within this many seconds before
DEFAULT_CONCURRENT_WITHIN_S = 600
#: comparisons one endpoint may carry (each takes two bits of a pending capture)
MAX_PER_ENDPOINT = 4


@dataclass(frozen=True)
class Arm:
    """The captures of one side: a variant, a model version, or both."""

    variant: str | None = None
    model_version: str | None = None

    def __post_init__(self) -> None:
        if self.variant is None and self.model_version is None:
            raise ValueError("an arm needs a variant, a model_version or both")

    def matches(self, variant: str | None, model_version: str | None, shadow: bool) -> bool:
        if self.variant is None:
            if shadow:
                return False
        elif variant != self.variant:
            return False
        return self.model_version is None or model_version == self.model_version

    def __str__(self) -> str:
        parts = [f"variant {self.variant}"] if self.variant else []
        if self.model_version:
            parts.append(f"model version {self.model_version}")
        return " and ".join(parts)


@dataclass(frozen=True)
class MetricSpec:
    """One judged metric: its name (`METRICS`), the tolerance (how much worse, as an absolute
    difference in the rate, is still acceptable) and, for latency_over, the threshold in ms."""

    name: str
    tolerance: float
    threshold_ms: float | None = None

    def __post_init__(self) -> None:
        if self.name not in METRICS:
            raise ValueError(f"unknown comparison metric {self.name!r}; expected one of {', '.join(METRICS)}")
        if (self.name == "latency_over") != (self.threshold_ms is not None):
            raise ValueError("latency_over needs threshold_ms, and only latency_over takes it")
        if self.threshold_ms is not None and not self.threshold_ms > 0:
            raise ValueError(f"latency_over threshold_ms must be > 0, got {self.threshold_ms!r}")

    def rule(self) -> MetricRule:
        return MetricRule.named(self.name, self.tolerance)


@dataclass(frozen=True)
class Comparison:
    name: str
    endpoint: str
    baseline: Arm
    candidate: Arm
    metrics: tuple[MetricSpec, ...]
    segments: tuple[str, ...] = ()
    min_samples: int = 30
    alpha: float = 0.01
    concurrent_within_s: int = DEFAULT_CONCURRENT_WITHIN_S

    def __post_init__(self) -> None:
        if self.baseline == self.candidate:
            raise ValueError(f"comparison {self.name!r}: baseline and candidate are the same captures")
        if self.concurrent_within_s < 1:
            raise ValueError(f"comparison {self.name!r}: concurrent_within_s must be >= 1")
        self.config()  # the verdict engine's own checks (metrics, alpha, min_samples)

    def config(self) -> ComparisonConfig:
        return ComparisonConfig(
            tuple(m.rule() for m in self.metrics), segments=self.segments,
            min_samples=self.min_samples, alpha=self.alpha,
        )

    def metric(self, name: str) -> MetricSpec | None:
        return next((m for m in self.metrics if m.name == name), None)

    def fingerprint(self) -> str:
        """What the counts depend on (not tolerances, alpha or min_samples, which only the
        judgement reads): counts gathered under another fingerprint are not this comparison's."""
        counted = {
            "endpoint": self.endpoint,
            "baseline": [self.baseline.variant, self.baseline.model_version],
            "candidate": [self.candidate.variant, self.candidate.model_version],
            "metrics": sorted([m.name, m.threshold_ms] for m in self.metrics),
            "segments": sorted(self.segments),
            "concurrent_within_s": self.concurrent_within_s,
        }
        return hashlib.sha256(json.dumps(counted, sort_keys=True).encode()).hexdigest()[:16]
