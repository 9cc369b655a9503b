"""The verdict engine's input: per-(metric, segment) sufficient statistics, as plain counts.

The tests are functions of these counts alone, never of the order the records came in, so
counts summed over every instance's partitions give the same verdict whether one instance or
five saw the traffic, and a restart resumes from the counts in a checkpoint.
"""
from __future__ import annotations

import math
import numbers
from dataclasses import dataclass


def _check_count(owner: str, name: str, value: float) -> None:
    if not (isinstance(value, numbers.Real) and math.isfinite(value) and value >= 0):
        raise ValueError(f"{owner}.{name} must be a finite count >= 0, got {value!r}")


@dataclass(frozen=True)
class Segment:
    """One value of a segment attribute, e.g. ``Segment("merchant_category", "5411")``."""

    attribute: str
    value: str

    def __str__(self) -> str:
        return f"{self.attribute}={self.value}"


@dataclass(frozen=True)
class PairedCounts:
    """Items both models scored, with the same label (shadow traffic): a McNemar table.

    ``n`` paired items; the metric's event (a hit on a positive for recall, an error for
    error rate, a slow response for latency) happened for the baseline only on
    ``baseline_only`` of them and for the candidate only on ``candidate_only``. Items where
    both or neither had the event carry no information about the difference and are only
    counted in ``n``.
    """

    n: float
    baseline_only: float
    candidate_only: float

    def __post_init__(self) -> None:
        for name in ("n", "baseline_only", "candidate_only"):
            _check_count("PairedCounts", name, getattr(self, name))
        if self.baseline_only + self.candidate_only > self.n:
            raise ValueError(
                "PairedCounts needs baseline_only + candidate_only <= n (discordant items are among "
                f"the n paired items), got {self.baseline_only} + {self.candidate_only} > {self.n}"
            )

    @property
    def sample(self) -> float:
        return self.n

    def __add__(self, other: PairedCounts) -> PairedCounts:
        return PairedCounts(
            self.n + other.n,
            self.baseline_only + other.baseline_only,
            self.candidate_only + other.candidate_only,
        )


@dataclass(frozen=True)
class UnpairedCounts:
    """Two independent arms over the same span (a traffic shift): events out of trials each.

    Events are the metric's own numerator: hits out of labelled positives for recall, true
    positives out of labelled flagged items for precision, errors out of invocations.
    """

    baseline_events: float
    baseline_trials: float
    candidate_events: float
    candidate_trials: float

    def __post_init__(self) -> None:
        for name in ("baseline_events", "baseline_trials", "candidate_events", "candidate_trials"):
            _check_count("UnpairedCounts", name, getattr(self, name))
        for arm in ("baseline", "candidate"):
            events, trials = getattr(self, f"{arm}_events"), getattr(self, f"{arm}_trials")
            if events > trials:
                raise ValueError(f"UnpairedCounts needs {arm}_events <= {arm}_trials, got {events} > {trials}")

    @property
    def sample(self) -> float:
        return self.baseline_trials + self.candidate_trials

    def __add__(self, other: UnpairedCounts) -> UnpairedCounts:
        return UnpairedCounts(
            self.baseline_events + other.baseline_events,
            self.baseline_trials + other.baseline_trials,
            self.candidate_events + other.candidate_events,
            self.candidate_trials + other.candidate_trials,
        )


Counts = PairedCounts | UnpairedCounts
