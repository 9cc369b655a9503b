"""pipelines.verdict against independent computations, hand-worked examples and simulation.

The Monte-Carlo checks use fixed seeds and a few hundred paths with repeated looks; they
check validity at the boundary of the null (the hardest case), where a fixed-sample test
looked at repeatedly is shown to fail the same check.
"""
from __future__ import annotations

import math

import numpy as np
import pytest

from pipelines.verdict import (
    BET_FRACTIONS,
    ComparisonConfig,
    Counts,
    Key,
    MetricRule,
    PairedCounts,
    Segment,
    State,
    UnpairedCounts,
    decide,
    holm,
    judge,
    paired_p_values,
    paired_test,
    unpaired_p_values,
    unpaired_test,
)
from pipelines.verdict.search import crossing, smallest_scale
from pipelines.verdict.unpaired import ARM_BET_FRACTIONS

Z_95_ONE_SIDED = 1.6448536269514722
CAT = "merchant_category"


# --- independent references -------------------------------------------------------------------
def wealth_by_product(harms: list[int], m: float) -> float:
    """The mixture of constant bets computed by multiplying the factors one item at a time."""
    total = 0.0
    for u in BET_FRACTIONS:
        wealth = 1.0
        for h in harms:
            wealth *= 1 + u * (h - m) / (1 + m)
        total += wealth
    return total / len(BET_FRACTIONS)


def two_arm_wealth_by_product(baseline: list[int], candidate: list[int], m: float, points: int = 4001) -> float:
    """inf over a grid of p of the two arms' mixture wealth, multiplying item by item."""
    u = np.array(ARM_BET_FRACTIONS)[:, None]
    p = np.linspace(max(0.0, m), min(1.0, 1 + m), points)[1:-1][None, :]
    r = p - m
    log_b = np.zeros((u.shape[0], p.shape[1]))
    for y in baseline:  # bets that the baseline's rate is above p
        log_b += np.log1p(u * (y - p) / p)
    log_c = np.zeros_like(log_b)
    for y in candidate:  # bets that the candidate's rate is below p - m
        log_c += np.log1p(u * (r - y) / (1 - r))
    mix_b = np.logaddexp.reduce(log_b, axis=0) - math.log(len(ARM_BET_FRACTIONS))
    mix_c = np.logaddexp.reduce(log_c, axis=0) - math.log(len(ARM_BET_FRACTIONS))
    return float(np.exp((mix_b + mix_c).min()))


# --- the paired test -------------------------------------------------------------------------
def test_paired_wealth_from_counts_equals_the_item_by_item_product() -> None:
    rng = np.random.default_rng(1)
    harms = list(rng.choice([1, -1, 0], size=400, p=[0.12, 0.04, 0.84]))
    worse, better = harms.count(1), harms.count(-1)
    e = wealth_by_product(harms, 0.02)
    assert e > 1  # the check is only informative where the p-value is below 1
    p_fail, p_pass = paired_p_values(PairedCounts(400, worse, better), 0.02)
    assert p_fail == pytest.approx(1 / e, rel=1e-9)
    assert p_pass == 1.0


def test_paired_p_values_do_not_depend_on_the_order_of_items() -> None:
    rng = np.random.default_rng(2)
    harms = list(rng.choice([1, -1, 0], size=300, p=[0.15, 0.03, 0.82]))
    shuffled = list(rng.permutation(harms))
    assert wealth_by_product(harms, 0.02) == pytest.approx(wealth_by_product(shuffled, 0.02), rel=1e-9)


def test_paired_fail_pass_and_inconclusive() -> None:
    fail = paired_test(PairedCounts(3000, 300, 90), 0.02, 0.01)
    assert fail.state is State.FAIL and fail.lower > 0.02 and fail.p_fail <= 0.01
    passed = paired_test(PairedCounts(3000, 100, 110), 0.02, 0.01)
    assert passed.state is State.PASS and passed.upper < 0.02 and passed.p_pass <= 0.01
    early = paired_test(PairedCounts(100, 8, 4), 0.02, 0.01)
    assert early.state is State.INCONCLUSIVE and early.lower < 0.02 < early.upper
    assert early.labels_needed is not None and early.labels_needed > 0
    assert fail.labels_needed is None and passed.labels_needed is None


