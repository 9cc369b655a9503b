"""Labels needed versus effect size: where the verdict engine's tests cross, at expected counts.

Deterministic (no random draws). For each scenario the counts are fed at exactly their expected
proportions (``PairedCounts(n, b*n, c*n)``, ``UnpairedCounts(q_b*n_b, n_b, q_c*n_c, n_c)``) for
growing n, through the engine's own p-values (``pipelines.verdict.paired_p_values`` /
``unpaired_p_values``, what ``judge`` and ``decide`` call), and the table gives the smallest n at
which the test decides: FAIL (candidate worse than the baseline by more than the tolerance) when
the harm is above the tolerance, PASS (worse by less) when the candidate equals the baseline.
That is the "expected crossing": where the e-value of typical data reaches 1/level.

Levels come from the engine too (``judge`` on the reference comparison: 4 metrics x 50 segment
values, alpha 0.01): Holm's first-step level of a pooled metric (0.00125) and of one metric in
one segment (2.5e-5) for FAIL; PASS is not multiplicity-corrected, so every PASS test, pooled or
segment, runs at alpha itself (0.01).

The comparable fixed-sample figure is a one-sided z-test at the same level with power 0.5:
n = z_(1-level)^2 * V / (|harm - tolerance|)^2, with V the variance per label of the estimated
harm at the true rates (Wald, not pooled under the null), a normal approximation, known
variance, one look at a sample size fixed in advance. At that n the expected z statistic equals
the critical value, so half of all samples would decide: the same "typical data" notion as the
expected crossing. It is not valid if looked at more than once.

    python3 bench/labels_needed.py                 # the full table (under a second)
    python3 bench/labels_needed.py --quick         # two rows, for tests
    python3 bench/labels_needed.py --only-candidate 0.10   # another discordance assumption
"""
from __future__ import annotations

import argparse
import math
import sys
import time
from dataclasses import dataclass
from pathlib import Path
from statistics import NormalDist

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))
sys.path.insert(0, str(Path(__file__).resolve().parent))

import verdict_sim  # noqa: E402  (bench/verdict_sim.py: the same reference comparison)

from pipelines.verdict import (  # noqa: E402
    Counts,
    Key,
    PairedCounts,
    Segment,
    UnpairedCounts,
    judge,
    paired_p_values,
    unpaired_p_values,
)

# --- the reference comparison (SPEC.md "Comparisons and verdicts"): the simulator's ---------------
REFERENCE = verdict_sim.CONFIG
N_SEGMENTS = 50
RECALL = 0.80  # baseline recall
RECALL_TOLERANCE = 0.02
DROPS = (0.03, 0.05, 0.10, 0.20, 0.30)
ERRORS = 0.005  # baseline error rate
ERROR_TOLERANCE = 0.005
CANDIDATE_ERRORS = (0.015, 0.02, 0.05)
ONLY_CANDIDATE = 0.05  # positives the candidate alone catches (simulator's DISCORDANT)
# the reference story's traffic, for the time figures under the table
RATE = 800.0  # inferences/s
FRAUD = 0.001  # share of inferences that are fraud
FIRST_STEP = 0.10  # the linear shift's first step
BAKE_S = 300


def reference_levels() -> tuple[float, float, float]:
    """(pooled FAIL level, one segment's FAIL level, PASS level) as ``judge`` assigns them in the
    reference comparison with every hypothesis present and nothing rejected yet."""
    counts: dict[Key, Counts] = {}
    for rule in REFERENCE.metrics:
        for value in [None] + [Segment("merchant_category", f"m{k:02d}") for k in range(N_SEGMENTS)]:
            counts[(rule.name, value)] = (PairedCounts(1, 0, 0) if rule.name == "recall"
                                            else UnpairedCounts(0, 1, 0, 1))
    verdict = judge(REFERENCE, counts)
    pooled = next(j for j in verdict.judgements if j.metric == "recall" and j.segment is None)
    one = next(j for j in verdict.judgements if j.metric == "recall" and j.segment is not None)
    assert pooled.outcome is not None and one.outcome is not None
    return pooled.outcome.fail_level, one.outcome.fail_level, pooled.outcome.pass_level


