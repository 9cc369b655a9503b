"""A partition's pending joins in RocksDB on local disk (`pipelines.pending.PendingStore`).

Every change goes to an in-memory front (each key's latest value, None for gone; for reads) and
its time-index entries to a WriteBatch. During a tick, each time the front holds `STREAM_KEYS`
keys and no background job is in flight, both are handed to the background thread, which adds
the front's values to the batch (encoded once per key, however often it changed) and writes it:
RocksDB then holds changes newer than the last checkpoint, which is safe because local files are
a cache (a partition always restores from the state location). `commit` hands over the remainder: one
write of it, then a RocksDB checkpoint shipped to the state location (service/state/ship.py),
then `finish` writes the partition's checkpoint file. Nothing is handed over while a job is in
flight, and jobs of one store run one at a time, so no write reaches RocksDB between the
commit's write and its snapshot: the shipped snapshot is exactly the state at the tick that
committed, whatever the loop does meanwhile. Reads look at the front, then at the batch in
flight, then at RocksDB (whose answers for a poll batch's ids are read ahead in one MultiGet).

The front is also the cache of the hottest keys: a shadow capture or a duplicate finds its id
there. Later labels find it in RocksDB, where bloom filters (the memtables' too) answer most
misses without a search. Expiry, eviction and implicit labels seek the time index
(service/state/keys.py) and read only what is due; they wait for a write in flight first.
"""
from __future__ import annotations

import threading
import time
from collections.abc import Callable, Iterable
from concurrent.futures import Executor, Future
from pathlib import Path
from typing import Any, Generic, Protocol, TypeVar

from rocksdict import (BlockBasedOptions, Cache, DBCompressionType, Options, ReadOptions, Rdict, WriteBatch,
                       WriteOptions)

from pipelines.pending import Endpoint, Key
from service.state import keys as k
from service.state.manifest import MAX_ENDPOINTS, StoredFile, StoreSection

V = TypeVar("V")
_MISSING = object()
_REWRITE_CHUNK = 100_000
# what makes a hand-off during a tick: the front is also the read cache of the latest keys (labels
# soon after their capture, shadows), small enough that a commit finds little left to write
# (bench/README.md: 50,000 against 10,000 took the disk store from 56-67 % to 83-99 % of the memory
# store's throughput, the tick checkpoint after 1.2 M events from 0.15-0.37 s to 0.56-0.65 s)
STREAM_KEYS = 50_000  # keys in the front (1-3 batch operations each, ~150 bytes)


def _ranged(upper: bytes) -> ReadOptions:
    opts = ReadOptions()
    opts.set_iterate_upper_bound(upper)
    return opts


def db_options(cache: Cache) -> Options:
    opt = Options(raw_mode=True)
    opt.create_if_missing(True)
    table = BlockBasedOptions()
    table.set_bloom_filter(10, False)  # most capture lookups miss: the filter answers them
    table.set_block_cache(cache)  # one cache for all partitions of the process
    table.set_cache_index_and_filter_blocks(True)  # so they count against the cache, not RSS
    table.set_pin_l0_filter_and_index_blocks_in_cache(True)
    table.set_block_size(8 * 1024)
    opt.set_block_based_table_factory(table)
    opt.set_compression_type(DBCompressionType.lz4())
    opt.set_bottommost_compression_type(DBCompressionType.zstd())
    opt.set_level_compaction_dynamic_level_bytes(True)  # space amplification ~1.1x
    # changes stream in during the tick: a small memtable flushes in the background meanwhile, so
    # the commit flushes at most one (with a 10,000-key front, a tick checkpoint after 1.2 M events
    # took 0.2-0.4 s with 32 MB, 0.6-0.7 s with 128 MB; bench/README.md). The skiplist memtable
    # costs more per insert than a hash-bucketed one but its flush is ~10x cheaper
    opt.set_write_buffer_size(32 << 20)
    # a bloom filter per memtable: a miss (every new id) then skips the skiplist search, which at a
    # million entries costs more than the rest of the lookup (3.8 -> 0.7 us, bench/README.md)
    opt.set_memtable_prefix_bloom_ratio(0.05)
    opt.set_memtable_whole_key_filtering(True)
    opt.set_max_write_buffer_number(4)
    opt.set_target_file_size_base(64 << 20)
    opt.set_max_background_jobs(2)
    opt.set_max_manifest_file_size(4 << 20)  # shipped at every checkpoint: keep it small
    opt.set_keep_log_file_num(2)
    return opt