def test_paired_orientation_for_lower_is_better_metrics() -> None:
    # error rate: the candidate erred alone on 300 requests, the baseline alone on 100
    out = paired_test(PairedCounts(10_000, 100, 300), 0.005, 0.01, higher_is_better=False)
    assert out.harm == pytest.approx(0.02)
    assert out.state is State.FAIL
    mirrored = paired_test(PairedCounts(10_000, 300, 100), 0.005, 0.01, higher_is_better=True)
    assert mirrored.p_fail == pytest.approx(out.p_fail)


def test_paired_edge_cases() -> None:
    empty = paired_test(PairedCounts(0, 0, 0), 0.02, 0.01)
    assert (empty.state, empty.harm, empty.p_fail, empty.p_pass, empty.labels_needed) == (
        State.INCONCLUSIVE, None, 1.0, 1.0, None)
    # all concordant: no evidence of harm; enough of them shows harm < tolerance
    few = paired_test(PairedCounts(100, 0, 0), 0.02, 0.01)
    assert few.state is State.INCONCLUSIVE and few.harm == 0 and few.p_fail == 1.0
    many = paired_test(PairedCounts(2000, 0, 0), 0.02, 0.01)
    assert many.state is State.PASS
    # candidate never worse (b = 0) / never better (c = 0)
    assert paired_test(PairedCounts(500, 0, 20), 0.02, 0.01).state is State.PASS
    only_worse = paired_test(PairedCounts(60, 30, 0), 0.02, 0.01)
    assert only_worse.state is State.FAIL and only_worse.upper <= 1.0
    # every item worse: the interval reaches 1
    all_worse = paired_test(PairedCounts(40, 40, 0), 0.02, 0.01)
    assert all_worse.state is State.FAIL and all_worse.upper == 1.0


def test_paired_interval_agrees_with_the_decision() -> None:
    rng = np.random.default_rng(3)
    for _ in range(40):
        n = int(rng.integers(30, 5000))
        worse, better = rng.multinomial(n, [0.1, 0.06, 0.84])[:2]
        out = paired_test(PairedCounts(n, int(worse), int(better)), 0.02, 0.01)
        assert out.harm is not None and out.lower <= out.harm <= out.upper
        assert (out.state is State.FAIL) == (out.lower > 0.02 - 1e-6)
        if out.state is not State.FAIL:
            assert (out.state is State.PASS) == (out.upper < 0.02 + 1e-6)


def test_paired_boundary_null_rejected_at_most_alpha_over_repeated_looks() -> None:
    """True harm exactly the tolerance, 400 paths of 3000 pairs, a look every 25 pairs."""
    alpha, tolerance, paths, n_max, every = 0.05, 0.02, 400, 3000, 25
    rng = np.random.default_rng(11)
    p_worse, p_better = 0.07, 0.05  # harm 0.02 = tolerance
    draws = rng.choice(3, size=(paths, n_max), p=[p_worse, p_better, 1 - p_worse - p_better])
    worse = np.cumsum(draws == 0, axis=1)[:, every - 1::every]
    better = np.cumsum(draws == 1, axis=1)[:, every - 1::every]
    ns = np.arange(every, n_max + 1, every)
    sequential = naive = 0
    for i in range(paths):
        hit = hit_naive = False
        for k, n in enumerate(ns):
            w, b = float(worse[i, k]), float(better[i, k])
            if not hit and paired_p_values(PairedCounts(float(n), w, b), tolerance)[0] <= alpha:
                hit = True
            d = (w - b) / n
            se = math.sqrt(max((w + b) / n - d * d, 1e-12) / n)
            hit_naive = hit_naive or bool((d - tolerance) / se > Z_95_ONE_SIDED)
        sequential += hit
        naive += hit_naive
    assert sequential / paths <= alpha
    # the same paths, a fixed-sample z-test at every look: peeking inflates the false alarms
    assert naive / paths > 2 * alpha


