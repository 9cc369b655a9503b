"""The join of captures and labels by (endpoint, inference id), per partition.

Semantics (SPEC.md "Join semantics"):
- one label joins every capture of its (endpoint, inference id): production and shadow alike;
- a label may come first (kept up to `label_wait`), or long after its capture (captures are
  kept up to `label_ttl`, measured from the first capture's arrival);
- an identical repeat is a no-op; a later label (timestamp >= the current one's, ties going
  to the later record) with another value is a correction: every outcome it fed is moved
  (-1 old, +1 new, both stamped at the correcting label's time) rather than added twice;
  an older label is stale and ignored;
- a second capture of the same (endpoint, id, variant) is a duplicate: ignored and counted;
- captures never labelled expire as `Expired`, labels never joined as `OrphanLabels`; what the
  memory cap evicts early is counted as `Evicted` / `OrphanLabels`, never dropped silently.

Memory: a pending capture is one Python int packing series id, prediction, shadow flag, label,
arrival time, capture time and label time (about 44 bytes), stored in a per-endpoint dict
keyed by the inference id (a canonical UUID id as its 16 bytes); an id with several captures
holds a tuple of such ints. bench/memory.py measures the total per pending capture.
Dicts keep insertion (arrival) order, so expiry pops from the front without a scan.
"""
from __future__ import annotations

from dataclasses import dataclass, fields
from typing import Any, Protocol

from pipelines import metrics as m
from pipelines.records import Capture, Label
from pipelines.series import Series, SeriesRegistry, endpoint_series

_PRED_MASK = 0b11  # 0: none (error capture), 1: class 0, 2: class 1
_SHADOW = 1 << 2
_LABEL_SHIFT = 3  # 0: none, 1: class 0, 2: class 1
_SID_SHIFT = 5
_SID_MASK = (1 << 24) - 1
_ARRIVAL_SHIFT = 29  # seconds, 34 bits
_CTS_SHIFT = 63  # capture time in seconds, 34 bits
_LTS_SHIFT = 97  # label time in ms, 44 bits
_S34 = (1 << 34) - 1
_SLOT_SHIFT = 141  # two bits per comparison slot, 4 slots (pipelines.comparison.counter)
_LTS_MASK = (1 << 44) - 1
_LABEL_CLEAR = ~((0b11 << _LABEL_SHIFT) | (_LTS_MASK << _LTS_SHIFT))

# a pending label: class code (2 bits) | arrival seconds << 2 | label time ms << 36
_PL_ARRIVAL_SHIFT = 2
_PL_TS_SHIFT = 36

MAX_SERIES = _SID_MASK + 1

Entry = int | tuple[int, ...]
Key = str | bytes


def _key(inference_id: str) -> Key:
    """A canonical lowercase UUID (the common inference id) is kept as its 16 bytes, which
    saves ~36 bytes per pending join; any other id is kept as it is. Only the exact canonical
    form is converted, so two different id strings never share a key."""
    if len(inference_id) == 36 and inference_id[8] == inference_id[13] == inference_id[18] == inference_id[23] == "-" \
            and inference_id == inference_id.lower():
        try:
            return bytes.fromhex(inference_id.replace("-", ""))
        except ValueError:
            return inference_id
    return inference_id


class Sink(Protocol):
    def count(self, series: Series, ts_ms: int, name: str, delta: int = 1) -> None:
        """Add `delta` to metric `name` of `series` at event time `ts_ms`; must not block."""
        ...


@dataclass
class JoinStats:
    """Counters for /metrics; everything the join ignored or evicted is here."""

    captures: int = 0
    labels: int = 0
    duplicate_captures: int = 0
    repeated_labels: int = 0
    stale_labels: int = 0
    corrections: int = 0
    expired: int = 0
    orphan_labels: int = 0
    evicted_captures: int = 0
    evicted_labels: int = 0

    def as_dict(self) -> dict[str, int]:
        return {f.name: getattr(self, f.name) for f in fields(self)}


@dataclass(frozen=True, slots=True)
class JoinPolicy:
    label_ttl_ms: int = 14 * 86_400_000
    label_wait_ms: int = 86_400_000
    max_pending: int = 5_000_000  # pending captures (by inference id) plus pending labels


def _elements(entry: Entry) -> tuple[int, ...]:
    return entry if isinstance(entry, tuple) else (entry,)


def _entry(elements: tuple[int, ...]) -> Entry:
    return elements[0] if len(elements) == 1 else elements


def _label_of(elem: int) -> tuple[int, int] | None:
    code = (elem >> _LABEL_SHIFT) & 0b11
    return None if code == 0 else (code - 1, (elem >> _LTS_SHIFT) & _LTS_MASK)


