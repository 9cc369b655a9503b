"""One partition's comparison counts, kept as the join sees captures and labels.

Two hooks from `pipelines.join.JoinState`:

- `capture` for every new capture of an arm: it is marked a *member* of the comparison (one
  bit of the pending capture: counted while the comparison existed), and *concurrent* (a
  second bit) when the comparison's other arm was served within `concurrent_within_s` before
  it in this partition, so both arms compare traffic served over the same span. error_rate and
  latency_over of concurrent captures are counted here, from the capture alone.
- `changed` whenever a pending inference id's captures or label change (a capture joins, a
  label arrives or is corrected). The label metrics' contribution of an inference id is a pure
  function `_contribution` of what the id holds, and the tally moves by new minus old: order,
  corrections and early labels need no special cases, and the sum over every id always equals
  a batch computation over the same joined data.

Only members count, so pending captures restored from before a comparison existed are never
subtracted from counts they never fed; a comparison whose definition changed across a restart
starts afresh and its slot's bits are cleared (`restore`). Every decision depends on the
partition's records in offset order only (the capture times seen so far, never the wall
clock), so any instance that owns the partition counts the same.
"""
from __future__ import annotations

from collections.abc import Iterable, Sequence
from dataclasses import dataclass, field
from typing import Any, Protocol

from pipelines.comparison.config import MAX_PER_ENDPOINT, Comparison
from pipelines.comparison.tally import PAIRED, UNPAIRED, CellKey, ComparisonTally
from pipelines.records import Capture
from pipelines.series import Series, SeriesRegistry

BASELINE, CANDIDATE = 0, 1


class ElemCodec(Protocol):
    """What the counter needs to read from one pending capture (`pipelines.join` packs them)."""

    def series_id(self, elem: int) -> int: ...
    def prediction(self, elem: int) -> int | None: ...
    def shadow(self, elem: int) -> bool: ...
    def label(self, elem: int) -> int | None: ...
    def slot_bits(self, elem: int, slot: int) -> int: ...
    def with_slot_bits(self, slot: int, bits: int) -> int: ...


MEMBER, CONCURRENT = 0b01, 0b10


@dataclass
class _Judged:
    """One comparison's state in this partition."""

    comparison: Comparison
    slot: int
    last_seen_ms: list[int | None] = field(default_factory=lambda: [None, None])  # per arm, capture time
    tally: ComparisonTally = field(init=False)

    def __post_init__(self) -> None:
        c = self.comparison
        self.tally = ComparisonTally(c.fingerprint())
        self.recall = c.metric("recall") is not None
        self.precision = c.metric("precision") is not None
        self.error_rate = c.metric("error_rate") is not None
        latency = c.metric("latency_over")
        self.latency_over_ms = None if latency is None else latency.threshold_ms
        self._keys: dict[tuple[str, str, Series], tuple[CellKey, ...]] = {}

    def keys(self, metric: str, kind: str, series: Series) -> tuple[CellKey, ...]:
        """The cells an item of `series` feeds: pooled, then one per judged segment attribute."""
        found = self._keys.get((metric, kind, series))
        if found is None:
            found = self._keys[(metric, kind, series)] = (metric, kind, None, None), *(
                (metric, kind, attribute, value) for attribute, value in series[3] if attribute in self.comparison.segments)
        return found

    def snapshot(self) -> dict[str, Any]:
        return {"fingerprint": self.tally.fingerprint, "endpoint": self.comparison.endpoint, "slot": self.slot,
                "last_seen_ms": list(self.last_seen_ms), "tally": self.tally.to_plain()}