def test_paired_interval_covers_the_true_harm_at_every_look() -> None:
    """Time-uniform coverage of [lower, upper] (each side at 0.05): >= 90 % of paths, all looks."""
    paths, looks = 150, (50, 100, 200, 400, 800, 1600)
    rng = np.random.default_rng(12)
    p_worse, p_better = 0.12, 0.04
    true_harm = p_worse - p_better
    missed = 0
    for _ in range(paths):
        draws = rng.choice(3, size=looks[-1], p=[p_worse, p_better, 1 - p_worse - p_better])
        for n in looks:
            w, b = int((draws[:n] == 0).sum()), int((draws[:n] == 1).sum())
            out = paired_test(PairedCounts(n, w, b), 0.02, 0.05)
            if not (out.lower <= true_harm <= out.upper):
                missed += 1
                break
    assert missed / paths <= 0.10


# --- the unpaired test -----------------------------------------------------------------------
def test_unpaired_e_value_equals_the_item_by_item_product_minimised_on_a_grid() -> None:
    rng = np.random.default_rng(4)
    baseline = [int(y) for y in rng.random(300) < 0.85]
    candidate = [int(y) for y in rng.random(200) < 0.70]
    gb, gc = sum(baseline), sum(candidate)
    e = two_arm_wealth_by_product(baseline, candidate, 0.02)
    assert e > 1
    p_fail, p_pass = unpaired_p_values(UnpairedCounts(gb, 300, gc, 200), 0.02)
    assert 1 / p_fail == pytest.approx(e, rel=1e-4)
    assert p_pass == 1.0
    # order does not matter either
    assert two_arm_wealth_by_product(baseline[::-1], candidate[::-1], 0.02) == pytest.approx(e, rel=1e-9)


def test_unpaired_cutoff_only_truncates_p_values_above_it() -> None:
    for counts in (UnpairedCounts(450, 500, 380, 500), UnpairedCounts(45, 50, 40, 50), UnpairedCounts(400, 500, 410, 500)):
        exact = unpaired_p_values(counts, 0.02)
        cut = unpaired_p_values(counts, 0.02, cutoff=0.01)
        for e, c in zip(exact, cut):
            assert c == (e if e <= 0.01 else 1.0)


def test_unpaired_states_orientation_and_edges() -> None:
    # error rate 0.5 % vs 2 % at a 9:1 split: FAIL
    fail = unpaired_test(UnpairedCounts(216, 43_200, 96, 4_800), 0.005, 0.01, higher_is_better=False)
    assert fail.state is State.FAIL and fail.harm == pytest.approx(0.015) and fail.lower > 0.005
    passed = unpaired_test(UnpairedCounts(216, 43_200, 120, 24_000), 0.005, 0.01, higher_is_better=False)
    assert passed.state is State.PASS and passed.upper < 0.005
    early = unpaired_test(UnpairedCounts(80, 100, 75, 100), 0.02, 0.01)
    assert early.state is State.INCONCLUSIVE and early.labels_needed is not None
    none = unpaired_test(UnpairedCounts(0, 0, 3, 10), 0.02, 0.01)
    assert (none.state, none.harm, none.p_fail) == (State.INCONCLUSIVE, None, 1.0)
    zero_events = unpaired_test(UnpairedCounts(0, 20_000, 0, 20_000), 0.005, 0.01, higher_is_better=False)
    assert zero_events.state is State.PASS and zero_events.harm == 0


def test_unpaired_interval_agrees_with_the_decision() -> None:
    rng = np.random.default_rng(6)
    for _ in range(15):
        nb, nc = (int(x) for x in rng.integers(30, 20_000, size=2))
        counts = UnpairedCounts(int(rng.binomial(nb, 0.8)), nb, int(rng.binomial(nc, 0.76)), nc)
        out = unpaired_test(counts, 0.02, 0.01)
        assert out.harm is not None and out.lower <= out.harm <= out.upper
        assert (out.state is State.FAIL) == (out.lower > 0.02 - 1e-6)
        if out.state is not State.FAIL:
            assert (out.state is State.PASS) == (out.upper < 0.02 + 1e-6)


