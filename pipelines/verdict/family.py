"""A comparison's verdict over all its metrics and segments, with family-wise error control.

Hypotheses: per metric, the pooled test, then one per segment value seen. Every one of them
is in the family from the moment its counts appear, judged or not, so the levels do not
shift when a segment crosses ``min_samples``; only judged ones (at least ``min_samples``
labelled samples, in each arm when unpaired) can be rejected or pass.

FAIL side: weighted Holm (``holm.py``) over the anytime-valid p-values for "worse by more
than the tolerance", at the comparison's alpha. Each metric gets an equal weight; within a
metric the pooled test gets ``pooled_share`` of it (default one half: the pooled test is the
most powerful one, and it comes first in Holm's order when equally strong) and the segment
values seen split the rest equally; Holm divides by the weight of the hypotheses present.
The verdict is FAIL as soon as Holm rejects any hypothesis: P(any false FAIL, at any look)
<= alpha for a fixed family (a segment value that first appears later shrinks the others'
levels from then on; see docs/deciding.md). P-values above alpha enter Holm as 1: a larger
p-value is still valid, none of them could be rejected, and it spares the unpaired test's
minimisation.

PASS side: "shown not worse by more than the tolerance everywhere it is judged" is an
intersection-union claim (Berger 1982): it is wrong only if some hypothesis is in fact worse,
and then it needs that hypothesis's own test to have wrongly passed, so each PASS test runs at
the full alpha with no multiplicity correction (Spotify's remark on "all guardrails must
pass"). The verdict is PASS when every judged hypothesis passes and every metric's pooled
test is judged; P(PASS while some judged metric or segment is worse by more than its
tolerance) <= alpha, at any look.

Otherwise INCONCLUSIVE, with labels still needed per hypothesis.
"""
from __future__ import annotations

import dataclasses
import math
from collections.abc import Mapping
from dataclasses import dataclass

from pipelines.verdict.betting import check_level, check_tolerance
from pipelines.verdict.counts import Counts, PairedCounts, Segment, UnpairedCounts
from pipelines.verdict.holm import holm
from pipelines.verdict.outcome import Outcome, State
from pipelines.verdict.paired import paired_p_values, paired_test
from pipelines.verdict.unpaired import unpaired_p_values, unpaired_test

#: orientation of the metrics a comparison can judge (SPEC "Comparisons and verdicts")
HIGHER_IS_BETTER: dict[str, bool] = {"recall": True, "precision": True, "error_rate": False, "latency_over": False}

#: (metric name, segment or None for the pooled test)
Key = tuple[str, Segment | None]


@dataclass(frozen=True)
class MetricRule:
    """A metric to judge and how much worse (absolute difference in the rate) is acceptable."""

    name: str
    tolerance: float
    higher_is_better: bool

    def __post_init__(self) -> None:
        check_tolerance(self.tolerance)

    @classmethod
    def named(cls, name: str, tolerance: float) -> MetricRule:
        """A rule for one of the spec's metrics, with its orientation from ``HIGHER_IS_BETTER``."""
        if name not in HIGHER_IS_BETTER:
            raise ValueError(f"unknown comparison metric {name!r}; expected one of {sorted(HIGHER_IS_BETTER)}")
        return cls(name, tolerance, HIGHER_IS_BETTER[name])


@dataclass(frozen=True)
class ComparisonConfig:
    metrics: tuple[MetricRule, ...]
    segments: tuple[str, ...] = ()  # segment attributes judged, e.g. ("merchant_category",)
    min_samples: int = 30
    alpha: float = 0.01  # for the whole comparison: all metrics, pooled and segments
    pooled_share: float = 0.5  # of each metric's alpha, for its pooled test (when segmented)

    def __post_init__(self) -> None:
        if not self.metrics:
            raise ValueError("ComparisonConfig needs at least one metric")
        names = [m.name for m in self.metrics]
        if len(set(names)) != len(names):
            raise ValueError(f"ComparisonConfig metrics must have distinct names, got {names}")
        check_level("alpha", self.alpha)
        if not (0.0 < self.pooled_share < 1.0):
            raise ValueError(f"pooled_share must be in (0, 1), got {self.pooled_share!r}")
        if not (isinstance(self.min_samples, int) and self.min_samples >= 1):
            raise ValueError(f"min_samples must be an integer >= 1, got {self.min_samples!r}")


@dataclass(frozen=True)
class Judgement:
    """One hypothesis (a metric, pooled or in one segment) in the verdict's table."""

    metric: str
    segment: Segment | None
    state: State
    judged: bool  # False: fewer than min_samples; listed, never decides
    weight: float  # its share of alpha on the FAIL side
    outcome: Outcome | None  # the test's figures at the levels it faces now; None without counts
    labels_needed: int | None  # to decide (judged) or to reach min_samples (not judged)

    @property
    def key(self) -> Key:
        return (self.metric, self.segment)


@dataclass(frozen=True)
class Decision:
    """The verdict without the figures: what the daemon needs at every tick."""

    state: State
    deciding: Key | None  # FAIL: the hypothesis Holm rejected first
    failed: tuple[Key, ...]
    judged: int
    passed: int


@dataclass(frozen=True)
class Verdict:
    state: State
    alpha: float
    deciding: Judgement | None  # FAIL: the hypothesis Holm rejected first
    judgements: tuple[Judgement, ...]  # per metric in config order: pooled, then segments


@dataclass(frozen=True)
class _Hypothesis:
    key: Key
    rule: MetricRule
    counts: Counts | None
    judged: bool
    weight: float
    p_fail: float
    p_pass: float


def _meets(counts: Counts | None, min_samples: int) -> bool:
    if counts is None:
        return False
    if isinstance(counts, PairedCounts):
        return counts.n >= min_samples
    return min(counts.baseline_trials, counts.candidate_trials) >= min_samples


