"""What a test says: the three states and the small record every test returns."""
from __future__ import annotations

import enum
from dataclasses import dataclass


class State(enum.Enum):
    """FAIL: worse than the baseline by more than the tolerance, at confidence 1 - alpha.
    PASS: shown not worse by more than the tolerance. INCONCLUSIVE: neither, yet."""

    PASS = "PASS"
    INCONCLUSIVE = "INCONCLUSIVE"
    FAIL = "FAIL"


@dataclass(frozen=True)
class Outcome:
    """One non-inferiority test on one metric (pooled or one segment), at given levels.

    ``harm`` is the difference on the metric's own scale, signed so that positive means the
    candidate is worse: baseline - candidate for recall, candidate - baseline for error rate.
    ``lower`` is the anytime-valid lower bound of the harm at ``fail_level`` and ``upper`` the
    upper bound at ``pass_level``, so FAIL <=> lower > tolerance and PASS <=> upper < tolerance;
    ``[lower, upper]`` covers the harm at every look with probability >= 1 - fail_level - pass_level.
    ``p_fail`` is an anytime-valid p-value for "worse by more than the tolerance" (H0: harm <=
    tolerance; the Holm input), ``p_pass`` one for H0: harm >= tolerance.
    ``labels_needed`` approximates how many more labelled samples (in total, at the current
    rates and allocation) until the interval excludes the tolerance on the side the estimate
    lies; ``None`` without data, once decided, or when the estimate sits on the tolerance.
    """

    state: State
    harm: float | None
    lower: float
    upper: float
    p_fail: float
    p_pass: float
    sample: float
    labels_needed: int | None
    tolerance: float
    fail_level: float
    pass_level: float