def test_unpaired_boundary_null_rejected_at_most_alpha_over_repeated_looks() -> None:
    """q_b - q_c = tolerance, a 9:1 split, 300 paths, a look every 100 requests up to 6000."""
    alpha, tolerance, paths = 0.05, 0.05, 300
    rng = np.random.default_rng(13)
    nb = np.arange(90, 5401, 90)
    nc = np.arange(10, 601, 10)
    hits = 0
    for _ in range(paths):
        xb = np.cumsum(rng.random(5400) < 0.80)[nb - 1]
        xc = np.cumsum(rng.random(600) < 0.75)[nc - 1]
        for k in range(len(nb)):
            counts = UnpairedCounts(float(xb[k]), float(nb[k]), float(xc[k]), float(nc[k]))
            if unpaired_p_values(counts, tolerance, cutoff=alpha)[0] <= alpha:
                hits += 1
                break
    assert hits / paths <= alpha


# --- labels still needed ---------------------------------------------------------------------
def test_labels_needed_shrink_as_the_effect_moves_away_from_the_tolerance() -> None:
    n = 400
    fail_side = [paired_test(PairedCounts(n, 20 + k, 20), 0.02, 0.01).labels_needed for k in (10, 14, 18, 22)]
    pass_side = [paired_test(PairedCounts(n, 20, 20 + k), 0.02, 0.01).labels_needed for k in (0, 4, 8, 12)]
    unpaired = [unpaired_test(UnpairedCounts(400, 500, 400 - k, 500), 0.02, 0.01).labels_needed for k in (25, 30, 35)]
    for needed in (fail_side, pass_side, unpaired):
        known = [x for x in needed if x is not None]
        assert len(known) == len(needed) and len(set(known)) == len(known)
        assert known == sorted(known, reverse=True)


def test_labels_needed_is_what_the_same_rates_need_to_decide() -> None:
    counts = PairedCounts(500, 50, 25)  # harm 0.05
    needed = paired_test(counts, 0.02, 0.01).labels_needed
    assert needed is not None
    scale = (500 + needed) / 500
    later = PairedCounts(500 * scale, 50 * scale, 25 * scale)
    assert paired_test(later, 0.02, 0.01).state is State.FAIL
    shy = (500 + needed * 0.95) / 500
    assert paired_test(PairedCounts(500 * shy, 50 * shy, 25 * shy), 0.02, 0.01).state is State.INCONCLUSIVE
    # more labels at the same rates: fewer still needed, about the same total
    bigger = paired_test(PairedCounts(1000, 100, 50), 0.02, 0.01).labels_needed
    assert bigger is not None and bigger < needed
    assert 1000 + bigger == pytest.approx(500 + needed, rel=0.01)


def test_labels_needed_is_none_on_the_tolerance() -> None:
    assert paired_test(PairedCounts(1000, 60, 40), 0.02, 0.01).labels_needed is None  # harm = 0.02


# --- Holm ------------------------------------------------------------------------------------
def test_holm_textbook_example() -> None:
    # sorted: 0.005 <= 0.05/4 reject; 0.01 <= 0.05/3 reject; 0.03 > 0.05/2 stop
    result = holm([0.01, 0.04, 0.03, 0.005], [1, 1, 1, 1], 0.05)
    assert result.rejected == (True, False, False, True)
    assert result.levels == pytest.approx((0.05 / 3, 0.05 / 2, 0.05 / 2, 0.05 / 4))


def test_holm_weighted_by_hand() -> None:
    # p/w: 0.01, 0.01, 0.03 (tie broken by position): 0.02 <= 0.05*2/4; 0.01 <= 0.05*1/2; 0.03 <= 0.05*1/1
    assert holm([0.02, 0.01, 0.03], [2, 1, 1], 0.05).rejected == (True, True, True)
    # p/w: 0.015, 0.02, 0.04: 0.03 > 0.05*2/4 stops at once; the rest face their first-step levels
    stopped = holm([0.03, 0.02, 0.04], [2, 1, 1], 0.05)
    assert stopped.rejected == (False, False, False)
    assert stopped.levels == pytest.approx((0.025, 0.0125, 0.0125))


