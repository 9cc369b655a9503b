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
  cap evicts early is counted as `Evicted` / `OrphanLabels`, never dropped silently;
- an endpoint with an implicit label (`JoinPolicy.expiry_labels`, "no dispute means legitimate")
  counts a capture still unlabelled after its delay as that class, stamped then; a real label
  still corrects it (whatever its timestamp) until label_ttl.

State: a pending capture is one int packing series id, prediction, shadow flag, label, arrival
time, capture time, label time, comparison bits and the implicit flag; an id with several
captures holds a tuple of such ints. Where they live is a `pipelines.pending.PendingStore`:
per-endpoint dicts in arrival order (in memory, bench/memory.py measures ~195 bytes each), or
RocksDB on local disk (service/state/), both ordered by arrival so expiry takes the oldest
without a scan.
"""
from __future__ import annotations

from dataclasses import dataclass, field, fields
from typing import Any, Protocol

from collections.abc import Mapping, Sequence

from pipelines import metrics as m
from pipelines.pending import Endpoint, MemoryStore, PendingStore
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
_IMPLICIT = 1 << 149  # the label is the endpoint's implicit one (JoinPolicy.expiry_labels)
_LABEL_CLEAR = ~((0b11 << _LABEL_SHIFT) | (_LTS_MASK << _LTS_SHIFT) | _IMPLICIT)

# a pending label: class code (2 bits) | arrival seconds << 2 | label time ms << 36
_PL_ARRIVAL_SHIFT = 2
_PL_TS_SHIFT = 36

MAX_SERIES = _SID_MASK + 1

Entry = int | tuple[int, ...]
Key = str | bytes
JOIN_SNAPSHOT_VERSION = 2


def _key(inference_id: str) -> Key:
    """A canonical lowercase UUID (the common inference id) is kept as its 16 bytes, which
    saves ~36 bytes per pending join; any other id is kept as it is. Only the exact canonical
    form is converted, so two different id strings never share a key (`bytes.fromhex` skips
    spaces, so a result short of 16 bytes is no UUID)."""
    if len(inference_id) == 36 and inference_id[8] == inference_id[13] == inference_id[18] == inference_id[23] == "-" \
            and inference_id == inference_id.lower():
        try:
            key = bytes.fromhex(inference_id.replace("-", ""))
        except ValueError:
            return inference_id
        return key if len(key) == 16 else inference_id
    return inference_id


class Sink(Protocol):
    """Where outcome counts go. A sink may also have `count_many(series, ts_ms, ((name, delta),
    ...))`, the same as `count` of each in order: the join then makes one call for a pair."""

    def count(self, series: Series, ts_ms: int, name: str, delta: int = 1) -> None:
        """Add `delta` to metric `name` of `series` at event time `ts_ms`; must not block."""
        ...


def _count_all(sink: Sink, series: Series, ts_ms: int, items: tuple[tuple[str, int], ...]) -> None:
    """`sink.count` of each (name, delta) in order, in one call when the sink has `count_many`
    (PartitionPipeline: a label's hot path)."""
    many = getattr(sink, "count_many", None)
    if many is not None:
        many(series, ts_ms, items)
        return
    for name, delta in items:
        sink.count(series, ts_ms, name, delta)


_AGREED = ((m.SHADOW_COMPARISONS, 1), (m.SHADOW_AGREEMENTS, 1))
_DISAGREED = ((m.SHADOW_COMPARISONS, 1), (m.SHADOW_AGREEMENTS, 0))


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
    implicit_labels: int = 0
    implicit_corrections: int = 0

    def as_dict(self) -> dict[str, int]:
        return {f.name: getattr(self, f.name) for f in fields(self)}


@dataclass(frozen=True, slots=True)
class ImplicitLabel:
    """The class an endpoint's unlabelled captures count as: after `after_ms` from their first
    arrival (a real label still corrects it until label_ttl), or at label_ttl when None."""

    label: int
    after_ms: int | None = None


@dataclass(frozen=True, slots=True)
class JoinPolicy:
    label_ttl_ms: int = 14 * 86_400_000
    label_wait_ms: int = 86_400_000
    max_pending: int = 5_000_000  # pending captures (by inference id) plus pending labels
    expiry_labels: Mapping[str, ImplicitLabel] = field(default_factory=dict)


def capture_arrival(entry: Entry) -> int:
    """Arrival second of an id's first capture: its label_ttl counts from there."""
    first = entry[0] if isinstance(entry, tuple) else entry
    return (first >> _ARRIVAL_SHIFT) & _S34


def label_arrival(packed: int) -> int:
    return (packed >> _PL_ARRIVAL_SHIFT) & _S34


def memory_store() -> MemoryStore:
    return MemoryStore(capture_arrival, label_arrival)


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

    def __init__(self, policy: JoinPolicy = JoinPolicy(), registry: SeriesRegistry | None = None,
                 store: PendingStore | None = None) -> None:
        self.observer: Observer | None = None
        self.policy = policy
        self.registry = registry or SeriesRegistry()
        self.stats = JoinStats()
        self.store = store if store is not None else memory_store()
        self._captures = self.store.captures
        self._labels = self.store.labels
        # per endpoint with a delayed implicit label: arrival second up to which it is applied
        self.implicit_upto: dict[str, int] = {}
        self._keys: dict[str, Key] = {}  # the last `prefetch`'s keys (a pure function of the id)

    # -- public API -------------------------------------------------------------------------
    @property
    def pending_captures(self) -> int:
        return len(self._captures)

    @property
    def pending_labels(self) -> int:
        return len(self._labels)

    def add_capture(self, cap: Capture, series: Series, now_ms: int, sink: Sink) -> bool:
        """Join one capture; False if it duplicates one already held (it is then ignored)."""
        sid = self.registry.intern(series)
        if sid > _SID_MASK:
            raise OverflowError(f"more than {MAX_SERIES} series in one partition; lower the segment cap")
        key = self._keys.get(cap.inference_id) or _key(cap.inference_id)
        old = self._captures.get(cap.endpoint, key)
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
            elem = _with_label(elem, *label) | (elems[0] & _IMPLICIT if elems else 0)
            if pred is not None:
                self._outcome(series, pred, label[0], label[1], +1, sink)
        self._compare_shadow(elem, cap.timestamp_ms, elems, sink)
        if old is None:
            self._captures.add(cap.endpoint, key, elem)
        else:
            self._captures.replace(cap.endpoint, key, elems + (elem,))
        if observer is not None:
            observer.changed(self.registry, cap.endpoint, elems, elems + (elem,))
        self._enforce_cap(now_ms, sink)
        return True

    def prefetch(self, captures: Sequence[Capture], labels: Sequence[Label]) -> None:
        """Tell the store which ids the next `add_capture` and `add_label` calls will look up,
        before they come (a store on disk then reads them in one go instead of one by one).
        The keys are made only for a store that reads them (not an inline, in-memory one), and
        are kept for those calls; a label's possible early arrival is read only if some label waits."""
        if self.store.inline:  # a memory store has nothing to read ahead
            self._keys = {}
            return
        keys = self._keys = {iid: _key(iid) for iid in [c.inference_id for c in captures]
                             + [lab.inference_id for lab in labels]}
        capture_keys: list[tuple[Endpoint, Key]] = [(c.endpoint, keys[c.inference_id]) for c in captures]
        if labels:
            held = self._captures.endpoints() if any(lab.endpoint is None for lab in labels) else []
            capture_keys += [(ep, keys[lab.inference_id]) for lab in labels
                             for ep in ([lab.endpoint] if lab.endpoint is not None else held)]
        # a label that came first, for its endpoint or for none
        label_keys = [(ep, keys[c.inference_id]) for c in captures for ep in (c.endpoint, None)] \
            if captures and len(self._labels) else []
        self.store.prefetch(capture_keys, label_keys)

    def add_label(self, label: Label, now_ms: int, sink: Sink) -> None:
        """Join one label with every capture of its id, or keep it until its capture comes."""
        self.stats.labels += 1
        key = self._keys.get(label.inference_id) or _key(label.inference_id)
        endpoints = [label.endpoint] if label.endpoint is not None else self._captures.endpoints()
        for endpoint in endpoints:
            entry = self._captures.get(endpoint, key)
            if entry is not None and endpoint is not None:
                elems = _elements(entry)
                new = self._relabel(elems, label, sink)
                if new != entry:
                    self._captures.replace(endpoint, key, new)
                if self.observer is not None and endpoint in self.observer.endpoints:
                    self.observer.changed(self.registry, endpoint, elems, _elements(new))
                return
        self._keep_label(label, key, now_ms, sink)

    def expire(self, now_ms: int, sink: Sink) -> None:
        """Apply delayed implicit labels, then expire captures older than label_ttl and labels
        older than label_wait (by arrival)."""
        now_s = now_ms // 1000
        implicit = self.policy.expiry_labels
        for endpoint, rule in implicit.items():
            if rule.after_ms is not None:
                self._apply_implicit(endpoint, rule, now_s - rule.after_ms // 1000, now_ms, sink)
        cutoff = now_s - self.policy.label_ttl_ms // 1000
        for cep in self._captures.endpoints():
            gone = self._captures.pop_oldest(cep, cutoff)
            if gone:
                self._gone(cep, gone, now_ms, sink, evicting=False, implicit=implicit.get(cep or ""))
        wait_cutoff = now_s - self.policy.label_wait_ms // 1000
        for lep in self._labels.endpoints():
            self._gone_labels(lep, len(self._labels.pop_oldest(lep, wait_cutoff)), now_ms, sink, evicting=False)

    def clear_slot_bits(self, endpoint: str, slots: set[int]) -> None:
        """Forget which pending captures of `endpoint` belonged to these comparison slots (their
        comparison left, or changed definition, across a restart)."""
        mask = 0
        for slot in slots:
            mask |= 0b11 << (_SLOT_SHIFT + 2 * slot)
        if not mask or endpoint not in self._captures.endpoints():
            return
        keep = ~mask
        self._captures.rewrite(endpoint, lambda entry: _entry(tuple(e & keep for e in _elements(entry))))

    def snapshot(self) -> dict[str, Any]:
        """Immutable-enough state for a checkpoint (shallow copies of dicts of ints/tuples); the
        pending entries only when the store is inline (else the store ships them itself)."""
        inline = self.store.inline
        return {
            "version": JOIN_SNAPSHOT_VERSION,
            "series": self.registry.snapshot(),
            "captures": _inline(self._captures) if inline else {},
            "labels": _inline(self._labels) if inline else {},
            "stats": self.stats.as_dict(),
            "implicit": dict(self.implicit_upto),
        }

    @classmethod
    def restore(cls, data: dict[str, Any], policy: JoinPolicy = JoinPolicy(),
                store: PendingStore | None = None) -> "JoinState":
        """Resume from a snapshot; `store` (else a new memory store) receives the snapshot's inline
        entries, so a memory checkpoint also moves into a disk store."""
        if data.get("version") not in (1, JOIN_SNAPSHOT_VERSION):
            raise ValueError(f"join snapshot version {data.get('version')!r} is not supported (expected {JOIN_SNAPSHOT_VERSION})")
        state = cls(policy, SeriesRegistry.restore(data["series"]), store)
        for table, inline in ((state._captures, data["captures"]), (state._labels, data["labels"])):
            load = getattr(table, "load", None)
            if load is not None and not len(table):
                load(inline)
                continue
            for ep, entries in inline.items():
                for key, value in entries.items():
                    table.add(ep, key, value)
        state.stats = JoinStats(**data.get("stats", {}))
        state.implicit_upto = dict(data.get("implicit") or {})
        return state

    # -- internals --------------------------------------------------------------------------
    def _outcome(self, series: Series, pred: int, label: int, ts_ms: int, delta: int, sink: Sink) -> None:
        _count_all(sink, series, ts_ms, ((m.OUTCOMES[(pred, label)], delta), (m.LABELED, delta)))

    def _compare_shadow(self, elem: int, ts_ms: int, others: tuple[int, ...], sink: Sink) -> None:
        """Shadow vs production on the same id: counted on the shadow's series, at its time."""
        pred = _prediction(elem)
        if pred is None or not others:
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
        _count_all(sink, self.registry[(shadow_elem >> _SID_SHIFT) & _SID_MASK], ts_ms, _AGREED if agree else _DISAGREED)

    def _relabel(self, elems: tuple[int, ...], label: Label, sink: Sink) -> Entry:
        current = _label_of(elems[0])
        if current is not None:
            old_value, old_ts = current
            implicit = bool(elems[0] & _IMPLICIT)  # any real label beats the implicit one
            if label.timestamp_ms < old_ts and not implicit:
                self.stats.stale_labels += 1
                return _entry(elems)
            if label.label == old_value:
                if not implicit:
                    self.stats.repeated_labels += 1
                return _entry(tuple(_with_label(e, old_value, label.timestamp_ms) for e in elems))
            self.stats.corrections += 1
            if implicit:
                self.stats.implicit_corrections += 1
        return self._labelled(elems, label.label, label.timestamp_ms, current, sink)

    def _labelled(self, elems: tuple[int, ...], value: int, ts_ms: int, current: tuple[int, int] | None,
                  sink: Sink, flag: int = 0) -> Entry:
        """`elems` labelled `value` at `ts_ms`, every outcome counted (and `current`'s moved)."""
        out = []
        for e in elems:
            pred = _prediction(e)
            if pred is not None:
                series = self.registry[(e >> _SID_SHIFT) & _SID_MASK]
                if current is not None:
                    self._outcome(series, pred, current[0], ts_ms, -1, sink)
                self._outcome(series, pred, value, ts_ms, +1, sink)
            out.append(_with_label(e, value, ts_ms) | flag)
        return _entry(tuple(out))

    def _apply_implicit(self, endpoint: str, rule: ImplicitLabel, upto_s: int, now_ms: int, sink: Sink) -> None:
        """Captures of `endpoint` unlabelled `rule.after_ms` after their first arrival count as
        `rule.label` from now on; the cursor makes each tick look at newly due ones only."""
        after_s = self.implicit_upto.get(endpoint, -1)
        if upto_s <= after_s:
            return
        observer = self.observer if self.observer is not None and endpoint in self.observer.endpoints else None
        for key, entry in self._captures.scan(endpoint, after_s, upto_s):
            elems = _elements(entry)
            if _label_of(elems[0]) is not None:
                continue
            new = self._labelled(elems, rule.label, now_ms, None, sink, _IMPLICIT)
            self.stats.implicit_labels += 1
            self._captures.replace(endpoint, key, new)
            if observer is not None:
                observer.changed(self.registry, endpoint, elems, _elements(new))
        self.implicit_upto[endpoint] = upto_s

    def _gone(self, endpoint: Endpoint, gone: list[tuple[Key, Entry]], now_ms: int, sink: Sink, *,
              evicting: bool, implicit: ImplicitLabel | None = None) -> None:
        """Count captures that left: unlabelled ones as Evicted, or Expired, or (an endpoint with
        an implicit label reaching label_ttl) as that class, stamped now."""
        observer = self.observer if self.observer is not None and endpoint in self.observer.endpoints else None
        for _, entry in gone:
            elems = _elements(entry)
            if _label_of(elems[0]) is not None:
                continue
            if implicit is not None and not evicting:
                new = self._labelled(elems, implicit.label, now_ms, None, sink, _IMPLICIT)
                self.stats.implicit_labels += 1
                if observer is not None and endpoint is not None:
                    observer.changed(self.registry, endpoint, elems, _elements(new))
                continue
            for e in elems:
                sink.count(self.registry[(e >> _SID_SHIFT) & _SID_MASK], now_ms, m.EVICTED if evicting else m.EXPIRED, 1)
            if evicting:
                self.stats.evicted_captures += len(elems)
            else:
                self.stats.expired += len(elems)

    def _gone_labels(self, endpoint: Endpoint, n: int, now_ms: int, sink: Sink, *, evicting: bool) -> None:
        if not n:
            return
        sink.count(endpoint_series(endpoint), now_ms, m.ORPHAN_LABELS, n)
        if evicting:
            self.stats.evicted_labels += n
        else:
            self.stats.orphan_labels += n

    def _keep_label(self, label: Label, key: Key, now_ms: int, sink: Sink) -> None:
        old = self._labels.get(label.endpoint, key)
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
        packed = (label.label + 1) | (arrival << _PL_ARRIVAL_SHIFT) | (label.timestamp_ms << _PL_TS_SHIFT)
        if old is None:
            self._labels.add(label.endpoint, key, packed)
        elif packed != old:
            self._labels.replace(label.endpoint, key, packed)
        self._enforce_cap(now_ms, sink)

    def _take_pending_label(self, endpoint: str, key: Key) -> tuple[int, int] | None:
        for ep in (endpoint, None):
            packed = self._labels.remove(ep, key)
            if packed is not None:
                return (packed & 0b11) - 1, packed >> _PL_TS_SHIFT
        return None

    def _enforce_cap(self, now_ms: int, sink: Sink) -> None:
        excess = len(self._captures) + len(self._labels) - self.policy.max_pending
        if excess <= 0:
            return
        # evict in batches of ~1 % so the cost of a pass is shared by many records
        todo = max(excess, self.policy.max_pending // 100, 1)
        while todo > 0 and (len(self._captures) or len(self._labels)):
            oldest = self._oldest_table()
            if oldest is None:
                break
            kind, ep = oldest
            if kind == "c":
                gone = self._captures.pop_oldest(ep, None, todo)
                self._gone(ep, gone, now_ms, sink, evicting=True)
                todo -= len(gone)
            else:
                n = len(self._labels.pop_oldest(ep, None, todo))
                self._gone_labels(ep, n, now_ms, sink, evicting=True)
                todo -= n

    def _oldest_table(self) -> tuple[str, Endpoint] | None:
        best: tuple[int, str, Endpoint] | None = None
        for kind, table in (("c", self._captures), ("l", self._labels)):
            for ep in table.endpoints():
                arrival = table.oldest_s(ep)
                if arrival is not None and (best is None or arrival < best[0]):
                    best = (arrival, kind, ep)
        return None if best is None else (best[1], best[2])


def _inline(table: Any) -> dict[Endpoint, dict[Key, Any]]:
    return {ep: dict(d) for ep, d in table.by_endpoint.items()}