def _with_label(elem: int, label: int, ts_ms: int) -> int:
    return (elem & _LABEL_CLEAR) | ((label + 1) << _LABEL_SHIFT) | (ts_ms << _LTS_SHIFT)


def _prediction(elem: int) -> int | None:
    code = elem & _PRED_MASK
    return None if code == 0 else code - 1


class Codec:
    """Reads a pending capture for `pipelines.comparison.counter.ComparisonCounter`."""

    @staticmethod
    def series_id(elem: int) -> int:
        return (elem >> _SID_SHIFT) & _SID_MASK

    @staticmethod
    def prediction(elem: int) -> int | None:
        return _prediction(elem)

    @staticmethod
    def shadow(elem: int) -> bool:
        return bool(elem & _SHADOW)

    @staticmethod
    def label(elem: int) -> int | None:
        code = (elem >> _LABEL_SHIFT) & 0b11
        return None if code == 0 else code - 1

    @staticmethod
    def slot_bits(elem: int, slot: int) -> int:
        """The two bits of comparison `slot`: 1 member (counted while the comparison existed),
        2 concurrent (its other arm was served shortly before)."""
        return (elem >> (_SLOT_SHIFT + 2 * slot)) & 0b11

    @staticmethod
    def with_slot_bits(slot: int, bits: int) -> int:
        return bits << (_SLOT_SHIFT + 2 * slot)


CODEC = Codec()


class Observer(Protocol):
    """Sees every capture and every change of a pending id (the comparison counter)."""

    @property
    def endpoints(self) -> frozenset[str]: ...

    def capture(self, cap: Capture, series: Series, now_ms: int) -> int:
        """Extra bits for the new pending capture."""
        ...

    def changed(self, registry: SeriesRegistry, endpoint: str, old: tuple[int, ...], new: tuple[int, ...]) -> None: ...


