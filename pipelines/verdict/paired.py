"""Paired non-inferiority test (shadow traffic): a betting e-process on discordant pairs.

Each paired item gives a harm h in {+1, 0, -1}: +1 when the candidate did worse on it than
the baseline (baseline hit, candidate missed), -1 when it did better, 0 when both agree.
The mean of h is the difference in the metric, so "worse by more than delta" is "E[h] > delta".

Method (``betting.py``; Waudby-Smith & Ramdas 2023): against H0: E[h] <= m, a gambler who
bets a constant fraction u of her wealth that h exceeds m has wealth

    K_n(u, m) = prod_i (1 + u (h_i - m) / (1 + m)),      u in [0, 1),

a nonnegative supermartingale under every H0 distribution (each factor has conditional mean
<= 1 and is >= 1 - u > 0), including non-identically distributed items. The e-process is the
average of K_n over a fixed grid of fractions, ``BET_FRACTIONS``. Because every bet is a
constant, K_n depends on the counts alone,

    K_n(u, m) = (1 + u (1-m)/(1+m))^W (1 - u)^B (1 - u m/(1+m))^(n-W-B),

(W items worse, B better), never on their order: the daemon only has to add up (n, W, B)
across partitions and instances. By Ville's inequality P(sup_n E_n >= 1/alpha) <= alpha, so
p_n = min(1, 1/E_n) is an anytime-valid p-value and {m : E_n(m) < 1/alpha} a confidence
sequence; the mirror-image bet (1 + u (m - h_i)/(1 - m)) tests H0: E[h] >= m (the PASS side).

Why this and not a Gaussian or empirical-Bernstein mixture: for h in {-1, 0, 1} the betting
wealth dominates the Bernstein-type exponential (Fan et al. 2015) pointwise and grows at the
optimal rate (the KL-inf of the true distribution to the null) instead of a variance proxy,
which matters for large effects in small segments; it is exact at every n, which matters at
Holm's small per-segment levels where normal approximations are worst.

Tuning: 12 fractions 0.99 * 2^(-k/2), k = 0..11 (0.99 down to 0.022), equal weights. The grid
costs log(12) = 2.5 nats of evidence and at most ~4 % of the growth rate between points.
Simulated alternatives (K = 7, 11, 14, 20 points, ratios sqrt(2) and 2) differed by less than
Monte-Carlo noise at the targets (docs/deciding.md); the smallest fraction, 0.022, is the
Kelly bet on an edge of 0.002 at 10 % discordance.
"""
from __future__ import annotations

import math
from functools import lru_cache

from pipelines.verdict.betting import check_level, check_tolerance, geometric_grid, logsumexp
from pipelines.verdict.counts import PairedCounts
from pipelines.verdict.outcome import Outcome, State
from pipelines.verdict.search import crossing, smallest_scale

#: Betting fractions of the mixture (the method's tuning parameter; see the module docstring).
BET_FRACTIONS: tuple[float, ...] = geometric_grid(12, math.sqrt(2))
_LOG_WEIGHT = -math.log(len(BET_FRACTIONS))
_EDGE = 1e-9  # keep m inside (-1, 1), where the bets are defined


@lru_cache(maxsize=512)
def _fail_factors(m: float) -> tuple[tuple[float, float, float], ...]:
    """log of the wealth factor for h = +1, -1, 0, per fraction, betting that E[h] > m."""
    return tuple(
        (math.log1p(u * (1 - m) / (1 + m)), math.log1p(-u), math.log1p(-u * m / (1 + m)))
        for u in BET_FRACTIONS
    )


@lru_cache(maxsize=512)
def _pass_factors(m: float) -> tuple[tuple[float, float, float], ...]:
    """log of the wealth factor for h = +1, -1, 0, per fraction, betting that E[h] < m."""
    return tuple(
        (math.log1p(-u), math.log1p(u * (1 + m) / (1 - m)), math.log1p(u * m / (1 - m)))
        for u in BET_FRACTIONS
    )