def _p_values(rule: MetricRule, counts: Counts, alpha: float) -> tuple[float, float]:
    if isinstance(counts, PairedCounts):
        return paired_p_values(counts, rule.tolerance, higher_is_better=rule.higher_is_better)
    # p-values above alpha can never be rejected by Holm nor pass; they enter as 1 (still valid)
    return unpaired_p_values(counts, rule.tolerance, higher_is_better=rule.higher_is_better, cutoff=alpha)


def _outcome(rule: MetricRule, counts: Counts, fail_level: float, pass_level: float) -> Outcome:
    if isinstance(counts, PairedCounts):
        return paired_test(counts, rule.tolerance, fail_level, higher_is_better=rule.higher_is_better,
                           pass_alpha=pass_level)
    return unpaired_test(counts, rule.tolerance, fail_level, higher_is_better=rule.higher_is_better,
                         pass_alpha=pass_level)


def _to_min_samples(counts: Counts | None, min_samples: int) -> int:
    if counts is None:
        return min_samples
    if isinstance(counts, PairedCounts):
        return max(0, math.ceil(min_samples - counts.n))
    short = (math.ceil(min_samples - trials) for trials in (counts.baseline_trials, counts.candidate_trials))
    return sum(max(0, s) for s in short)


def _hypotheses(config: ComparisonConfig, counts: Mapping[Key, Counts]) -> list[_Hypothesis]:
    rules = {rule.name: rule for rule in config.metrics}
    segments: dict[str, list[Segment]] = {rule.name: [] for rule in config.metrics}
    for (metric, segment), given in counts.items():
        if metric not in rules:
            raise ValueError(f"counts for metric {metric!r}, which the comparison does not judge ({sorted(rules)})")
        if not isinstance(given, (PairedCounts, UnpairedCounts)):
            raise ValueError(
                f"counts for {metric!r} must be PairedCounts or UnpairedCounts, got {type(given).__name__}")
        if segment is not None:
            if segment.attribute not in config.segments:
                raise ValueError(
                    f"counts for segment {segment}, but the comparison judges segments of {list(config.segments)}")
            segments[metric].append(segment)
    share = 1.0 / len(config.metrics)
    out: list[_Hypothesis] = []
    for rule in config.metrics:
        values = sorted(segments[rule.name], key=lambda s: (s.attribute, s.value))
        pooled_weight = share * config.pooled_share if config.segments else share
        keyed: list[tuple[Key, float]] = [((rule.name, None), pooled_weight)]
        keyed += [((rule.name, s), share * (1 - config.pooled_share) / len(values)) for s in values]
        for key, weight in keyed:
            value = counts.get(key)
            judged = _meets(value, config.min_samples)
            p_fail, p_pass = _p_values(rule, value, config.alpha) if judged and value is not None else (1.0, 1.0)
            out.append(_Hypothesis(key, rule, value, judged, weight, p_fail, p_pass))
    return out


def _decide(config: ComparisonConfig, hyps: list[_Hypothesis]) -> tuple[Decision, tuple[float, ...]]:
    result = holm([h.p_fail for h in hyps], [h.weight for h in hyps], config.alpha)
    failed = [i for i, r in enumerate(result.rejected) if r]
    passed = [i for i, h in enumerate(hyps) if h.judged and not result.rejected[i] and h.p_pass <= config.alpha]
    judged = sum(1 for h in hyps if h.judged)
    if failed:
        state = State.FAIL
    elif all(h.judged for h in hyps if h.key[1] is None) and len(passed) == judged:
        state = State.PASS
    else:
        state = State.INCONCLUSIVE
    first = min(failed, key=lambda i: (hyps[i].p_fail / hyps[i].weight, i)) if failed else None
    decision = Decision(
        state=state,
        deciding=None if first is None else hyps[first].key,
        failed=tuple(hyps[i].key for i in failed),
        judged=judged,
        passed=len(passed),
    )
    return decision, result.levels


def decide(config: ComparisonConfig, counts: Mapping[Key, Counts]) -> Decision:
    """The comparison's state from its counts: cheap (no intervals), for every tick."""
    return _decide(config, _hypotheses(config, counts))[0]


def judge(config: ComparisonConfig, counts: Mapping[Key, Counts]) -> Verdict:
    """The comparison's state with the full table: per hypothesis the estimate, the
    anytime-valid interval at the levels it faces, p-values, sample and labels still needed.

    ``counts`` maps (metric, segment or None) to that hypothesis's sufficient statistics; the
    pooled counts are given explicitly (segments need not partition the traffic).
    """
    hyps = _hypotheses(config, counts)
    decision, levels = _decide(config, hyps)
    failed, deciding = set(decision.failed), None
    judgements: list[Judgement] = []
    for h, level in zip(hyps, levels):
        outcome = None if h.counts is None else _outcome(h.rule, h.counts, level, config.alpha)
        if h.judged and outcome is not None:
            state = State.FAIL if h.key in failed else State.PASS if h.p_pass <= config.alpha else State.INCONCLUSIVE
            needed = outcome.labels_needed if state is State.INCONCLUSIVE else None
        else:
            state = State.INCONCLUSIVE
            needed = _to_min_samples(h.counts, config.min_samples)
            if outcome is not None:  # figures for on-call, but a hypothesis not judged decides nothing
                outcome = dataclasses.replace(outcome, state=State.INCONCLUSIVE, labels_needed=None)
        judgement = Judgement(h.key[0], h.key[1], state, h.judged, h.weight, outcome, needed)
        if h.key == decision.deciding:
            deciding = judgement
        judgements.append(judgement)
    return Verdict(decision.state, config.alpha, deciding, tuple(judgements))