class DiskTable(Generic[V]):
    """One kind of pending entry (captures or labels) in a DiskStore."""

    def __init__(self, store: "DiskStore", kind: bytes, time_kind: bytes, arrival: Callable[[V], int], count: int) -> None:
        self.store, self.kind, self.time_kind, self.arrival = store, kind, time_kind, arrival
        self._n = count
        # keys added since the last hand-off (not in RocksDB yet), per endpoint id, in arrival order
        self._fresh: dict[bytes, dict[bytes, int]] = {}
        # per endpoint id: the last index key taken out since the last hand-off (seek past it)
        self._taken: dict[bytes, bytes] = {}
        self._last: tuple[Any, Any, tuple[bytes, bytes, bytes]] = (None, None, (b"", b"", b""))
        self._prefixes: dict[Endpoint, tuple[bytes, bytes]] = {}

    def __len__(self) -> int:
        return self._n

    def endpoints(self) -> list[Endpoint]:
        return self.store.endpoint_names(self.kind == k.LABEL)

    def _prefix(self, endpoint: Endpoint, create: bool) -> tuple[bytes, bytes] | None:
        """(kind + endpoint id, endpoint id) of an endpoint not in `_prefixes` yet, which then
        keeps it (ids never change); None if it has no id (nothing of it is held)."""
        ep = self.store.endpoint_id(endpoint, create)
        if ep is None:
            return None
        pre = self._prefixes[endpoint] = (self.kind + ep, ep)
        return pre

    def _primary(self, endpoint: Endpoint, key: Key, create: bool = False) -> tuple[bytes, bytes, bytes] | None:
        last = self._last
        if last[0] is key and last[1] == endpoint:  # the join reads a key, then writes it
            return last[2]
        pre = self._prefixes.get(endpoint) or self._prefix(endpoint, create)
        if pre is None:
            return None
        ident = (b"\x01" + key) if key.__class__ is bytes else k.id_bytes(key)  # type: ignore[operator]
        where = pre[0] + ident, pre[1], ident
        self._last = (key, endpoint, where)
        return where

    def _value(self, pk: bytes) -> Any:
        store = self.store
        v = store.front.get(pk, _MISSING)
        if v is _MISSING:
            # a key read ahead is in none of the dicts below (`wanted`), and only the front can
            # have changed since (a hand-off drops the read-ahead)
            raw = store.prefetched.get(pk, _MISSING)
            if raw is _MISSING:
                v = store.inflight.get(pk, _MISSING)
                if v is not _MISSING:
                    return v
                raw = store.db.get(pk)
            v = None if raw is None else k.decode_value(raw)
        return v

    def wanted(self, keys: Iterable[tuple[Endpoint, Key]], out: list[bytes]) -> None:
        """Append to `out` the primary keys of `keys` that only RocksDB can answer (`prefetch`)."""
        if not self._n:
            return
        store, prefixes = self.store, self._prefixes
        front, inflight = store.front, store.inflight
        for endpoint, key in keys:
            pre = prefixes.get(endpoint) or self._prefix(endpoint, False)
            if pre is None:
                continue
            pk = pre[0] + ((b"\x01" + key) if key.__class__ is bytes else k.id_bytes(key))  # type: ignore[operator]
            if pk not in front and pk not in inflight:
                out.append(pk)

    def get(self, endpoint: Endpoint, key: Key) -> V | None:
        if not self._n:  # nothing held anywhere (pending labels often): no lookup
            return None
        where = self._primary(endpoint, key)
        return None if where is None else self._value(where[0])

    def add(self, endpoint: Endpoint, key: Key, value: V) -> None:
        pk, ep, ident = self._primary(endpoint, key, create=True)  # type: ignore[misc]
        arrival = self.arrival(value)
        store = self.store
        store.front[pk] = value
        store.batch.put(k.time_key(self.time_kind, ep, arrival, ident), b"")
        store.changed = True
        self._fresh.setdefault(ep, {})[pk] = arrival
        self._n += 1
        store.stream_if_full()

    def replace(self, endpoint: Endpoint, key: Key, value: V) -> None:
        self._set(self._primary(endpoint, key, create=True)[0], value)  # type: ignore[index]
        self.store.stream_if_full()

    def _set(self, pk: bytes, value: V) -> None:
        store = self.store
        store.front[pk] = value
        store.changed = True

    def _drop(self, pk: bytes, ep: bytes, value: V) -> None:
        store = self.store
        store.front[pk] = None
        store.changed = True
        store.batch.delete(k.time_key(self.time_kind, ep, self.arrival(value), pk[3:]))
        fresh = self._fresh.get(ep)
        if fresh:
            fresh.pop(pk, None)
        self._n -= 1

    def remove(self, endpoint: Endpoint, key: Key) -> V | None:
        if not self._n:
            return None
        where = self._primary(endpoint, key)
        if where is None:
            return None
        value = self._value(where[0])
        if value is not None:
            self._drop(where[0], where[1], value)
            self.store.stream_if_full()
        return value

    def _due(self, ep: bytes, after_s: int, upto_s: int | None, skip_taken: bool) -> Any:
        """(primary key, index key or None, value or None) of `ep` in arrival order within
        (after_s, upto_s]: RocksDB's index first (older), then what was added since the last
        hand-off. The value is None for an entry taken out (or re-added) since then. Nothing is
        handed off while this runs (only add, replace and remove hand off)."""
        self.store.settle()
        lower = k.time_bound(self.time_kind, ep, after_s + 1)
        taken = self._taken.get(ep) if skip_taken else None
        if taken is not None and taken >= lower:
            lower = taken + b"\x00"
        upper = k.time_bound(self.time_kind, ep, upto_s + 1) if upto_s is not None else k.time_bound(
            self.time_kind, ep, (1 << 40) - 1)
        opts = _ranged(upper)
        arrival = self.arrival
        for tk in self.store.db.keys(from_key=lower, read_opt=opts):
            assert isinstance(tk, bytes)  # raw mode
            pk = k.primary_of(self.kind, tk)
            value = self._value(pk)
            yield pk, tk, (value if value is not None and arrival(value) == k.arrival_of(tk) else None)
        for pk, at in list((self._fresh.get(ep) or {}).items()):
            if at > after_s and (upto_s is None or at <= upto_s):
                yield pk, None, self._value(pk)

    def pop_oldest(self, endpoint: Endpoint, upto_s: int | None, limit: int = -1) -> list[tuple[Key, V]]:
        ep = self.store.endpoint_id(endpoint)
        if ep is None:
            return []
        gone: list[tuple[Key, V]] = []
        for pk, tk, value in self._due(ep, -1, upto_s, skip_taken=True):
            if len(gone) == limit:
                break
            if tk is not None:
                self._taken[ep] = tk
            if value is not None:
                gone.append((k.inference_id(pk), value))
                self._drop(pk, ep, value)
        return gone

    def scan(self, endpoint: Endpoint, after_s: int, upto_s: int) -> list[tuple[Key, V]]:
        ep = self.store.endpoint_id(endpoint)
        if ep is None:
            return []
        return [(k.inference_id(pk), value) for pk, _, value in self._due(ep, after_s, upto_s, skip_taken=False)
                if value is not None]

    def oldest_s(self, endpoint: Endpoint) -> int | None:
        ep = self.store.endpoint_id(endpoint)
        if ep is None:
            return None
        for _, tk, value in self._due(ep, -1, None, skip_taken=True):
            if value is not None:
                return self.arrival(value)
            if tk is not None:
                self._taken[ep] = tk
        return None

    def rewrite(self, endpoint: Endpoint, fn: Callable[[V], V]) -> None:
        """Straight into RocksDB in chunks (a rewrite of millions of entries must not sit in the
        front); the front's own values are rewritten where they are."""
        ep = self.store.endpoint_id(endpoint)
        if ep is None:
            return
        store = self.store
        store.settle()
        store.prefetched = {}  # written straight into RocksDB below
        prefix = self.kind + ep
        for pk in [pk for pk in store.front if pk.startswith(prefix)]:
            if store.front[pk] is not None:
                self._set(pk, fn(store.front[pk]))
        opts = _ranged(self.kind + (int.from_bytes(ep, "big") + 1).to_bytes(2, "big"))
        store.changed = True
        batch = WriteBatch(raw_mode=True)
        for key, raw in store.db.items(from_key=prefix, read_opt=opts):
            assert isinstance(key, bytes) and isinstance(raw, bytes)  # raw mode
            if key in store.front:
                continue
            batch.put(key, k.encode_value(fn(k.decode_value(raw))))  # type: ignore[arg-type]
            if batch.len() >= _REWRITE_CHUNK:
                store.db.write(batch)
                batch = WriteBatch(raw_mode=True)
        store.db.write(batch)

    def handed_off(self) -> None:
        """The front went to the background thread: once it is written (`_due` settles first),
        RocksDB's index holds what `_fresh` and `_taken` kept track of."""
        self._fresh.clear()
        self._taken.clear()


