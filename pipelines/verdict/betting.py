"""Mixtures of constant bets: the evidence both verdict tests are built from.

A gambler testing H0: E[x] <= m with x in [lo, hi] bets a fixed fraction of her wealth on
each observation; her wealth prod_i (1 + lam (x_i - m)) is a nonnegative supermartingale
under H0 for any fixed lam in [0, 1/(m - lo)], so by Ville's inequality it exceeds 1/alpha
at any time with probability <= alpha (Waudby-Smith & Ramdas 2023). Averaging over a fixed
grid of fractions (Cover's universal portfolio, discretised) keeps this and adapts to the
effect size; with constant bets the wealth depends on the counts of each outcome only, so the
e-value is a function of sufficient statistics that add up across instances.
"""
from __future__ import annotations

import math
from collections.abc import Sequence


def check_level(name: str, value: float) -> None:
    if not (0.0 < value < 1.0):
        raise ValueError(f"{name} must be in (0, 1), got {value!r}")


def check_tolerance(tolerance: float) -> None:
    if not (0.0 <= tolerance < 1.0):
        raise ValueError(f"tolerance must be in [0, 1) (an absolute difference in a rate), got {tolerance!r}")


def geometric_grid(count: int, ratio: float, top: float = 0.99) -> tuple[float, ...]:
    """``count`` betting fractions top * ratio^(-k), k = 0..count-1."""
    return tuple(top * ratio ** (-k) for k in range(count))


def logsumexp(terms: Sequence[float]) -> float:
    top = max(terms)
    if top == -math.inf or top == math.inf:
        return top
    return top + math.log(sum(math.exp(t - top) for t in terms))
