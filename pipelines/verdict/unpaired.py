"""Unpaired non-inferiority test (two arms over the same span): a product of betting e-processes,
minimised over the nuisance rate.

Each arm is Bernoulli: q_b, q_c are the rates of the metric's *good* outcome (a hit, an
error-free response), harm = q_b - q_c (positive: the candidate is worse).

Method (``betting.py``). For H0: harm <= m, take any rate p and two one-sample gamblers:
one bets that the baseline's rate is above p, wealth prod (1 + lam_b (y - p)) over baseline
items, the other that the candidate's rate is below p - m, wealth prod (1 + lam_c ((p - m) - y))
over candidate items, each mixed over a fixed grid of constant fractions (``ARM_BET_FRACTIONS``):

    B(p)   = mean_k (1 + u_k (1-p)/p)^good_b (1 - u_k)^bad_b
    C(p-m) = mean_k (1 - u_k)^good_c (1 + u_k (p-m)/(1-p+m))^bad_c
    E(m)   = inf_p B(p) C(p - m).

If H0 holds with the baseline at rate q_b, then at p = q_b the first wealth is a martingale
and the second a supermartingale (q_c >= q_b - m), in any interleaving of the arms; so is their
product, hence every B C and the infimum below it: E is an e-process and min(1, 1/E) an
anytime-valid p-value. The product stays a supermartingale when one item counts in both arms
(precision in a shadow comparison, where both models flag the same transaction): on a shared
label y the two bets point opposite ways, (y - p)(r - y) <= 0 for y in {0, 1}, so the cross term
only lowers the expectation. log B is convex in p and log C in p - m, so the infimum is a
one-dimensional convex minimisation (solved on its derivative). The PASS side mirrors the bets.
Like the paired test it depends on counts only, is exact at every n and needs no variance
estimate (0 errors out of 20,000 is fine).

Tuning: 16 fractions 0.99 * 2^(-k) per arm, k = 0..15 (down to 3e-5). The range is wide
because the Kelly fraction of a bet that a rate near 1 is lower still (an error-free rate of
99.5 %, the PASS side of error rate, the well-measured arm of a 9:1 split) is of the order of
the edge itself, 1e-4..1e-3; a grid stopping at 0.0055 (16 points, ratio sqrt 2) never passed
0.5 % vs 0.5 % errors at a 9:1 split, while costing 8 % fewer labels on recall-like rates.
Measured against the alternative first tried here (a Jeffreys-prior mixture likelihood ratio
over both rates, "universal inference", Wasserman et al. 2020), which pays about (1/2) log n
per arm for the nuisance: 2.1-2.4x a fixed-sample z-test's labels at the 95th percentile
(1:1 arms, alpha 0.01) instead of 2.5-3.5x (docs/deciding.md has the table). The paired test,
where it applies, needs 4-10x fewer labels than either.
"""
from __future__ import annotations

import math

from pipelines.verdict.betting import check_level, check_tolerance, geometric_grid, logsumexp
from pipelines.verdict.counts import UnpairedCounts
from pipelines.verdict.outcome import Outcome, State
from pipelines.verdict.search import crossing, smallest_scale

#: Betting fractions of each arm's mixture (the method's tuning parameter).
ARM_BET_FRACTIONS: tuple[float, ...] = geometric_grid(16, 2.0)
_LOG_WEIGHT = -math.log(len(ARM_BET_FRACTIONS))
_LOG_KEEP = tuple(math.log1p(-u) for u in ARM_BET_FRACTIONS)  # wealth factor on a losing item
_EDGE = 1e-12  # rates stay inside (0, 1), where the bets are defined


def _arm(wins: float, losses: float, odds: float, slope: float) -> tuple[float, float]:
    """(log wealth, its derivative) of one arm's mixture whose winning factor is 1 + u * odds.

    ``wins`` items pay 1 + u * odds, ``losses`` pay 1 - u; ``slope`` is d(odds)/dp.
    """
    terms: list[float] = []
    parts: list[float] = []
    for u, keep in zip(ARM_BET_FRACTIONS, _LOG_KEEP):
        win = 1.0 + u * odds
        terms.append(_LOG_WEIGHT + (wins * math.log(win) if wins else 0.0) + losses * keep)
        parts.append(wins * u * slope / win if wins else 0.0)
    value = logsumexp(terms)
    if value == -math.inf:
        return value, 0.0
    return value, sum(math.exp(t - value) * d for t, d in zip(terms, parts))