def _log_e(factors: tuple[tuple[float, float, float], ...], worse: float, better: float, same: float) -> float:
    return logsumexp([_LOG_WEIGHT + worse * a + better * b + same * c for a, b, c in factors])


def log_e_fail(worse: float, better: float, n: float, m: float) -> float:
    """log E_n for H0: E[h] <= m (evidence that the candidate is worse by more than m)."""
    return _log_e(_fail_factors(min(max(m, -1 + _EDGE), 1 - _EDGE)), worse, better, n - worse - better)


def log_e_pass(worse: float, better: float, n: float, m: float) -> float:
    """log E_n for H0: E[h] >= m (evidence that the candidate is worse by less than m)."""
    return _log_e(_pass_factors(min(max(m, -1 + _EDGE), 1 - _EDGE)), worse, better, n - worse - better)


def orient(counts: PairedCounts, higher_is_better: bool) -> tuple[float, float]:
    """(items the candidate did worse on, items it did better on)."""
    if higher_is_better:
        return counts.baseline_only, counts.candidate_only
    return counts.candidate_only, counts.baseline_only


def paired_p_values(counts: PairedCounts, tolerance: float, *, higher_is_better: bool = True) -> tuple[float, float]:
    """(p_fail, p_pass): anytime-valid p-values for H0 harm <= tolerance and H0 harm >= tolerance.

    Cheap: only the side the estimate points to is computed; the other is exactly 1, since the
    wealth of a bet against the empirical mean never grows.
    """
    worse, better = orient(counts, higher_is_better)
    n = counts.n
    if n == 0:
        return 1.0, 1.0
    harm = (worse - better) / n
    if harm > tolerance:
        return min(1.0, math.exp(-log_e_fail(worse, better, n, tolerance))), 1.0
    if harm < tolerance:
        return 1.0, min(1.0, math.exp(-log_e_pass(worse, better, n, tolerance)))
    return 1.0, 1.0


def paired_test(counts: PairedCounts, tolerance: float, alpha: float, *, higher_is_better: bool = True,
                pass_alpha: float | None = None) -> Outcome:
    """Is the candidate worse than the baseline by more than ``tolerance`` on these pairs?

    FAIL when the anytime-valid p-value for "harm <= tolerance" is <= ``alpha``; PASS when the
    one for "harm >= tolerance" is <= ``pass_alpha`` (default ``alpha``); else INCONCLUSIVE.
    """
    check_tolerance(tolerance)
    check_level("alpha", alpha)
    pass_level = alpha if pass_alpha is None else pass_alpha
    check_level("pass_alpha", pass_level)
    worse, better = orient(counts, higher_is_better)
    n = counts.n
    p_fail, p_pass = paired_p_values(counts, tolerance, higher_is_better=higher_is_better)
    state = State.FAIL if p_fail <= alpha else State.PASS if p_pass <= pass_level else State.INCONCLUSIVE
    if n == 0:
        return Outcome(state, None, -1.0, 1.0, p_fail, p_pass, 0, None, tolerance, alpha, pass_level)
    harm = (worse - better) / n
    fail_target, pass_target = -math.log(alpha), -math.log(pass_level)
    lower = crossing(lambda m: log_e_fail(worse, better, n, m), fail_target, -1.0, harm, increasing=False)
    upper = crossing(lambda m: log_e_pass(worse, better, n, m), pass_target, harm, 1.0, increasing=True)
    needed: int | None = None
    if state is State.INCONCLUSIVE and harm != tolerance:
        if harm > tolerance:
            scale = smallest_scale(lambda t: log_e_fail(t * worse, t * better, t * n, tolerance), fail_target)
        else:
            scale = smallest_scale(lambda t: log_e_pass(t * worse, t * better, t * n, tolerance), pass_target)
        needed = None if scale is None else max(1, math.ceil(scale * n - n))
    return Outcome(state, harm, lower, upper, p_fail, p_pass, n, needed, tolerance, alpha, pass_level)
