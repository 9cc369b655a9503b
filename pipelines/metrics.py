"""The metric vocabulary, defined once: every metric rollguard publishes (name, unit), the
dimension names, and every rate (numerator, denominator, sample, lower bound, gauge name).

The sliding window, the alarm spec, `query`, `status`, the dashboard and the backtest all read
these definitions, so a rate means the same thing wherever it appears. Pure data.
"""
from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass, field

# -- dimensions ---------------------------------------------------------------------------
ENDPOINT_NAME = "EndpointName"
VARIANT_NAME = "VariantName"
MODEL_VERSION = "ModelVersion"

# -- additive counts (Unit Count, read with Stat Sum) --------------------------------------
INVOCATIONS = "Invocations"
ERRORS = "Errors"
TRUE_POSITIVES = "TruePositives"
FALSE_POSITIVES = "FalsePositives"
FALSE_NEGATIVES = "FalseNegatives"
TRUE_NEGATIVES = "TrueNegatives"
LABELED = "Labeled"
EXPIRED = "Expired"
ORPHAN_LABELS = "OrphanLabels"
EVICTED = "Evicted"  # captures the memory cap removed before label_ttl (added to SPEC's list)
SHADOW_AGREEMENTS = "ShadowAgreements"
SHADOW_COMPARISONS = "ShadowComparisons"

#: count id in metric math (and in `query`) -> published count metric
COUNT_IDS: dict[str, str] = {
    "tp": TRUE_POSITIVES,
    "fp": FALSE_POSITIVES,
    "fn": FALSE_NEGATIVES,
    "tn": TRUE_NEGATIVES,
    "labeled": LABELED,
    "invocations": INVOCATIONS,
    "errors": ERRORS,
    "agreements": SHADOW_AGREEMENTS,
    "comparisons": SHADOW_COMPARISONS,
    "expired": EXPIRED,
    "orphan_labels": ORPHAN_LABELS,
    "evicted": EVICTED,
}
COUNTS: tuple[str, ...] = tuple(COUNT_IDS.values())
#: counts of the join's health, published per variant (and model version) but not per segment:
#: why captures went unlabelled is no property of a merchant category, and segment copies are
#: most of the metric bill (label coverage per segment is labeled/invocations, both per segment)
NOT_PER_SEGMENT: frozenset[str] = frozenset({EXPIRED, EVICTED})

#: (joined prediction, label) -> the outcome count it feeds
OUTCOMES: dict[tuple[int, int], str] = {
    (1, 1): TRUE_POSITIVES, (1, 0): FALSE_POSITIVES, (0, 1): FALSE_NEGATIVES, (0, 0): TRUE_NEGATIVES,
}

# -- liveness -------------------------------------------------------------------------------
#: 1 from every instance every tick while it is ready (consuming, checkpointing, publishing),
#: whatever the traffic; no dimensions, so its Sum is the number of live instances. A fail-safe
#: alarm goes to ALARM when it stops arriving. Stamped per completed tick bucket, not with the
#: tick's own time: see `pipelines.heartbeat`.
HEARTBEAT = "Heartbeat"

# -- comparisons (SPEC.md "Comparisons and verdicts") ---------------------------------------
COMPARISON = "Comparison"  # dimension: the comparison's name in the spec
#: per comparison every tick, from the counts of every instance: 0 pass or no evidence of harm,
#: 1 inconclusive, 2 fail; dimensions (EndpointName, Comparison), read with Stat Maximum
VERDICT = "Verdict"
VERDICT_VALUES: dict[str, float] = {"PASS": 0.0, "INCONCLUSIVE": 1.0, "FAIL": 2.0}

# -- counters the sliding window keeps but rollguard never publishes -----------------------
PREDICTIONS = "Predictions"
POSITIVE_PREDICTIONS = "PositivePredictions"
WINDOW_ONLY_IDS: dict[str, str] = {"predictions": PREDICTIONS, "positive_predictions": POSITIVE_PREDICTIONS}
WINDOW_ONLY: frozenset[str] = frozenset(WINDOW_ONLY_IDS.values())