@dataclass(frozen=True)
class Scenario:
    metric: str  # "recall" or "error rate"
    design: str  # "paired" or "unpaired"
    baseline: float  # the metric's rate in the baseline
    candidate: float
    tolerance: float
    higher_is_better: bool
    split: tuple[int, int] = (1, 1)  # baseline : candidate labels (unpaired)
    only_candidate: float = ONLY_CANDIDATE  # paired: share of positives only the candidate gets right

    @property
    def harm(self) -> float:
        d = self.baseline - self.candidate
        return d if self.higher_is_better else -d

    @property
    def fail_side(self) -> bool:
        return self.harm > self.tolerance

    def pair_rates(self) -> tuple[float, float]:
        """Paired: (share of pairs the candidate did worse on, share it did better on)."""
        better = self.only_candidate
        worse = better + self.harm
        both = self.baseline - worse
        if min(worse, better, both, 1 - both - worse - better) < -1e-12:
            raise ValueError(f"infeasible paired cells for {self}")
        return worse, better

    def counts(self, n: float) -> Counts:
        if self.design == "paired":
            worse, better = self.pair_rates()
            return PairedCounts(n, worse * n, better * n)  # recall: baseline_only = candidate worse
        sb, sc = self.split
        nb, nc = n * sb / (sb + sc), n * sc / (sb + sc)
        return UnpairedCounts(self.baseline * nb, nb, self.candidate * nc, nc)

    def decides(self, n: int, level: float) -> bool:
        counts = self.counts(float(n))
        if isinstance(counts, PairedCounts):
            p_fail, p_pass = paired_p_values(counts, self.tolerance, higher_is_better=self.higher_is_better)
        else:
            p_fail, p_pass = unpaired_p_values(counts, self.tolerance, higher_is_better=self.higher_is_better,
                                               cutoff=level)
        return (p_fail if self.fail_side else p_pass) <= level

    def min_samples(self) -> int:
        """The smallest n the family judges at all (``min_samples`` per arm when unpaired)."""
        if self.design == "paired":
            return REFERENCE.min_samples
        sb, sc = self.split
        return math.ceil(REFERENCE.min_samples * (sb + sc) / min(sb, sc))

    def variance(self) -> float:
        """Variance per label (of the total n) of the estimated harm, at the true rates."""
        if self.design == "paired":
            worse, better = self.pair_rates()
            return worse + better - (worse - better) ** 2
        sb, sc = self.split
        qb, qc = self.baseline, self.candidate
        return qb * (1 - qb) * (sb + sc) / sb + qc * (1 - qc) * (sb + sc) / sc

    def fixed(self, level: float) -> float:
        """Labels a one-sided fixed-sample z-test at ``level`` with power 0.5 needs."""
        z = NormalDist().inv_cdf(1 - level)
        return z * z * self.variance() / (self.harm - self.tolerance) ** 2


def crossing(scenario: Scenario, level: float, limit: int = 10**10) -> int | None:
    """Smallest integer n at which the test decides with counts at their expected proportions.

    Doubling, then bisection. For the paired test log E(n) is a log-sum-exp of functions linear
    in n, hence convex, 0 at n = 0: it crosses a positive threshold once. The unpaired e-value
    (an infimum over the nuisance rate) is checked for a single crossing by ``--check``."""
    hi = 1
    while not scenario.decides(hi, level):
        hi *= 2
        if hi > limit:
            return None
    lo = hi // 2  # does not decide (or is 0)
    while hi - lo > 1:
        mid = (lo + hi) // 2
        lo, hi = (lo, mid) if scenario.decides(mid, level) else (mid, hi)
    return hi


def scenarios(only_candidate: float, quick: bool) -> list[tuple[str, Scenario]]:
    out: list[tuple[str, Scenario]] = []
    drops = (0.10,) if quick else DROPS
    recall_designs = [("paired", (1, 1))] if quick else [("paired", (1, 1)), ("unpaired", (1, 1)), ("unpaired", (9, 1))]
    for design, split in recall_designs:
        for drop in (*drops, 0.0):
            out.append((f"{RECALL:.2f} → {RECALL - drop:.2f}",
                        Scenario("recall", design, RECALL, round(RECALL - drop, 10), RECALL_TOLERANCE, True,
                                 split, only_candidate)))
    if not quick:
        for split in ((1, 1), (9, 1)):
            for rate in (*CANDIDATE_ERRORS, ERRORS):
                out.append((f"{pct(ERRORS)} → {pct(rate)}",
                            Scenario("error rate", "unpaired", ERRORS, rate, ERROR_TOLERANCE, False, split)))
    return out


def pct(x: float) -> str:
    """0.005 -> '0.5 %' (the README's style)."""
    return f"{round(x * 100, 6):g} %"


