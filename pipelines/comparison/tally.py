"""A comparison's sufficient statistics: counts that add up over partitions and instances.

One `ComparisonTally` per comparison and partition; the sum of every partition's tally is the
comparison's whole evidence (`merge`), and `counts` turns it into the verdict engine's input.
Cells, keyed (metric, kind, segment attribute, segment value), attribute and value None for
the pooled cell:

- ``paired`` (recall on shadow traffic): [n, baseline_only, candidate_only], labelled
  positives both models scored, and those only one of them caught;
- ``unpaired``: [baseline_events, baseline_trials, candidate_events, candidate_trials], the
  metric's own numerator and denominator per arm (hits out of labelled positives for recall,
  true positives out of labelled flags for precision, errors out of captures for error rate,
  captures slower than the threshold out of captures with a latency for latency_over).
"""
from __future__ import annotations

from collections.abc import Iterable, Mapping
from dataclasses import dataclass, field
from typing import Any

from pipelines.comparison.config import PAIRED_METRICS, Comparison
from pipelines.verdict import Counts, Key, PairedCounts, Segment, UnpairedCounts

PAIRED = "paired"
UNPAIRED = "unpaired"
WIDTH = {PAIRED: 3, UNPAIRED: 4}

CellKey = tuple[str, str, str | None, str | None]  # (metric, kind, attribute, value)


@dataclass
class ComparisonTally:
    fingerprint: str
    shadow: bool = False  # the candidate's captures are shadow captures: recall is judged paired
    cells: dict[CellKey, list[float]] = field(default_factory=dict)

    def add(self, key: CellKey, deltas: Iterable[float]) -> None:
        cell = self.cells.get(key)
        if cell is None:
            cell = self.cells[key] = [0.0] * WIDTH[key[1]]
        for i, d in enumerate(deltas):
            cell[i] += d

    def add_arm(self, key: CellKey, arm: int, event: int) -> None:
        """One unpaired trial of arm 0 (baseline) or 1 (candidate), an event or not."""
        cell = self.cells.get(key)
        if cell is None:
            cell = self.cells[key] = [0.0] * 4
        cell[2 * arm] += event
        cell[2 * arm + 1] += 1

    def merge(self, other: ComparisonTally) -> ComparisonTally:
        if other.fingerprint != self.fingerprint:
            raise ValueError("tallies of different comparison definitions do not add up")
        out = ComparisonTally(self.fingerprint, self.shadow or other.shadow,
                              {k: list(v) for k, v in self.cells.items()})
        for key, values in other.cells.items():
            out.add(key, values)
        return out

    def counts(self, comparison: Comparison) -> dict[Key, Counts]:
        """The verdict engine's input: per judged metric and segment, paired counts for recall on
        shadow traffic, unpaired counts otherwise. Empty cells are left out."""
        out: dict[Key, Counts] = {}
        for (metric, kind, attribute, value), cell in self.cells.items():
            if comparison.metric(metric) is None:
                continue
            want = PAIRED if (self.shadow and metric in PAIRED_METRICS) else UNPAIRED
            if kind != want or not any(cell):
                continue
            if attribute is not None and attribute not in comparison.segments:
                continue
            segment = None if attribute is None else Segment(attribute, str(value))
            # float sums of integers are exact; clamp the -0.0 a correction can leave
            values = [max(0.0, round(v)) for v in cell]
            out[(metric, segment)] = _counts(kind, values)
        return out

    def to_plain(self) -> dict[str, Any]:
        return {
            "fingerprint": self.fingerprint,
            "shadow": self.shadow,
            "cells": [[*key, cell] for key, cell in sorted(self.cells.items(), key=lambda kv: _sort_key(kv[0]))],
        }

    @classmethod
    def from_plain(cls, data: Mapping[str, Any]) -> ComparisonTally:
        tally = cls(str(data["fingerprint"]), bool(data.get("shadow", False)))
        for metric, kind, attribute, value, cell in data["cells"]:
            if kind not in WIDTH or len(cell) != WIDTH[kind]:
                raise ValueError(f"comparison cell {metric}/{kind} has {len(cell)} values")
            tally.cells[(str(metric), str(kind), attribute, value)] = [float(v) for v in cell]
        return tally


def _sort_key(key: CellKey) -> tuple[str, str, str, str]:
    return (key[0], key[1], key[2] or "", key[3] or "")


def _counts(kind: str, values: list[float]) -> Counts:
    if kind == PAIRED:
        n, b, c = values
        return PairedCounts(max(n, b + c), b, c)
    be, bt, ce, ct = values
    return UnpairedCounts(min(be, bt), bt, min(ce, ct), ct)


def merge(tallies: Iterable[ComparisonTally]) -> ComparisonTally | None:
    """The sum of tallies of one comparison (None for none)."""
    total: ComparisonTally | None = None
    for tally in tallies:
        total = tally if total is None else total.merge(tally)
    return total