def test_holm_rejects_bad_input() -> None:
    with pytest.raises(ValueError, match="one weight per p-value"):
        holm([0.1], [1, 1], 0.05)
    with pytest.raises(ValueError, match="weights must be > 0"):
        holm([0.1], [0], 0.05)


# --- the family --------------------------------------------------------------------------------
def config(*names: str, segmented: bool = True) -> ComparisonConfig:
    tolerances = {"recall": 0.02, "precision": 0.02, "error_rate": 0.005, "latency_over": 0.005}
    return ComparisonConfig(tuple(MetricRule.named(n, tolerances[n]) for n in names),
                            segments=(CAT,) if segmented else (), min_samples=30, alpha=0.01)


def seg(value: str) -> Segment:
    return Segment(CAT, value)


def test_family_fails_on_one_segment_when_the_pool_is_fine() -> None:
    cfg = config("recall")
    counts: dict[Key, Counts] = {("recall", None): PairedCounts(5000, 250, 240), ("recall", seg("5411")): PairedCounts(150, 52, 4)}
    counts |= {("recall", seg(f"m{k}")): PairedCounts(100, 5, 5) for k in range(20)}
    verdict = judge(cfg, counts)
    assert verdict.state is State.FAIL
    assert verdict.deciding is not None and verdict.deciding.key == ("recall", seg("5411"))
    assert decide(cfg, counts).state is State.FAIL
    pooled = verdict.judgements[0]
    assert pooled.segment is None and pooled.state is not State.FAIL


def test_family_pass_needs_every_judged_hypothesis_and_every_pooled_test() -> None:
    cfg = config("recall", "error_rate")
    counts: dict[Key, Counts] = {("recall", None): PairedCounts(5000, 0, 0), ("recall", seg("a")): PairedCounts(3000, 0, 0),
              ("error_rate", None): PairedCounts(100_000, 10, 12)}
    assert judge(cfg, counts).state is State.PASS
    # a small segment, not judged, does not block the PASS and is listed with what it lacks
    small = counts | {("recall", seg("tiny")): PairedCounts(12, 0, 0)}
    verdict = judge(cfg, small)
    assert verdict.state is State.PASS
    tiny = next(j for j in verdict.judgements if j.segment == seg("tiny"))
    assert (tiny.judged, tiny.state, tiny.labels_needed) == (False, State.INCONCLUSIVE, 18)
    # a judged segment that has not passed yet keeps the verdict inconclusive
    assert judge(cfg, counts | {("recall", seg("b")): PairedCounts(60, 2, 1)}).state is State.INCONCLUSIVE
    # a metric without counts keeps it inconclusive too
    missing = {k: v for k, v in counts.items() if k[0] != "error_rate"}
    assert judge(cfg, missing).state is State.INCONCLUSIVE


def test_family_segment_below_min_samples_never_decides() -> None:
    cfg = config("recall")
    counts: dict[Key, Counts] = {("recall", None): PairedCounts(200, 10, 10), ("recall", seg("a")): PairedCounts(29, 29, 0)}
    verdict = judge(cfg, counts)
    assert verdict.state is State.INCONCLUSIVE
    a = verdict.judgements[1]
    assert not a.judged and a.labels_needed == 1 and a.outcome is not None and a.outcome.state is State.INCONCLUSIVE


def test_family_no_data_at_all() -> None:
    verdict = judge(config("recall", "precision"), {})
    assert verdict.state is State.INCONCLUSIVE and verdict.deciding is None
    assert [(j.metric, j.judged, j.outcome, j.labels_needed) for j in verdict.judgements] == [
        ("recall", False, None, 30), ("precision", False, None, 30)]


