"""The verdict engine: is the candidate model worse than the baseline by more than a tolerance?

Pure statistics over plain counts (no I/O, no clock): anytime-valid non-inferiority tests,
paired for shadow traffic (``paired.py``) and unpaired for concurrent arms (``unpaired.py``),
combined across metrics and segments with Holm's step-down (``family.py``). docs/deciding.md
explains the methods, their assumptions and the labels they need.

    config = ComparisonConfig((MetricRule.named("recall", 0.02),), segments=("merchant_category",))
    verdict = judge(config, {("recall", None): PairedCounts(n=5000, baseline_only=400, candidate_only=150)})
"""
from pipelines.verdict.counts import Counts, PairedCounts, Segment, UnpairedCounts
from pipelines.verdict.family import (
    HIGHER_IS_BETTER,
    ComparisonConfig,
    Decision,
    Judgement,
    Key,
    MetricRule,
    Verdict,
    decide,
    judge,
)
from pipelines.verdict.holm import HolmResult, holm
from pipelines.verdict.outcome import Outcome, State
from pipelines.verdict.paired import BET_FRACTIONS, paired_p_values, paired_test
from pipelines.verdict.unpaired import ARM_BET_FRACTIONS, unpaired_p_values, unpaired_test

__all__ = [
    "ARM_BET_FRACTIONS",
    "BET_FRACTIONS",
    "HIGHER_IS_BETTER",
    "ComparisonConfig",
    "Counts",
    "Decision",
    "HolmResult",
    "Judgement",
    "Key",
    "MetricRule",
    "Outcome",
    "PairedCounts",
    "Segment",
    "State",
    "UnpairedCounts",
    "Verdict",
    "decide",
    "holm",
    "judge",
    "paired_p_values",
    "paired_test",
    "unpaired_p_values",
    "unpaired_test",
]