class Shipper(Protocol):
    def ship(self, db: Rdict) -> tuple[str, tuple[StoredFile, ...]]:
        """A consistent snapshot of `db` in the state location: (CURRENT's MANIFEST, its files)."""
        ...

    def shipped(self, section: StoreSection) -> None:
        """The checkpoint naming `section` is written: files no longer named may go."""
        ...


class DiskStore:
    """Both tables of one partition in one RocksDB; changes reach it only through `commit`."""

    inline = False

    def __init__(self, path: Path, *, lineage: str, section: StoreSection | None, cache: Cache, executor: Executor,
                 capture_arrival: Callable[[Any], int], label_arrival: Callable[[int], int], shipper: Shipper,
                 stream_keys: int = STREAM_KEYS) -> None:
        self.path, self.lineage, self._executor, self.shipper = path, lineage, executor, shipper
        self.stream_keys = stream_keys  # front keys that make a hand-off during a tick
        self.changed = section is None  # since the last shipped snapshot
        self.broken: str | None = None  # RocksDB refused a write: this store cannot be trusted
        self.db = Rdict(str(path), db_options(cache))
        write = WriteOptions()
        write.disable_wal = True  # type: ignore[method-assign, assignment]  # a property (the stub says method); durability is the shipped checkpoint
        self.db.set_write_options(write)
        self.sequence = section.sequence if section is not None else 0
        self._names: list[str | None] = list(section.endpoints) if section is not None else []
        self._ids: dict[str | None, bytes] = {name: k.endpoint_bytes(i) for i, name in enumerate(self._names)}
        self._ids[None] = k.endpoint_bytes(k.NO_ENDPOINT)
        self.front: dict[bytes, Any] = {}
        self.inflight: dict[bytes, Any] = {}
        self.prefetched: dict[bytes, bytes | None] = {}  # raw RocksDB answers (`prefetch`)
        self.batch = WriteBatch(raw_mode=True)
        self._job: Future[Any] | None = None  # a write (None) or a commit (StoreSection)
        self._lock = threading.Lock()
        self.captures: DiskTable[int | tuple[int, ...]] = DiskTable(
            self, k.CAPTURE, k.CAPTURE_TIME, capture_arrival, section.captures if section else 0)
        self.labels: DiskTable[int] = DiskTable(self, k.LABEL, k.LABEL_TIME, label_arrival, section.labels if section else 0)
        self.last_section = section
        self.last_commit_s = 0.0  # wall time of the last background commit (write, ship, finish)

    # -- endpoint ids ---------------------------------------------------------------------
    def endpoint_id(self, endpoint: Endpoint, create: bool = False) -> bytes | None:
        ep = self._ids.get(endpoint)
        if ep is None and create:
            if len(self._names) >= MAX_ENDPOINTS:
                raise OverflowError(f"more than {MAX_ENDPOINTS} endpoints in one partition's store")
            ep = self._ids[endpoint] = k.endpoint_bytes(len(self._names))
            self._names.append(endpoint)
        return ep

    def endpoint_names(self, with_none: bool) -> list[Endpoint]:
        names: list[Endpoint] = list(self._names)
        return names + [None] if with_none else names

    # -- hand-offs and commits ---------------------------------------------------------------
    def settle(self) -> None:
        """Wait for the job in flight, a write or a commit (a commit's failure is the daemon's
        to report, via its future; a write's makes the store `broken`)."""
        job = self._job
        if job is not None:
            try:
                job.result()
            except Exception:  # noqa: BLE001 - reported by whoever holds the future
                pass

    def prefetch(self, captures: Iterable[tuple[Endpoint, Key]], labels: Iterable[tuple[Endpoint, Key]]) -> None:
        """Read the keys a poll batch is about to look up in one RocksDB MultiGet (about half the
        cost of a point read each), keeping the raw answers until the next prefetch or hand-off.

        Only keys neither the front nor the in-flight write holds are read: anything else has no
        change RocksDB lacks, so the answer stays right until the next hand-off (where a change
        made since, held in the front, moves to the in-flight write and then into RocksDB)."""
        pks: list[bytes] = []
        self.captures.wanted(captures, pks)
        self.labels.wanted(labels, pks)
        if pks:
            pks = list(dict.fromkeys(pks))  # a shadow capture's id is its production capture's
            self.prefetched = dict(zip(pks, self.db.get(pks)))  # type: ignore[arg-type]  # the stub: one key or a list
        else:
            self.prefetched = {}

    def _hand_off(self) -> WriteBatch:
        self.prefetched = {}
        batch, self.batch = self.batch, WriteBatch(raw_mode=True)
        self.inflight, self.front = self.front, {}
        self.captures.handed_off()
        self.labels.handed_off()
        return batch

    def stream_if_full(self) -> None:
        """`stream` once the front holds `stream_keys` keys (after each change)."""
        if len(self.front) >= self.stream_keys:
            self.stream()

    def stream(self) -> None:
        """Hand the front to the background thread to be written, unless a job is in flight
        (the front then grows until it is done): must not block."""
        job = self._job
        if (job is not None and not job.done()) or self.broken is not None:
            return
        batch = self._hand_off()
        self._job = self._executor.submit(self._write, batch, self.inflight)

    def _write(self, batch: WriteBatch, values: dict[bytes, Any]) -> None:
        """Write the time index's changes in `batch` and the handed-off front's `values` (each
        key's last value, None for gone: a key changed three times in a tick is encoded once)."""
        with self._lock:
            try:
                for pk, value in values.items():
                    if value is None:
                        batch.delete(pk)
                    else:
                        batch.put(pk, k.encode_value(value))
                # rocksdict holds the GIL through a write (0.3.29; only a MultiGet, flush and
                # compaction release it): the loop waits meanwhile (bench/README.md, "fourth look")
                self.db.write(batch)
            except Exception as ex:
                self.broken = f"the local store {self.path} refused a write: {type(ex).__name__}: {ex}"
                raise
            self.inflight = {}

    def commit(self, finish: Callable[[StoreSection], None]) -> Future[StoreSection]:
        """Hand every change not yet written to the background thread: one write, a shipped
        snapshot, then `finish(section)` (the partition's checkpoint file). Blocks only while a
        write handed off during the tick is still running (milliseconds)."""
        self.settle()
        if self.broken is not None:
            failed: Future[StoreSection] = Future()
            failed.set_exception(RuntimeError(self.broken))
            return failed
        batch = self._hand_off()
        counts = (len(self.captures), len(self.labels))
        names = tuple(n for n in self._names if n is not None)
        self.sequence += 1
        changed, self.changed = self.changed, False
        job = self._executor.submit(self._run, batch, self.inflight, self.sequence, names, counts, changed, finish)
        self._job = job
        return job

    def _run(self, batch: WriteBatch, values: dict[bytes, Any], sequence: int, names: tuple[str, ...],
             counts: tuple[int, int], changed: bool, finish: Callable[[StoreSection], None]) -> StoreSection:
        started = time.perf_counter()
        if batch.len() or values:
            self._write(batch, values)
        with self._lock:
            last = self.last_section
            try:
                if changed or last is None:
                    current, files = self.shipper.ship(self.db)
                else:  # nothing changed: the files shipped last time still hold this state
                    current, files = last.current, last.files
                section = StoreSection(self.lineage, sequence, names, counts[0], counts[1], current, files)
                finish(section)
            except BaseException:
                self.changed = True  # what RocksDB holds now is in no checkpoint yet: ship it next time
                raise
            self.last_section = section
            self.shipper.shipped(section)
        self.last_commit_s = time.perf_counter() - started
        return section

    def close(self) -> None:
        self.settle()
        self.db.close()
