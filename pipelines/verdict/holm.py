"""Weighted Holm step-down (Holm 1979): family-wise error control with any valid p-values.

Hypotheses are taken in increasing order of p_i / w_i; the next one is rejected while
p_i <= alpha * w_i / (total weight not yet rejected), and the procedure stops at the first
that is not. With anytime-valid p-values it controls the family-wise error *uniformly over
time* for a fixed family: a false rejection at any look needs some true null i with
p_i <= alpha * w_i / W0 (W0 the true nulls' weight, never more than the weight left), and
the union of those events over all looks has probability <= sum_i alpha * w_i / W0 = alpha.
"""
from __future__ import annotations

import math
from collections.abc import Sequence
from dataclasses import dataclass


@dataclass(frozen=True)
class HolmResult:
    rejected: tuple[bool, ...]
    #: the critical value each hypothesis is compared with: for a rejected one, at its step;
    #: for the rest, at the step where the procedure stopped (what it would need now)
    levels: tuple[float, ...]


def holm(p_values: Sequence[float], weights: Sequence[float], alpha: float) -> HolmResult:
    """Weighted Holm at level ``alpha``; equal weights give the textbook procedure."""
    if len(p_values) != len(weights):
        raise ValueError(f"holm needs one weight per p-value, got {len(p_values)} p-values and {len(weights)} weights")
    if not (0.0 < alpha < 1.0):
        raise ValueError(f"holm needs alpha in (0, 1), got {alpha!r}")
    for w in weights:
        if not w > 0:
            raise ValueError(f"holm weights must be > 0, got {w!r}")
    for p in p_values:
        if not (0.0 <= p <= 1.0):
            raise ValueError(f"holm p-values must be in [0, 1], got {p!r}")
    order = sorted(range(len(p_values)), key=lambda i: (p_values[i] / weights[i], i))
    remaining = math.fsum(weights)
    rejected = [False] * len(p_values)
    levels = [0.0] * len(p_values)
    stopped = False
    for i in order:
        level = alpha * weights[i] / remaining
        levels[i] = level
        if not stopped and p_values[i] <= level:
            rejected[i] = True
            # re-summed, not subtracted: no rounding drift in the weight left
            remaining = math.fsum(w for j, w in enumerate(weights) if not rejected[j])
        else:
            stopped = True
    if stopped:
        # after the stop the weight left is fixed: every unrejected hypothesis faces alpha * w / remaining
        for i in order:
            if not rejected[i]:
                levels[i] = alpha * weights[i] / remaining
    return HolmResult(tuple(rejected), tuple(levels))