def _design(s: Scenario) -> str:
    return "paired (shadow)" if s.design == "paired" else f"concurrent {s.split[0]}:{s.split[1]}"


def _n(value: int | None, floor: int) -> str:
    if value is None:
        return "never"
    mark = "†" if value < floor else ""
    return f"{max(value, floor):,}{mark}"


def table(only_candidate: float, quick: bool, check: bool) -> list[str]:
    pooled, segment, pass_level = reference_levels()
    lines = [
        f"| metric | design | baseline → candidate | verdict | labels, pooled (FAIL at {pooled:g}) "
        f"| fixed z | ratio | labels, one segment (FAIL at {segment:g}) | fixed z | ratio |",
        "| --- | --- | --- | --- | ---: | ---: | ---: | ---: | ---: | ---: |",
    ]
    floors_hit = False
    for label, s in scenarios(only_candidate, quick):
        cells = []
        levels = (pooled, segment) if s.fail_side else (pass_level, pass_level)
        for level in levels:
            n = crossing(s, level)
            if check and n is not None and n > 1:
                assert not s.decides(n - 1, level), (s, level, n)
                # a single crossing: decided at every larger size scanned
                for k in (1.01, 1.1, 1.5, 2, 4, 16):
                    assert s.decides(math.ceil(n * k), level), (s, level, n, k)
            fixed = s.fixed(level)
            floor = s.min_samples()
            floors_hit |= n is not None and n < floor
            shown = None if n is None else max(n, floor)
            ratio = "—" if shown is None else f"{shown / fixed:.2f}"
            cells += [_n(n, floor), f"{math.ceil(fixed):,}", ratio]
        verdict = "FAIL" if s.fail_side else f"PASS (at {pass_level:g}, both)"
        lines.append(f"| {s.metric} | {_design(s)} | {label} | {verdict} | " + " | ".join(cells) + " |")
    if floors_hit:
        lines.append("")
        lines.append(f"† the test crosses earlier, but a hypothesis is judged only from min_samples "
                     f"({REFERENCE.min_samples}, in each arm when concurrent)")
    return lines


def main(argv: list[str] | None = None) -> int:
    ap = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    ap.add_argument("--quick", action="store_true", help="two rows only (for tests)")
    ap.add_argument("--only-candidate", type=float, default=ONLY_CANDIDATE,
                    help="paired: share of positives only the candidate catches (default %(default)s)")
    ap.add_argument("--check", action="store_true",
                    help="also assert n-1 does not decide and larger sizes do (single crossing)")
    a = ap.parse_args(argv)
    t0 = time.perf_counter()
    oc = a.only_candidate
    print("Labels needed versus effect size: the verdict engine's tests at expected counts, "
          "reference comparison (alpha 0.01, 4 metrics x 50 segments)")
    print()
    for line in table(oc, a.quick, a.check):
        print(line)
    print()
    print(f"- labels: labelled positives for recall, invocations for error rate; both arms when concurrent "
          f"(split baseline:candidate). Recall tolerance {RECALL_TOLERANCE}, error-rate tolerance {ERROR_TOLERANCE}.")
    print(f"- paired: the candidate alone catches {pct(oc)} of positives and the baseline alone {pct(oc)} + drop, "
          f"so the models disagree on {pct(2 * oc)} + drop of positives (b - c = drop * n).")
    print("- rollguard: smallest n at which the test decides with counts at their expected proportions "
          "(pipelines.verdict p-values).")
    print("- fixed z: one-sided fixed-sample z-test at the same level, power 0.5 (expected z = critical value), "
          "Wald variance at the true rates, one look at a sample size fixed in advance; ratio = rollguard / fixed z.")
    print("- PASS is not multiplicity-corrected (intersection-union), so pooled and segment PASS tests both run "
          "at alpha.")
    positives_h = RATE * FRAUD * 3600
    print(f"- reference traffic ({RATE:.0f} inferences/s, fraud {pct(FRAUD)}): {positives_h:,.0f} positives "
          f"served per hour ({positives_h * 0.02:,.1f} in a 2 % segment), labelled hours to days later; "
          f"a {BAKE_S} s bake at the {pct(FIRST_STEP)} step serves {RATE * FIRST_STEP * BAKE_S:,.0f} candidate "
          f"and {RATE * (1 - FIRST_STEP) * BAKE_S:,.0f} baseline invocations.")
    print(f"({time.perf_counter() - t0:.1f} s)", file=sys.stderr)
    return 0


if __name__ == "__main__":
    sys.exit(main())