class JoinState:
    """Pending joins of one partition. Emits outcome counts to a Sink; owns no clock."""

    def __init__(self, policy: JoinPolicy = JoinPolicy(), registry: SeriesRegistry | None = None) -> None:
        self.observer: Observer | None = None
        self.policy = policy
        self.registry = registry or SeriesRegistry()
        self.stats = JoinStats()
        self._captures: dict[str, dict[Key, Entry]] = {}
        self._labels: dict[str | None, dict[Key, int]] = {}
        self._n_captures = 0
        self._n_labels = 0

    # -- public API -------------------------------------------------------------------------
    @property
    def pending_captures(self) -> int:
        return self._n_captures

    @property
    def pending_labels(self) -> int:
        return self._n_labels

    def add_capture(self, cap: Capture, series: Series, now_ms: int, sink: Sink) -> bool:
        """Join one capture; False if it duplicates one already held (it is then ignored)."""
        sid = self.registry.intern(series)
        if sid > _SID_MASK:
            raise OverflowError(f"more than {MAX_SERIES} series in one partition; lower the segment cap")
        by_id = self._captures.setdefault(cap.endpoint, {})
        key = _key(cap.inference_id)
        old = by_id.get(key)
        elems = _elements(old) if old is not None else ()
        for e in elems:
            if self.registry[(e >> _SID_SHIFT) & _SID_MASK][1] == cap.variant:
                self.stats.duplicate_captures += 1
                return False
        self.stats.captures += 1
        pred = cap.prediction
        elem = (
            (0 if pred is None else pred + 1)
            | (_SHADOW if cap.shadow else 0)
            | (sid << _SID_SHIFT)
            | ((now_ms // 1000) & _S34) << _ARRIVAL_SHIFT
            | ((cap.timestamp_ms // 1000) & _S34) << _CTS_SHIFT
        )
        observer = self.observer if self.observer is not None and cap.endpoint in self.observer.endpoints else None
        if observer is not None:
            elem |= observer.capture(cap, series, now_ms)
        label = _label_of(elems[0]) if elems else self._take_pending_label(cap.endpoint, key)
        if label is not None:
            elem = _with_label(elem, *label)
            if pred is not None:
                self._outcome(series, pred, label[0], label[1], +1, sink)
        self._compare_shadow(elem, cap.timestamp_ms, elems, sink)
        if old is None:
            self._n_captures += 1
        by_id[key] = _entry(elems + (elem,))
        if observer is not None:
            observer.changed(self.registry, cap.endpoint, elems, elems + (elem,))
        self._enforce_cap(now_ms, sink)
        return True

    def add_label(self, label: Label, now_ms: int, sink: Sink) -> None:
        """Join one label with every capture of its id, or keep it until its capture comes."""
        self.stats.labels += 1
        key = _key(label.inference_id)
        endpoints = [label.endpoint] if label.endpoint is not None else list(self._captures)
        for endpoint in endpoints:
            by_id = self._captures.get(endpoint)
            entry = by_id.get(key) if by_id else None
            if entry is not None and by_id is not None:
                elems = _elements(entry)
                by_id[key] = new = self._relabel(elems, label, sink)
                if self.observer is not None and endpoint in self.observer.endpoints:
                    self.observer.changed(self.registry, endpoint, elems, _elements(new))
                return
        self._keep_label(label, key, now_ms, sink)

    def expire(self, now_ms: int, sink: Sink) -> None:
        """Expire captures older than label_ttl and labels older than label_wait (by arrival)."""
        ttl_s = self.policy.label_ttl_ms // 1000
        for by_id in self._captures.values():
            self._pop_front(by_id, (now_ms // 1000) - ttl_s, now_ms, sink, evicting=False)
        wait_s = self.policy.label_wait_ms // 1000
        for endpoint, pending in self._labels.items():
            self._pop_front_labels(endpoint, pending, (now_ms // 1000) - wait_s, now_ms, sink, evicting=False)

    def clear_slot_bits(self, endpoint: str, slots: set[int]) -> None:
        """Forget which pending captures of `endpoint` belonged to these comparison slots (their
        comparison left, or changed definition, across a restart)."""
        mask = 0
        for slot in slots:
            mask |= 0b11 << (_SLOT_SHIFT + 2 * slot)
        by_id = self._captures.get(endpoint)
        if not mask or not by_id:
            return
        keep = ~mask
        for key, entry in by_id.items():
            by_id[key] = _entry(tuple(e & keep for e in _elements(entry)))

    def snapshot(self) -> dict[str, Any]:
        """Immutable-enough state for a checkpoint (shallow copies of dicts of ints/tuples)."""
        return {
            "version": 1,
            "series": self.registry.snapshot(),
            "captures": {ep: dict(d) for ep, d in self._captures.items()},
            "labels": {ep: dict(d) for ep, d in self._labels.items()},
            "stats": self.stats.as_dict(),
        }

    @classmethod
    def restore(cls, data: dict[str, Any], policy: JoinPolicy = JoinPolicy()) -> "JoinState":
        if data.get("version") != 1:
            raise ValueError(f"join snapshot version {data.get('version')!r} is not supported (expected 1)")
        state = cls(policy, SeriesRegistry.restore(data["series"]))
        state._captures = {ep: dict(d) for ep, d in data["captures"].items()}
        state._labels = {ep: dict(d) for ep, d in data["labels"].items()}
        state._n_captures = sum(len(d) for d in state._captures.values())
        state._n_labels = sum(len(d) for d in state._labels.values())
        state.stats = JoinStats(**data.get("stats", {}))
        return state

    # -- internals --------------------------------------------------------------------------
    def _outcome(self, series: Series, pred: int, label: int, ts_ms: int, delta: int, sink: Sink) -> None:
        sink.count(series, ts_ms, m.OUTCOMES[(pred, label)], delta)
        sink.count(series, ts_ms, m.LABELED, delta)

    def _compare_shadow(self, elem: int, ts_ms: int, others: tuple[int, ...], sink: Sink) -> None:
        """Shadow vs production on the same id: counted on the shadow's series, at its time."""
        pred = _prediction(elem)
        if pred is None:
            return
        if elem & _SHADOW:
            prod = next((o for o in others if not o & _SHADOW and _prediction(o) is not None), None)
            if prod is not None:
                self._agree(elem, ts_ms, pred == _prediction(prod), sink)
        elif not any(not o & _SHADOW and _prediction(o) is not None for o in others):
            for o in others:  # only the first production capture is compared
                other_pred = _prediction(o)
                if o & _SHADOW and other_pred is not None:
                    self._agree(o, ((o >> _CTS_SHIFT) & _S34) * 1000, other_pred == pred, sink)

    def _agree(self, shadow_elem: int, ts_ms: int, agree: bool, sink: Sink) -> None:
        series = self.registry[(shadow_elem >> _SID_SHIFT) & _SID_MASK]
        sink.count(series, ts_ms, m.SHADOW_COMPARISONS, 1)
        sink.count(series, ts_ms, m.SHADOW_AGREEMENTS, 1 if agree else 0)

    def _relabel(self, elems: tuple[int, ...], label: Label, sink: Sink) -> Entry:
        current = _label_of(elems[0])
        if current is not None:
            old_value, old_ts = current
            if label.timestamp_ms < old_ts:
                self.stats.stale_labels += 1
                return _entry(elems)
            if label.label == old_value:
                self.stats.repeated_labels += 1
                return _entry(tuple(_with_label(e, old_value, label.timestamp_ms) for e in elems))
            self.stats.corrections += 1
        out = []
        for e in elems:
            pred = _prediction(e)
            if pred is not None:
                series = self.registry[(e >> _SID_SHIFT) & _SID_MASK]
                if current is not None:
                    self._outcome(series, pred, current[0], label.timestamp_ms, -1, sink)
                self._outcome(series, pred, label.label, label.timestamp_ms, +1, sink)
            out.append(_with_label(e, label.label, label.timestamp_ms))
        return _entry(tuple(out))

    def _keep_label(self, label: Label, key: Key, now_ms: int, sink: Sink) -> None:
        pending = self._labels.setdefault(label.endpoint, {})
        old = pending.get(key)
        arrival = (now_ms // 1000) & _S34
        if old is not None:
            old_ts = old >> _PL_TS_SHIFT
            if label.timestamp_ms < old_ts:
                self.stats.stale_labels += 1
                return
            if (old & 0b11) - 1 == label.label:
                self.stats.repeated_labels += 1
            else:
                self.stats.corrections += 1
            arrival = (old >> _PL_ARRIVAL_SHIFT) & _S34
        else:
            self._n_labels += 1
        pending[key] = (label.label + 1) | (arrival << _PL_ARRIVAL_SHIFT) | (label.timestamp_ms << _PL_TS_SHIFT)
        self._enforce_cap(now_ms, sink)

    def _take_pending_label(self, endpoint: str, key: Key) -> tuple[int, int] | None:
        for ep in (endpoint, None):
            pending = self._labels.get(ep)
            if pending:
                packed = pending.pop(key, None)
                if packed is not None:
                    self._n_labels -= 1
                    return (packed & 0b11) - 1, packed >> _PL_TS_SHIFT
        return None

    def _pop_front(self, by_id: dict[Key, Entry], cutoff_s: int, now_ms: int, sink: Sink, *, evicting: bool, limit: int = -1) -> int:
        # one pass from the front: dicts keep arrival order, and popping keys while iterating
        # from the front repeatedly would rescan deleted slots each time
        gone: list[Key] = []
        for inference_id, entry in by_id.items():
            elems = _elements(entry)
            if not evicting and ((elems[0] >> _ARRIVAL_SHIFT) & _S34) > cutoff_s:
                break
            if len(gone) == limit:
                break
            gone.append(inference_id)
            for e in elems:
                if _label_of(e) is None:
                    sink.count(self.registry[(e >> _SID_SHIFT) & _SID_MASK], now_ms, m.EVICTED if evicting else m.EXPIRED, 1)
                    if evicting:
                        self.stats.evicted_captures += 1
                    else:
                        self.stats.expired += 1
        for inference_id in gone:
            del by_id[inference_id]
        self._n_captures -= len(gone)
        return len(gone)

    def _pop_front_labels(self, endpoint: str | None, pending: dict[Key, int], cutoff_s: int, now_ms: int, sink: Sink, *, evicting: bool, limit: int = -1) -> int:
        gone: list[Key] = []
        for inference_id, packed in pending.items():
            if not evicting and ((packed >> _PL_ARRIVAL_SHIFT) & _S34) > cutoff_s:
                break
            if len(gone) == limit:
                break
            gone.append(inference_id)
        for inference_id in gone:
            del pending[inference_id]
        if gone:
            sink.count(endpoint_series(endpoint), now_ms, m.ORPHAN_LABELS, len(gone))
            if evicting:
                self.stats.evicted_labels += len(gone)
            else:
                self.stats.orphan_labels += len(gone)
        self._n_labels -= len(gone)
        return len(gone)

    def _enforce_cap(self, now_ms: int, sink: Sink) -> None:
        excess = self._n_captures + self._n_labels - self.policy.max_pending
        if excess <= 0:
            return
        # evict in batches of ~1 % so the cost of a pass is shared by many records
        todo = max(excess, self.policy.max_pending // 100, 1)
        while todo > 0 and (self._n_captures or self._n_labels):
            oldest = self._oldest_dict()
            if oldest is None:
                break
            kind, key = oldest
            if kind == "c":
                todo -= self._pop_front(self._captures[key], 0, now_ms, sink, evicting=True, limit=todo)  # type: ignore[index]
            else:
                todo -= self._pop_front_labels(key, self._labels[key], 0, now_ms, sink, evicting=True, limit=todo)

    def _oldest_dict(self) -> tuple[str, str | None] | None:
        best: tuple[int, str, str | None] | None = None
        for ep, by_id in self._captures.items():
            if by_id:
                arrival = (_elements(next(iter(by_id.values())))[0] >> _ARRIVAL_SHIFT) & _S34
                if best is None or arrival < best[0]:
                    best = (arrival, "c", ep)
        for lep, pending in self._labels.items():
            if pending:
                arrival = (next(iter(pending.values())) >> _PL_ARRIVAL_SHIFT) & _S34
                if best is None or arrival < best[0]:
                    best = (arrival, "l", lep)
        return None if best is None else (best[1], best[2])