# -- the latency distribution ---------------------------------------------------------------
LATENCY = "Latency"  # Values/Counts, so CloudWatch percentiles work
LATENCY_UNIT = "Milliseconds"
COUNT_UNIT = "Count"
GAUGE_UNIT = "None"
#: gauge name -> percentile, over the window's merged latency histogram
LATENCY_GAUGES: dict[str, float] = {"LatencyP50": 50.0, "LatencyP90": 90.0, "LatencyP99": 99.0}


@dataclass(frozen=True)
class Rate:
    """``sum(numerator) / sum(denominator)`` over count ids, judged on ``sum(sample)`` events.

    Each part maps a count id to its coefficient. `lower_bound` names the gauge of the Wilson
    95 % lower bound (numerator successes out of the sample), where that is meaningful.
    `cap` caps the gauge (label coverage: labels and captures are bucketed by different times).
    """

    name: str  # as the spec and `query` spell it
    gauge: str  # the sliding-window gauge CloudWatch receives
    numerator: Mapping[str, float]
    denominator: Mapping[str, float]
    sample: Mapping[str, float]
    label: str  # for people
    sample_noun: str
    bad_when: str = "<"  # the direction of a regression: an alarm's default comparison
    lower_bound: str | None = None
    cap: float | None = None
    bounds: tuple[float, float] = field(default=(0.0, 1.0))

    def ids(self) -> frozenset[str]:
        return frozenset(self.numerator) | frozenset(self.denominator) | frozenset(self.sample)

    @property
    def published(self) -> bool:
        """Computable by CloudWatch metric math from published counts."""
        return self.ids() <= frozenset(COUNT_IDS)


def _sum(part: Mapping[str, float], sums: Mapping[str, float]) -> float:
    return sum(coef * sums.get(cid, 0.0) for cid, coef in part.items())


def numerator(rate: Rate, sums: Mapping[str, float]) -> float:
    return _sum(rate.numerator, sums)


def denominator(rate: Rate, sums: Mapping[str, float]) -> float:
    return _sum(rate.denominator, sums)


def sample(rate: Rate, sums: Mapping[str, float]) -> float:
    return _sum(rate.sample, sums)


RATES: dict[str, Rate] = {r.name: r for r in (
    Rate("precision", "Precision", {"tp": 1}, {"tp": 1, "fp": 1}, {"tp": 1, "fp": 1},
         "precision", "predicted positive", lower_bound="PrecisionLowerBound"),
    Rate("recall", "Recall", {"tp": 1}, {"tp": 1, "fn": 1}, {"tp": 1, "fn": 1},
         "recall", "actual positive", lower_bound="RecallLowerBound"),
    # F1's sample is the outcomes it depends on, not its denominator (which counts tp twice)
    Rate("f1", "F1", {"tp": 2}, {"tp": 2, "fp": 1, "fn": 1}, {"tp": 1, "fp": 1, "fn": 1}, "F1", "outcomes"),
    Rate("error_rate", "ErrorRate", {"errors": 1}, {"invocations": 1}, {"invocations": 1},
         "error rate", "invocations", bad_when=">"),
    Rate("positive_rate", "PositiveRate", {"positive_predictions": 1}, {"predictions": 1}, {"predictions": 1},
         "positive rate", "predictions", bad_when=">"),
    # one definition everywhere: labelled outcomes per capture (an error capture has no outcome)
    Rate("label_coverage", "LabelCoverage", {"labeled": 1}, {"invocations": 1}, {"invocations": 1},
         "label coverage", "invocations", cap=1.0),
    Rate("shadow_agreement", "ShadowAgreement", {"agreements": 1}, {"comparisons": 1}, {"comparisons": 1},
         "shadow agreement", "comparisons"),
)}
#: the rates an alarm or `query` can compute from published counts
PUBLISHED_RATES: dict[str, Rate] = {name: r for name, r in RATES.items() if r.published}

#: every gauge the sliding window publishes (SPEC.md's list plus ShadowAgreement)
GAUGES: tuple[str, ...] = (
    *(r.gauge for r in RATES.values()),
    *(r.lower_bound for r in RATES.values() if r.lower_bound),
    *LATENCY_GAUGES,
)

#: count id -> counter name, for everything the window counts (published or not)
WINDOW_COUNTER_IDS: dict[str, str] = {**COUNT_IDS, **WINDOW_ONLY_IDS}