class ComparisonCounter:
    def __init__(self, comparisons: Sequence[Comparison], codec: ElemCodec) -> None:
        self.codec = codec
        self._judged: dict[str, _Judged] = {}
        by_endpoint: dict[str, list[Comparison]] = {}
        for c in comparisons:
            by_endpoint.setdefault(c.endpoint, []).append(c)
        for endpoint, group in by_endpoint.items():
            if len(group) > MAX_PER_ENDPOINT:
                raise ValueError(f"endpoint {endpoint!r} has {len(group)} comparisons; at most {MAX_PER_ENDPOINT}")
            for slot, c in enumerate(group):
                self._judged[c.name] = _Judged(c, slot)
        self._by_endpoint = {ep: [self._judged[c.name] for c in group] for ep, group in by_endpoint.items()}
        self._roles: dict[tuple[Series, bool], tuple[tuple[_Judged, int], ...]] = {}

    @property
    def endpoints(self) -> frozenset[str]:
        return frozenset(self._by_endpoint)

    def tallies(self) -> dict[str, ComparisonTally]:
        return {name: j.tally for name, j in self._judged.items()}

    # -- hooks ------------------------------------------------------------------------------
    def capture(self, cap: Capture, series: Series, now_ms: int) -> int:
        """Count a new capture's error and latency, and return its comparison bits."""
        bits = 0
        for judged, role in self._roles_of(series, cap.shadow):
            seen = judged.last_seen_ms
            mine = seen[role]
            if mine is None or cap.timestamp_ms > mine:
                seen[role] = cap.timestamp_ms
            if role == CANDIDATE and cap.shadow:
                judged.tally.shadow = True
            other = seen[1 - role]
            if other is None or other < cap.timestamp_ms - judged.comparison.concurrent_within_s * 1000:
                bits |= self.codec.with_slot_bits(judged.slot, MEMBER)
                continue
            bits |= self.codec.with_slot_bits(judged.slot, MEMBER | CONCURRENT)
            if judged.error_rate:
                self._add_arm(judged, "error_rate", role, series, 1 if cap.is_error else 0)
            threshold = judged.latency_over_ms
            if threshold is not None and cap.latency_ms is not None:
                self._add_arm(judged, "latency_over", role, series, 1 if cap.latency_ms > threshold else 0)
        return bits

    def changed(self, registry: SeriesRegistry, endpoint: str, old: tuple[int, ...], new: tuple[int, ...]) -> None:
        """A pending id's captures or label changed from `old` to `new`: move the label metrics."""
        for judged in self._by_endpoint.get(endpoint, ()):
            before = self._contribution(judged, registry, old)
            after = self._contribution(judged, registry, new)
            for key in before.keys() | after.keys():
                a, b = after.get(key), before.get(key)
                if a == b:
                    continue
                width = len(a if a is not None else b)  # type: ignore[arg-type]
                a = a or [0] * width
                b = b or [0] * width
                judged.tally.add(key, [x - y for x, y in zip(a, b)])

    # -- internals --------------------------------------------------------------------------
    def _roles_of(self, series: Series, shadow: bool) -> tuple[tuple[_Judged, int], ...]:
        key = (series, shadow)
        roles = self._roles.get(key)
        if roles is None:
            out = []
            for judged in self._by_endpoint.get(series[0], ()):
                c = judged.comparison
                if c.baseline.matches(series[1], series[2], shadow):
                    out.append((judged, BASELINE))
                elif c.candidate.matches(series[1], series[2], shadow):
                    out.append((judged, CANDIDATE))
            roles = self._roles[key] = tuple(out)
        return roles

    def _add_arm(self, judged: _Judged, metric: str, role: int, series: Series, event: int) -> None:
        add = judged.tally.add_arm
        for key in judged.keys(metric, UNPAIRED, series):
            add(key, role, event)

    def _contribution(self, judged: _Judged, registry: SeriesRegistry, elems: tuple[int, ...]) -> dict[CellKey, list[int]]:
        codec = self.codec
        if not elems:
            return {}
        y = codec.label(elems[0])
        if y is None:
            return {}
        out: dict[CellKey, list[int]] = {}
        firsts: list[tuple[int, Series] | None] = [None, None]  # per arm: (prediction, series) for pairing
        for e in elems:
            pred = codec.prediction(e)
            bits = codec.slot_bits(e, judged.slot)
            if pred is None or not bits & MEMBER:
                continue
            series = registry[codec.series_id(e)]
            for j, role in self._roles_of(series, codec.shadow(e)):
                if j is not judged:
                    continue
                if firsts[role] is None:
                    firsts[role] = (pred, series)
                if not bits & CONCURRENT:
                    continue
                if y == 1 and judged.recall:
                    _add(out, judged.keys("recall", UNPAIRED, series), _arm(role, pred, 1))
                if pred == 1 and judged.precision:
                    _add(out, judged.keys("precision", UNPAIRED, series), _arm(role, y, 1))
        base, cand = firsts
        if y == 1 and base is not None and cand is not None and judged.recall:
            pb, pc = base[0], cand[0]
            _add(out, judged.keys("recall", PAIRED, base[1]), [1, int(pb == 1 and pc == 0), int(pc == 1 and pb == 0)])
        return out

    # -- snapshot ---------------------------------------------------------------------------
    def snapshot(self) -> dict[str, Any]:
        return {name: j.snapshot() for name, j in sorted(self._judged.items())}

    def restore(self, data: dict[str, Any]) -> dict[str, set[int]]:
        """Resume the comparisons whose definition and slot are unchanged; the others start
        afresh. Returns, per endpoint, the slots whose bits on pending captures belong to a
        comparison that did not resume: the caller clears them (`JoinState.clear_slot_bits`)."""
        stale: dict[str, set[int]] = {}
        for name, saved in data.items():
            judged = self._judged.get(name)
            if judged is None or saved["fingerprint"] != judged.tally.fingerprint or saved["slot"] != judged.slot:
                stale.setdefault(saved["endpoint"], set()).add(saved["slot"])
                continue
            judged.last_seen_ms = list(saved["last_seen_ms"])
            judged.tally = ComparisonTally.from_plain(saved["tally"])
        return stale


def _arm(role: int, event: int, trial: int) -> list[int]:
    return [event, trial, 0, 0] if role == BASELINE else [0, 0, event, trial]


def _add(out: dict[CellKey, list[int]], keys: Iterable[CellKey], deltas: list[int]) -> None:
    for key in keys:
        cell = out.get(key)
        if cell is None:
            out[key] = list(deltas)
        else:
            for i, d in enumerate(deltas):
                cell[i] += d