def test_family_weights_and_levels() -> None:
    cfg = config("recall", "error_rate")
    counts: dict[Key, Counts] = {("recall", None): PairedCounts(100, 5, 5), ("error_rate", None): PairedCounts(100, 1, 1)}
    counts |= {("recall", seg(v)): PairedCounts(50, 2, 2) for v in "ab"}
    verdict = judge(cfg, counts)
    weights = {(j.metric, None if j.segment is None else j.segment.value): j.weight for j in verdict.judgements}
    assert weights == pytest.approx({("recall", None): 0.25, ("recall", "a"): 0.125, ("recall", "b"): 0.125,
                                     ("error_rate", None): 0.25})
    # nothing rejected: each faces alpha * w / (total weight present) = 0.01 * w / 0.75
    for j in verdict.judgements:
        assert j.outcome is not None and j.outcome.fail_level == pytest.approx(0.01 * j.weight / 0.75)
        assert j.outcome.pass_level == 0.01


def test_family_verdict_is_the_same_from_merged_instances() -> None:
    """Counts add across instances (each sees its partitions), so the verdict cannot depend on how many."""
    cfg = config("recall", "error_rate")
    recall = PairedCounts(900, 60, 20) + PairedCounts(1100, 70, 30)
    errors = UnpairedCounts(30, 9000, 40, 1000) + UnpairedCounts(25, 9500, 35, 900)
    merged: dict[Key, Counts] = {("recall", None): recall, ("error_rate", None): errors}
    whole: dict[Key, Counts] = {("recall", None): PairedCounts(2000, 130, 50),
                                ("error_rate", None): UnpairedCounts(55, 18_500, 75, 1900)}
    assert judge(cfg, merged) == judge(cfg, whole)


def test_family_decide_agrees_with_judge() -> None:
    rng = np.random.default_rng(5)
    cfg = config("recall", "precision")
    for _ in range(8):
        counts: dict[Key, Counts] = {}
        for metric in ("recall", "precision"):
            for s in [None, seg("a"), seg("b"), seg("c")]:
                n = int(rng.integers(0, 3000))
                if metric == "recall":
                    w, b = rng.multinomial(n, [0.1, 0.05, 0.85])[:2]
                    counts[(metric, s)] = PairedCounts(n, int(w), int(b))
                else:
                    counts[(metric, s)] = UnpairedCounts(int(rng.binomial(n, 0.9)), n, int(rng.binomial(n, 0.86)), n)
        verdict, decision = judge(cfg, counts), decide(cfg, counts)
        assert verdict.state is decision.state
        assert tuple(j.key for j in verdict.judgements if j.state is State.FAIL) == tuple(
            k for k in (j.key for j in verdict.judgements) if k in decision.failed)


def test_family_rejects_counts_it_does_not_judge() -> None:
    with pytest.raises(ValueError, match="does not judge"):
        judge(config("recall"), {("precision", None): PairedCounts(1, 0, 0)})
    with pytest.raises(ValueError, match="judges segments of"):
        judge(config("recall", segmented=False), {("recall", seg("a")): PairedCounts(1, 0, 0)})
    with pytest.raises(ValueError, match="unknown comparison metric"):
        MetricRule.named("f1", 0.02)


def test_counts_validation() -> None:
    with pytest.raises(ValueError, match="baseline_only \\+ candidate_only <= n"):
        PairedCounts(10, 6, 5)
    with pytest.raises(ValueError, match="candidate_events <= candidate_trials"):
        UnpairedCounts(1, 10, 11, 10)
    with pytest.raises(ValueError, match="must be a finite count >= 0"):
        PairedCounts(-1, 0, 0)
    with pytest.raises(ValueError, match="tolerance must be in"):
        paired_test(PairedCounts(1, 0, 0), 1.5, 0.01)


# --- search helpers ----------------------------------------------------------------------------
def test_crossing_and_smallest_scale() -> None:
    assert crossing(lambda x: x, 0.3, 0.0, 1.0, increasing=True) == pytest.approx(0.3, abs=1e-6)
    assert crossing(lambda x: x, 0.3, 0.0, 1.0, increasing=True) >= 0.3  # errs outwards
    assert crossing(lambda x: -x, -0.3, 0.0, 1.0, increasing=False) <= 0.3
    assert smallest_scale(lambda t: t * t, 9.0) == pytest.approx(3.0, rel=1e-3)
    assert smallest_scale(lambda t: 0.0, 1.0, limit=1e3) is None