def _fail_side(gb: float, fb: float, gc: float, fc: float, m: float, p: float) -> tuple[float, float]:
    """log B(p) + log C(p - m) and its derivative: bets that q_b > p and q_c < p - m."""
    r = p - m
    b, db = _arm(gb, fb, (1 - p) / p, -1 / (p * p))
    c, dc = _arm(fc, gc, r / (1 - r), 1 / ((1 - r) * (1 - r)))
    return b + c, db + dc


def _pass_side(gb: float, fb: float, gc: float, fc: float, m: float, p: float) -> tuple[float, float]:
    """The mirror image: bets that q_b < p and q_c > p - m."""
    r = p - m
    b, db = _arm(fb, gb, p / (1 - p), 1 / ((1 - p) * (1 - p)))
    c, dc = _arm(gc, fc, (1 - r) / r, -1 / (r * r))
    return b + c, db + dc


def _log_e(gb: float, fb: float, gc: float, fc: float, m: float, *, fail_side: bool,
           cutoff: float = -math.inf) -> float:
    """log E(m) = inf over p of the two arms' log wealth; with a ``cutoff``, stops early once a
    point below it is seen (the infimum is then known to be below it, and that is all asked)."""
    side = _fail_side if fail_side else _pass_side
    lo = max(0.0, m) + _EDGE
    hi = min(1.0, 1.0 + m) - _EDGE
    if lo >= hi:
        return math.inf
    # start near the restricted maximum-likelihood point: the baseline and shifted candidate pooled
    qb, qc = gb / (gb + fb), gc / (gc + fc)
    nb, nc = gb + fb, gc + fc
    guess = min(hi, max(lo, (nb * qb + nc * (qc + m)) / (nb + nc)))
    best, slope = side(gb, fb, gc, fc, m, guess)
    if best < cutoff or slope == 0.0:
        return best
    # Convex in p. Bracket the derivative's root by steps growing 4x from the guess (it is
    # usually within a few standard errors), then safeguarded regula falsi (Illinois). For a
    # convex F with its minimiser in [a, b], F(x) - |F'(x)| (b - a) <= inf F: the bound returned
    # is never above the infimum (conservative) and within 1e-9 of it.
    direction = 1.0 if slope < 0 else -1.0
    step = 0.25 * math.sqrt(guess * (1 - guess) / (nb + nc)) + 1e-12
    inner, inner_slope = guess, slope
    while True:
        outer = min(hi, max(lo, inner + direction * step))
        value, d = side(gb, fb, gc, fc, m, outer)
        best = min(best, value)
        if best < cutoff:
            return best
        if d * direction >= 0 or d == 0:
            break
        if outer in (lo, hi):
            return best  # monotone all the way to the edge: the edge is the infimum
        inner, inner_slope, step = outer, d, step * 4
    if d == 0:
        return value
    a, da, b, db = (inner, inner_slope, outer, d) if direction > 0 else (outer, d, inner, inner_slope)
    bound, last = -math.inf, 0
    for _ in range(200):
        x = (a * db - b * da) / (db - da)
        if not (a < x < b):
            x = (a + b) / 2  # rounding at a tiny bracket
        value, d = side(gb, fb, gc, fc, m, x)
        best = min(best, value)
        if best < cutoff:
            return best
        if d < 0:
            a, da = x, d
            if last < 0:
                db /= 2
            last = -1
        elif d > 0:
            b, db = x, d
            if last > 0:
                da /= 2
            last = 1
        else:
            return value
        bound = max(bound, value - abs(d) * (b - a))
        if best - bound < 1e-9 or b - a < 1e-15:
            break
    return bound


