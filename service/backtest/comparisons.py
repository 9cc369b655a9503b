"""Comparisons in a backtest: each comparison's state at every simulated tick, and the ticks at
which it changed, with the test that decided a FAIL. Pure."""
from __future__ import annotations

import math
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from typing import Any

from alarms.evaluator import format_time
from pipelines.comparison.config import Comparison
from pipelines.comparison.tally import ComparisonTally
from pipelines.verdict import Counts, Key, State, decide, judge


def _finite(x: float | None) -> float | None:
    return x if x is not None and math.isfinite(x) else None


def _count(x: float) -> int | float:
    return int(x) if float(x).is_integer() else x


@dataclass(frozen=True, slots=True)
class Change:
    """A comparison entered ``state`` at the simulated tick ``at_ms``.

    For a FAIL, ``metric``/``segment`` name the deciding test (the hypothesis Holm rejected
    first; segment ``attribute=value``, None when pooled), ``difference`` is its harm estimate
    (positive = the candidate is worse), ``interval`` its anytime-valid [lower, upper] of the harm
    and ``labels`` its sample. For PASS and INCONCLUSIVE no single test decides: those are None
    and ``labels`` is the pooled sample of the comparison's first metric.
    """

    at_ms: int
    state: State
    labels: float
    metric: str | None = None
    segment: str | None = None
    difference: float | None = None
    interval: tuple[float | None, float | None] | None = None

    def to_json(self) -> dict[str, Any]:
        return {
            "at": format_time(self.at_ms / 1000),
            "at_ms": self.at_ms,
            "state": self.state.value,
            "metric": self.metric,
            "segment": self.segment,
            "difference": _finite(self.difference),
            "interval": None if self.interval is None else list(self.interval),
            "labels": _count(self.labels),
        }


@dataclass(frozen=True)
class ComparisonResult:
    """One comparison over the replay: its state changes, the first one at the first tick."""

    comparison: Comparison
    changes: tuple[Change, ...]

    @property
    def final(self) -> State | None:
        """The state at the replay's last tick; None when the replay had no tick to judge at."""
        return self.changes[-1].state if self.changes else None

    def to_json(self) -> dict[str, Any]:
        c = self.comparison
        return {
            "name": c.name,
            "endpoint": c.endpoint,
            "final": None if self.final is None else self.final.value,
            "changes": [change.to_json() for change in self.changes],
        }


def change_at(comparison: Comparison, now_ms: int, counts: Mapping[Key, Counts], state: State) -> Change:
    """The record of a state change; a FAIL is judged in full for the deciding test's figures."""
    if state is State.FAIL:
        verdict = judge(comparison.config(), counts)
        deciding = verdict.deciding
        if verdict.state is State.FAIL and deciding is not None and deciding.outcome is not None:
            o = deciding.outcome
            return Change(
                now_ms, State.FAIL, o.sample, metric=deciding.metric,
                segment=None if deciding.segment is None else str(deciding.segment),
                difference=o.harm, interval=(_finite(o.lower), _finite(o.upper)),
            )
    pooled = counts.get((comparison.metrics[0].name, None))
    return Change(now_ms, state, 0.0 if pooled is None else pooled.sample)


class ComparisonTracker:
    """Decides every comparison at each tick (`pipelines.verdict.decide`, as the daemon does) and
    keeps the ticks at which its state changed. The state is a function of the counts alone, so a
    tick whose counts did not move is not decided again."""

    def __init__(self, comparisons: Sequence[Comparison]) -> None:
        self.comparisons = tuple(comparisons)
        self._changes: dict[str, list[Change]] = {c.name: [] for c in self.comparisons}
        self._last: dict[str, Mapping[Key, Counts]] = {}

    def observe(self, now_ms: int, tallies: Mapping[str, ComparisonTally]) -> None:
        """One tick at ``now_ms`` (simulated clock) with the pipeline's tallies after its tick."""
        for c in self.comparisons:
            tally = tallies.get(c.name)
            counts = {} if tally is None else tally.counts(c)
            changes = self._changes[c.name]
            if changes and self._last.get(c.name) == counts:
                continue
            self._last[c.name] = counts
            state = decide(c.config(), counts).state
            if not changes or changes[-1].state is not state:
                changes.append(change_at(c, now_ms, counts, state))

    def results(self) -> tuple[ComparisonResult, ...]:
        return tuple(ComparisonResult(c, tuple(self._changes[c.name])) for c in self.comparisons)
