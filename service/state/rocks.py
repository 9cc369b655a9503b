"""A partition's pending joins in RocksDB on local disk (`pipelines.pending.PendingStore`).

Between checkpoints every change goes to an in-memory front (the values, for reads) and to a
WriteBatch (the bytes); RocksDB itself is changed only by `commit`, which hands both to a
background thread: one atomic write of the batch, then a RocksDB checkpoint shipped to the state
location (service/state/ship.py), then `finish` writes the partition's checkpoint file. The
shipped snapshot is therefore exactly the state at the tick that committed, whatever the loop
does meanwhile; reads look at the front, then at the batch in flight, then at RocksDB.

The front is also the cache of hot keys: within a tick a shadow capture, a duplicate or a quick
label finds its id there. Labels days later find it in RocksDB (a bloom filter answers most
misses without reading a block). Expiry, eviction and implicit labels seek the time index
(service/state/keys.py) and read only what is due.
"""
from __future__ import annotations

import threading
from collections.abc import Callable
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
    # a tick's batch (up to millions of random keys at 20,000 events/s) fits in memtables without
    # stalling the write; the skiplist memtable costs more per insert than a hash-bucketed one but
    # its flush is ~10x cheaper, and both run without the GIL (measured: bench/README.md)
    opt.set_write_buffer_size(128 << 20)
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
        # keys added since the last commit (not in RocksDB yet), per endpoint id, in arrival order
        self._fresh: dict[bytes, dict[bytes, int]] = {}
        # per endpoint id: the last index key taken out since the last commit (seek past it)
        self._taken: dict[bytes, bytes] = {}
        self._last: tuple[Any, Any, tuple[bytes, bytes, bytes]] = (None, None, (b"", b"", b""))

    def __len__(self) -> int:
        return self._n

    def endpoints(self) -> list[Endpoint]:
        return self.store.endpoint_names(self.kind == k.LABEL)

    def _primary(self, endpoint: Endpoint, key: Key, create: bool = False) -> tuple[bytes, bytes, bytes] | None:
        last = self._last
        if last[0] is key and last[1] == endpoint:  # the join reads a key, then writes it
            return last[2]
        ep = self.store._ids.get(endpoint)
        if ep is None:
            ep = self.store.endpoint_id(endpoint, create)
            if ep is None:
                return None
        ident = (b"\x01" + key) if key.__class__ is bytes else k.id_bytes(key)  # type: ignore[operator]
        where = self.kind + ep + ident, ep, ident
        self._last = (key, endpoint, where)
        return where

    def _value(self, pk: bytes) -> Any:
        store = self.store
        v = store.front.get(pk, _MISSING)
        if v is _MISSING:
            v = store.inflight.get(pk, _MISSING)
            if v is _MISSING:
                raw = store.db.get(pk)
                v = None if raw is None else k.decode_value(raw)
        return v

    def get(self, endpoint: Endpoint, key: Key) -> V | None:
        where = self._primary(endpoint, key)
        return None if where is None else self._value(where[0])

    def add(self, endpoint: Endpoint, key: Key, value: V) -> None:
        pk, ep, ident = self._primary(endpoint, key, create=True)  # type: ignore[misc]
        arrival = self.arrival(value)
        store = self.store
        store.front[pk] = value
        store.batch.put(pk, k.encode_value(value))  # type: ignore[arg-type]
        store.batch.put(k.time_key(self.time_kind, ep, arrival, ident), b"")
        store.changed = True
        self._fresh.setdefault(ep, {})[pk] = arrival
        self._n += 1

    def replace(self, endpoint: Endpoint, key: Key, value: V) -> None:
        pk = self._primary(endpoint, key, create=True)[0]  # type: ignore[index]
        self.store.front[pk] = value
        self.store.batch.put(pk, k.encode_value(value))  # type: ignore[arg-type]
        self.store.changed = True

    def _drop(self, pk: bytes, ep: bytes, value: V) -> None:
        store = self.store
        store.front[pk] = None
        store.changed = True
        store.batch.delete(pk)
        store.batch.delete(k.time_key(self.time_kind, ep, self.arrival(value), pk[3:]))
        fresh = self._fresh.get(ep)
        if fresh:
            fresh.pop(pk, None)
        self._n -= 1

    def remove(self, endpoint: Endpoint, key: Key) -> V | None:
        where = self._primary(endpoint, key)
        if where is None:
            return None
        value = self._value(where[0])
        if value is not None:
            self._drop(where[0], where[1], value)
        return value

    def _due(self, ep: bytes, after_s: int, upto_s: int | None, skip_taken: bool) -> Any:
        """(primary key, index key or None, value or None) of `ep` in arrival order within
        (after_s, upto_s]: RocksDB's index first (older), then what was added since the last
        commit. The value is None for an entry taken out (or re-added) since the last commit."""
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
        prefix = self.kind + ep
        for pk in [pk for pk in store.front if pk.startswith(prefix)]:
            if store.front[pk] is not None:
                self.replace(endpoint, k.inference_id(pk), fn(store.front[pk]))
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

    def committed(self) -> None:
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
                 capture_arrival: Callable[[Any], int], label_arrival: Callable[[int], int], shipper: Shipper) -> None:
        self.path, self.lineage, self._executor, self.shipper = path, lineage, executor, shipper
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
        self.batch = WriteBatch(raw_mode=True)
        self._job: Future[StoreSection] | None = None
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

    # -- commits --------------------------------------------------------------------------
    def settle(self) -> None:
        """Wait for the commit in flight (its failure is the daemon's to report, via its future)."""
        job = self._job
        if job is not None:
            try:
                job.result()
            except Exception:  # noqa: BLE001 - reported by whoever holds the future
                pass

    def commit(self, finish: Callable[[StoreSection], None]) -> Future[StoreSection]:
        """Hand every change since the last commit to the background thread: one atomic write,
        a shipped snapshot, then `finish(section)` (the partition's checkpoint file)."""
        self.settle()
        if self.broken is not None:
            raise RuntimeError(self.broken)
        batch, self.batch = self.batch, WriteBatch(raw_mode=True)
        self.inflight, self.front = self.front, {}
        for table in (self.captures, self.labels):
            table.committed()
        counts = (len(self.captures), len(self.labels))
        names = tuple(n for n in self._names if n is not None)
        self.sequence += 1
        changed, self.changed = self.changed, False
        job = self._executor.submit(self._run, batch, self.sequence, names, counts, changed, finish)
        self._job = job
        return job

    def _run(self, batch: WriteBatch, sequence: int, names: tuple[str, ...], counts: tuple[int, int], changed: bool,
             finish: Callable[[StoreSection], None]) -> StoreSection:
        import time

        started = time.perf_counter()
        with self._lock:
            try:
                if batch.len():
                    self.db.write(batch)  # atomic; RocksDB releases the GIL meanwhile
            except Exception as ex:
                self.broken = f"the local store {self.path} refused a write: {type(ex).__name__}: {ex}"
                raise
            self.inflight = {}
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