def orient(counts: UnpairedCounts, higher_is_better: bool) -> tuple[float, float, float, float]:
    """(good_b, bad_b, good_c, bad_c): the counts of the good outcome and the rest, per arm."""
    eb, nb, ec, nc = counts.baseline_events, counts.baseline_trials, counts.candidate_events, counts.candidate_trials
    if higher_is_better:
        return eb, nb - eb, ec, nc - ec
    return nb - eb, eb, nc - ec, ec


def unpaired_p_values(counts: UnpairedCounts, tolerance: float, *, higher_is_better: bool = True,
                      cutoff: float | None = None) -> tuple[float, float]:
    """(p_fail, p_pass): anytime-valid p-values for H0 harm <= tolerance and H0 harm >= tolerance.

    Only the side the estimate points to is computed; the other is 1 (the product of two bets
    against the observed rates never grows at p = the observed baseline rate). With ``cutoff``,
    a p-value shown to exceed it is returned as 1: still a valid p-value (larger), and
    decisions at levels <= cutoff are unchanged; it saves the minimisation.
    """
    gb, fb, gc, fc = orient(counts, higher_is_better)
    if gb + fb == 0 or gc + fc == 0:
        return 1.0, 1.0
    harm = gb / (gb + fb) - gc / (gc + fc)
    if harm == tolerance:
        return 1.0, 1.0
    if cutoff is None:
        log_e = _log_e(gb, fb, gc, fc, tolerance, fail_side=harm > tolerance)
        p = min(1.0, math.exp(-log_e))
    else:
        stop = -math.log(cutoff)
        log_e = _log_e(gb, fb, gc, fc, tolerance, fail_side=harm > tolerance, cutoff=stop)
        p = 1.0 if log_e < stop else min(1.0, math.exp(-log_e))
    return (p, 1.0) if harm > tolerance else (1.0, p)


def unpaired_test(counts: UnpairedCounts, tolerance: float, alpha: float, *, higher_is_better: bool = True,
                  pass_alpha: float | None = None) -> Outcome:
    """Is the candidate arm worse than the baseline arm by more than ``tolerance``?

    Same contract as ``paired_test``; ``sample`` and ``labels_needed`` count both arms
    (``labels_needed`` keeps the current split between them).
    """
    check_tolerance(tolerance)
    check_level("alpha", alpha)
    pass_level = alpha if pass_alpha is None else pass_alpha
    check_level("pass_alpha", pass_level)
    gb, fb, gc, fc = orient(counts, higher_is_better)
    p_fail, p_pass = unpaired_p_values(counts, tolerance, higher_is_better=higher_is_better)
    state = State.FAIL if p_fail <= alpha else State.PASS if p_pass <= pass_level else State.INCONCLUSIVE
    if gb + fb == 0 or gc + fc == 0:
        return Outcome(state, None, -1.0, 1.0, p_fail, p_pass, counts.sample, None, tolerance, alpha, pass_level)
    harm = gb / (gb + fb) - gc / (gc + fc)
    fail_target, pass_target = -math.log(alpha), -math.log(pass_level)
    # each bound only asks whether E(m) reaches the target: the early stop is exact for it
    lower = crossing(lambda m: _log_e(gb, fb, gc, fc, m, fail_side=True, cutoff=fail_target),
                     fail_target, -1.0, harm, increasing=False)
    upper = crossing(lambda m: _log_e(gb, fb, gc, fc, m, fail_side=False, cutoff=pass_target),
                     pass_target, harm, 1.0, increasing=True)
    needed: int | None = None
    if state is State.INCONCLUSIVE and harm != tolerance:
        fail_side = harm > tolerance
        target = fail_target if fail_side else pass_target
        scale = smallest_scale(
            lambda t: _log_e(t * gb, t * fb, t * gc, t * fc, tolerance, fail_side=fail_side, cutoff=target), target)
        total = counts.sample
        needed = None if scale is None else max(1, math.ceil(scale * total - total))
    return Outcome(state, harm, lower, upper, p_fail, p_pass, counts.sample, needed, tolerance, alpha, pass_level)
