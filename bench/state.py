"""Join state at scale: the disk store (RocksDB per partition) against the in-memory join,
measured in the same run (issue 12's targets). Prints one table per target.

1. RSS, disk and insert/lookup rates at 1 M, 10 M, 30 M, 100 M pending captures. The store is
   bulk-loaded with exactly the keys and values the pipeline writes (service/state/keys.py,
   entries packed as pipelines.join packs them), as RocksDB's bottom level (SstFileWriter +
   ingestion, zstd); each size then takes 100 k captures and 100 k labels through the join.
   Baseline: the memory store's RSS per pending capture at 1 M, times the size.
2. Throughput of the core pipeline (parse, join, count; no Kafka) on the same records with the
   disk store at 30 M pending vs the memory store, on four record sets, each run memory, disk,
   memory (the machine is shared: the spread is part of the figure), with a tick's checkpoint every
   ~70 k records. Then four more sets with no checkpoint: the per-record cost alone (a daemon near
   its limit ticks once per millions of records, so this is its throughput).
3. Tick cost at 20,000 events/s (a 60 s tick: 1.2 M events) at 1 M and 30 M pending: what the
   loop loses to the checkpoint (the hand-off, plus how much slower it processes events while the
   background write, flush and ship run) and the whole checkpoint's time. Baseline: today's
   whole-state RGCK checkpoint of the memory store at 1 M pending.
4. Restore of a 10 M-pending partition on another instance from a state location that copies
   (a shared filesystem; S3 adds its transfer time). Baseline: decoding the whole-state
   checkpoint at 1 M, times 10.

Usage: python3 bench/state.py [--quick] [--dir DIR]   (--quick: tiny sizes, seconds)
While iterating: --sizes 1e6,1e7,3e7 --targets 2,3; A/B knobs --stream-keys N, --write-buffer-mb N.
"""
from __future__ import annotations

import argparse
import gc
import os
import random
import shutil
import statistics
import sys
import tempfile
import time
import uuid
from pathlib import Path
from collections.abc import Iterator
from typing import Any

import numpy as np
from rocksdict import DBCompressionType, IngestExternalFileOptions, SstFileWriter

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

from pipelines import join as J  # noqa: E402
from pipelines.processor import PartitionPipeline, PipelineConfig, Row  # noqa: E402
from pipelines.records import Capture, Label  # noqa: E402
from service import checkpoint  # noqa: E402
from service.checkpoint import LocalDirStore  # noqa: E402
from service.devstack.traffic import TrafficSpec, generate  # noqa: E402
from service.state import keys as K  # noqa: E402
from service.state.manifest import StoreSection  # noqa: E402
from service.state import rocks  # noqa: E402
from service.state.rocks import db_options  # noqa: E402
from service.state.ship import LocationShipper, store_prefix  # noqa: E402
from service.state.stores import DiskStores  # noqa: E402

PAGE = os.sysconf("SC_PAGE_SIZE")
NOW = 1_790_000_000_000
EP = "fraud-ep"
SERIES = [(EP, "v5", "fraud-v5", (("merchant_category", str(m)),)) for m in range(50)]
SHADOW = [(EP, "v6-shadow", "fraud-v6", (("merchant_category", str(m)),)) for m in range(50)]
SEEDS = (4, 5, 6, 7)  # the throughput's record sets: four, as one run's figures vary by +-15 % here
NO_TICK_SEEDS = (8, 9, 10, 11)  # four more, run without a checkpoint
POLL_BATCH = 500  # records of one partition and topic per submit_many, as a poll hands them over


def rss() -> int:
    with open("/proc/self/statm") as f:
        return int(f.read().split()[1]) * PAGE


def du(path: Path) -> int:
    return sum(f.stat().st_size for f in path.rglob("*") if f.is_file())


class NullSink:
    def count(self, series: object, ts_ms: int, name: str, delta: int = 1) -> None:
        pass


OVERRIDES: dict[str, int] = {}  # --stream-keys, --write-buffer-mb


def _ingest_behind_options(cache: Any) -> Any:
    """The daemon's options, plus a bottom level reserved for bulk files: they go in below what
    the measurements write, as a long-running store's data would be, without recompacting it."""
    opts = db_options(cache)
    if "write_buffer" in OVERRIDES:
        opts.set_write_buffer_size(OVERRIDES["write_buffer"])
    opts.set_allow_ingest_behind(True)
    opts.set_level_compaction_dynamic_level_bytes(False)  # so compaction never writes the reserved level
    return opts


class CopyingDir(LocalDirStore):
    """A state location on another filesystem (EFS, NFS): files are copied, never hard-linked."""

    def save_file(self, name: str, path: Path) -> None:
        shutil.copyfile(path, self.directory / name)

    def load_file(self, name: str, path: Path) -> None:
        shutil.copyfile(self.directory / name, path)


# -- bulk load -----------------------------------------------------------------------------

class Loaded:
    """A disk-store join with `n` pending captures, grown by `grow`; `ids` samples held ids."""

    def __init__(self, work: Path) -> None:
        self.work = work
        self.location = LocalDirStore(work / "state")
        self.stores = DiskStores(self.location, work / "local", lambda p: f"bench.c.l.p{p}.ckpt", 256)
        self.join = J.JoinState(J.JoinPolicy(max_pending=2_000_000_000), store=self.stores.new(0))
        for s in SERIES + SHADOW:
            self.join.registry.intern(s)
        self.store = self.join.store
        if "stream_keys" in OVERRIDES:
            self.store.stream_keys = OVERRIDES["stream_keys"]  # type: ignore[attr-defined]
        self.ep = self.store.endpoint_id(EP, create=True)  # type: ignore[attr-defined]
        self.n = 0
        self.chunks = 0
        self.next_s = NOW // 1000 - 13 * 86400
        self.sample: list[bytes] = []  # 16-byte ids known to be pending
        self.rng = np.random.default_rng(12)

    def grow(self, to: int, chunk: int = 1_000_000, max_chunks: int = 128) -> float:
        started = time.perf_counter()
        while self.n < to:
            self._chunk(min(chunk, to - self.n), max_chunks)
        return time.perf_counter() - started

    def _chunk(self, n: int, max_chunks: int) -> None:
        c = self.chunks
        self.chunks += 1
        width = (1 << 64) // max_chunks  # chunk c's ids sort after chunk c-1's: files do not overlap
        hi = np.sort(self.rng.integers(c * width, (c + 1) * width, n, dtype=np.uint64, endpoint=False))
        lo = self.rng.integers(0, 1 << 63, n, dtype=np.uint64)
        raw = np.empty((n, 2), dtype=">u8")
        raw[:, 0], raw[:, 1] = hi, lo
        buf = raw.tobytes()
        ids = [buf[16 * j:16 * j + 16] for j in range(n)]
        order = self.rng.permutation(n)  # arrival order of the sorted ids
        # 800/s from 13 days ago; each chunk starts a second of its own, so index files never overlap
        arrival = (order // 800 + self.next_s).astype(np.int64)
        self.next_s += (n + 799) // 800
        opts = db_options_zstd()
        ep, cap, idx = self.ep, K.CAPTURE + self.ep, K.CAPTURE_TIME + self.ep
        primary, index = self.work / f"c{c}.sst", self.work / f"t{c}.sst"
        w = SstFileWriter(opts)
        w.open(str(primary))
        arr = arrival.tolist()
        for j in range(n):
            a = arr[j]
            elem = ((j & 1) + 1) | ((j % 50) << J._SID_SHIFT) | (a << J._ARRIVAL_SHIFT) | ((a - 1) << J._CTS_SHIFT)
            w[cap + b"\x01" + ids[j]] = K.encode_value(elem)
        w.finish()
        w = SstFileWriter(opts)
        w.open(str(index))
        for j in np.lexsort((np.arange(n), arrival)).tolist():
            w[K.time_key(idx[:1], ep, arr[j], b"\x01" + ids[j])] = b""
        w.finish()
        ingest = IngestExternalFileOptions()
        ingest.set_move_files(True)
        ingest.set_ingest_behind(True)
        self.store.db.ingest_external_file([str(primary), str(index)], ingest)  # type: ignore[attr-defined]
        self.store.captures._n += n  # type: ignore[attr-defined]
        self.store.changed = True  # type: ignore[attr-defined]
        self.sample += random.Random(c).sample(ids, min(20_000, n))
        self.n += n


def db_options_zstd() -> Any:
    from rocksdict import Cache

    opts = db_options(Cache(8 << 20))
    opts.set_compression_type(DBCompressionType.zstd())  # what the bottom level holds
    return opts


def commit(join: J.JoinState, location: Any, name: str = "bench.c.l.p0.ckpt") -> tuple[float, StoreSection]:
    """(seconds until written, section): a daemon tick's checkpoint, waited for."""
    pipeline_state = {"pipeline": _pipeline_of(join).snapshot(), "unsent": {}}
    t = time.perf_counter()
    prepared = checkpoint.prepare(pipeline_state)
    job = join.store.commit(lambda section: location.save(name, checkpoint.seal(prepared, section)))  # type: ignore[attr-defined]
    section = job.result()
    return time.perf_counter() - t, section


def tick_commit(join: J.JoinState, location: Any, sample: list[bytes],
                name: str = "bench.c.l.p0.ckpt") -> tuple[float, float, float, float]:
    """(hand-off s, loop work lost s, whole commit s, its background job s) of a daemon tick's
    checkpoint while the loop goes on with events, as the daemon does.

    The hand-off is what `commit` blocks for (the small state, the wait for a write in flight).
    While the commit runs, the loop processes events in slices; the same number of events is then
    processed again with no commit running, and the difference in time is what the loop lost to
    the commit (the GIL, the second core shared with RocksDB's threads, the page cache)."""
    pipeline_state = {"pipeline": _pipeline_of(join).snapshot(), "unsent": {}}
    store: Any = join.store
    shipped = store.shipper.shipped_bytes
    t = time.perf_counter()
    prepared = checkpoint.prepare(pipeline_state)
    job = store.commit(lambda section: location.save(name, checkpoint.seal(prepared, section)))
    written: list[float] = []
    job.add_done_callback(lambda _: written.append(time.perf_counter()))
    handoff = time.perf_counter() - t
    events, slice_n, seed = 0, 600, 0
    t_loop = time.perf_counter()
    while not job.done():
        seed += 1
        tick_events(join, sample, slice_n, seed)
        events += slice_n
    during = time.perf_counter() - t_loop
    job.result()
    whole = written[0] - t
    store.settle()
    t_ref = time.perf_counter()
    for i in range(events // slice_n):
        tick_events(join, sample, slice_n, 10_000 + i)
    reference = time.perf_counter() - t_ref
    print(f"   ... {events:,} events while the commit ran: {during:.2f} s, again with none running: {reference:.2f} s;"
          f" it shipped {(store.shipper.shipped_bytes - shipped) / 1e6:,.0f} MB", flush=True)
    return handoff, during - reference, whole, store.last_commit_s


def _pipeline_of(join: J.JoinState) -> PartitionPipeline:
    return PartitionPipeline(0, PipelineConfig(), join=join)


# -- measurements --------------------------------------------------------------------------

def rates(join: J.JoinState, sample: list[bytes], n: int, commit_to: Any) -> tuple[float, float]:
    """(captures/s into the join, labels/s joined with held captures), 100 k each, checkpoint included."""
    sink, now = NullSink(), NOW
    caps = [Capture(str(uuid.UUID(int=random.getrandbits(128))), EP, "v5", now - 1000, "fraud-v5", prediction=i & 1)
            for i in range(n)]
    t = time.perf_counter()
    for i, cap in enumerate(caps):
        join.add_capture(cap, SERIES[i % 50], now, sink)
    if commit_to is not None:
        commit(join, commit_to)
    insert = n / (time.perf_counter() - t)
    picks = random.Random(n).sample(sample, min(n, len(sample))) if sample else []
    labels = [Label(str(uuid.UUID(bytes=b)), 1, now, EP) for b in picks] or \
        [Label(c.inference_id, 1, now, EP) for c in caps]
    before, waiting = join.stats.labels, join.pending_labels
    t = time.perf_counter()
    for lab in labels:
        join.add_label(lab, now, sink)
    if commit_to is not None:
        commit(join, commit_to)
    lookup = len(labels) / (time.perf_counter() - t)
    assert join.stats.labels - before == len(labels) and join.pending_labels == waiting, "labels must find their captures"
    return insert, lookup


def memory_baseline(n: int) -> tuple[float, float, float, J.JoinState]:
    gc.collect()
    before = rss()
    join = J.JoinState(J.JoinPolicy(max_pending=10 * n))
    for s in SERIES:
        join.registry.intern(s)
    sink = NullSink()
    for i in range(n):
        join.add_capture(Capture(str(uuid.UUID(int=random.getrandbits(128))), EP, "v5", NOW - 1000, "fraud-v5",
                                 prediction=i & 1), SERIES[i % 50], NOW - 60_000, sink)
    gc.collect()
    per = (rss() - before) / n
    insert, lookup = rates(join, [], min(100_000, n), None)
    return per, insert, lookup, join


def tick_events(join: J.JoinState, sample: list[bytes], events: int, seed: int = 0) -> None:
    """`events` as at 20,000 events/s: production + shadow capture of new ids, a label of an old one."""
    sink, now, rng = NullSink(), NOW, random.Random(events * 1_000_003 + seed)
    for i in range(events // 3):
        iid = str(uuid.UUID(int=rng.getrandbits(128)))
        join.add_capture(Capture(iid, EP, "v5", now, "fraud-v5", prediction=i & 1), SERIES[i % 50], now, sink)
        join.add_capture(Capture(iid, EP, "v6-shadow", now, "fraud-v6", shadow=True, prediction=1), SHADOW[i % 50], now, sink)
        join.add_label(Label(str(uuid.UUID(bytes=rng.choice(sample))), i & 1, now, EP), now, sink)


def throughput_records(inferences: int, seed: int) -> list[tuple[str, bytes]]:
    """(topic, raw record) of one record set: captures, then labels. Each set has a seed of its
    own, so the disk store never sees the same records twice."""
    traffic = generate(inferences, NOW - 3_600_000, TrafficSpec(duplicate_rate=0.01, correction_rate=0.02), seed=seed)
    return [("captures", r) for _, r in traffic.capture_records()] + [("labels", r) for _, r in traffic.label_records()]


def poll_batches(records: list[tuple[str, bytes]], size: int = POLL_BATCH) -> Iterator[tuple[int, str, list[Row]]]:
    """(index of the first, topic, rows) of runs of one topic, as the daemon hands a poll's
    records of one partition to `PartitionPipeline.submit_many`."""
    i = 0
    while i < len(records):
        topic = records[i][0]
        j = i
        while j < len(records) and j - i < size and records[j][0] == topic:
            j += 1
        yield i, topic, [(raw, n, None, None) for n, (_, raw) in enumerate(records[i:j], i)]
        i = j


def throughput(records: list[tuple[str, bytes]], join: J.JoinState | None, location: Any, every: int | None) -> float:
    """Records/s through parse, join and count, with a daemon tick's checkpoint every `every`
    records (none when None): the memory store writes its whole state; the disk store starts its
    commit and goes on (the next tick waits for it, as the daemon does); the last one is waited for
    (without checkpoints, its last write)."""
    every = every or len(records) + 1
    p = PartitionPipeline(0, PipelineConfig(), join=join)
    store: Any = p.join.store
    t = time.perf_counter()
    for i, topic, rows in poll_batches(records):
        p.submit_many(topic, rows, NOW)
        if i // every != (i + len(rows)) // every:
            p.tick(NOW)
            state = {"pipeline": p.snapshot(), "unsent": {}}
            if join is None:
                location.save("mem.ckpt", checkpoint.encode(state))
            else:
                prepared = checkpoint.prepare(state)
                store.commit(lambda section, prepared=prepared: location.save(
                    "bench.c.l.p0.ckpt", checkpoint.seal(prepared, section)))
    if join is not None:
        store.settle()
    return len(records) / (time.perf_counter() - t)


def restore_test(loaded: Loaded, work: Path) -> tuple[float, int, float]:
    """Ship the store to a copying location, restore it on another instance: (seconds, bytes, lookups/s)."""
    remote = CopyingDir(work / "remote")
    name = "bench.c.l.p0.ckpt"
    shipper = LocationShipper(remote, store_prefix(name), "f" * 12, work)
    loaded.store.settle()  # type: ignore[attr-defined]
    current, files = shipper.ship(loaded.store.db)  # type: ignore[attr-defined]
    section = StoreSection("f" * 12, 1, (EP,), loaded.n, 0, current, files)
    other = DiskStores(remote, work / "other", lambda p: name, 256)
    t = time.perf_counter()
    restored = other.restore(0, section)
    took = time.perf_counter() - t
    ids = random.Random(3).sample(loaded.sample, min(20_000, len(loaded.sample)))
    t = time.perf_counter()
    found = sum(restored.captures.get(EP, b) is not None for b in ids)
    lookups = len(ids) / (time.perf_counter() - t)
    assert found == len(ids)
    other.close()
    shutil.rmtree(work / "remote", ignore_errors=True)
    return took, section.total_bytes(), lookups


def main() -> None:
    ap = argparse.ArgumentParser()
    ap.add_argument("--quick", action="store_true", help="tiny sizes: checks the script, not the figures")
    ap.add_argument("--dir", default=None, help="work directory (default: a temporary one)")
    ap.add_argument("--sizes", default=None, help="while iterating: pending sizes to grow to, e.g. 1e6,1e7 "
                    "(ticks at the first and third, restore at the second, throughput at the third, or the last)")
    ap.add_argument("--targets", default="1,2,3,4", help="while iterating: which targets to measure, e.g. 2,3")
    ap.add_argument("--stream-keys", type=int, default=None, help="A/B: the store's hand-off size (0: never during a tick)")
    ap.add_argument("--write-buffer-mb", type=int, default=None, help="A/B: RocksDB's write buffer size")
    args = ap.parse_args()
    if args.write_buffer_mb:
        OVERRIDES["write_buffer"] = args.write_buffer_mb << 20
    if args.stream_keys is not None:
        OVERRIDES["stream_keys"] = args.stream_keys or 1 << 62
    q = args.quick
    sizes = [20_000, 50_000, 100_000, 200_000] if q else [1_000_000, 10_000_000, 30_000_000, 100_000_000]
    if args.sizes:
        sizes = [int(float(x)) for x in args.sizes.split(",")]
    targets = {int(x) for x in args.targets.split(",")}
    sample_n = 5_000 if q else 100_000  # inferences for the rates and the throughput records
    tick_n = 30_000 if q else 1_200_000
    work = Path(tempfile.mkdtemp(prefix="rollguard-bench-", dir=args.dir))
    try:
        run(q, sizes, sample_n, tick_n, work, targets)
    finally:
        shutil.rmtree(work, ignore_errors=True)


def run(q: bool, sizes: list[int], sample_n: int, tick_n: int, work: Path, targets: set[int]) -> None:
    print(f"bench/state.py{' --quick' if q else ''} {' '.join(sys.argv[1:])} ({time.strftime('%Y-%m-%d %H:%M')}, sizes "
          f"{','.join(f'{n:,}' for n in sizes)}, targets {sorted(targets)}): {os.cpu_count()} cores, "
          f"load average {os.getloadavg()[0]:.1f}; figures are noisy on a shared machine")
    tick_at = {sizes[0], sizes[min(2, len(sizes) - 1)]}
    restore_at, throughput_at = sizes[min(1, len(sizes) - 1)], sizes[min(2, len(sizes) - 1)]
    base_n = sizes[0]
    t = time.perf_counter()
    mem_per, mem_insert, mem_lookup, mem_join = memory_baseline(base_n)
    print(f"baseline: memory store at {base_n:,} pending: {mem_per:.0f} B RSS per capture, "
          f"{mem_insert:,.0f} captures/s, {mem_lookup:,.0f} labels/s ({time.perf_counter() - t:.0f} s)")
    pipeline = _pipeline_of(mem_join)
    t = time.perf_counter()
    data = checkpoint.encode({"pipeline": pipeline.snapshot(), "unsent": {}})
    LocalDirStore(work / "mem").save("p0.ckpt", data)
    full_ckpt = time.perf_counter() - t
    t = time.perf_counter()
    checkpoint.decode(data, "p0.ckpt")
    full_decode = time.perf_counter() - t
    print(f"baseline: whole-state checkpoint (memory store) at {base_n:,}: write {full_ckpt:.2f} s, "
          f"{len(data) / 1e6:.1f} MB; read {full_decode:.2f} s")
    del mem_join, pipeline, data
    gc.collect()

    rocks.db_options = _ingest_behind_options  # type: ignore[assignment]
    loaded = Loaded(work)
    rocks.db_options = db_options  # type: ignore[assignment]
    rows, ticks = [], []
    extra: dict[str, Any] = {}
    for size in sizes:
        load_s = loaded.grow(size, chunk=min(1_000_000, sizes[0]))
        commit(loaded.join, loaded.location)  # the bulk load's first snapshot (hard links)
        gc.collect()
        insert, lookup = rates(loaded.join, loaded.sample, sample_n, loaded.location)
        gc.collect()
        rows.append((size, rss(), du(loaded.store.path), insert, lookup, load_s))  # type: ignore[attr-defined]
        print(f"   ... {size:,} pending: RSS {rows[-1][1] / 1e6:,.0f} MB, disk {rows[-1][2] / size:.1f} B/capture, "
              f"{insert:,.0f} captures/s, {lookup:,.0f} labels/s, loaded in {load_s:.0f} s", flush=True)
        if 3 in targets and size in tick_at:
            t = time.perf_counter()
            tick_events(loaded.join, loaded.sample, tick_n)
            tick_s = time.perf_counter() - t
            handoff, lost, whole, job_s = tick_commit(loaded.join, loaded.location, loaded.sample)
            ticks.append((size, tick_s, handoff, lost, whole, job_s))
            print(f"   ... tick at {size:,}: {tick_n / tick_s:,.0f} events/s, hand-off {handoff:.3f} s, "
                  f"loop lost {lost:.3f} s, commit {whole:.2f} s", flush=True)
        if 4 in targets and size == restore_at:
            extra["restore"] = restore_test(loaded, work)
        if 2 in targets and size == throughput_at:
            # made here and dropped after, so no other figure's RSS holds them (~110 MB of RSS a set)
            record_sets = [throughput_records(sample_n, seed) for seed in SEEDS + NO_TICK_SEEDS]
            extra["records"] = len(record_sets[0])
            every = extra["every"] = max(1000, extra["records"] // 4)
            for name, sets, ev in (("throughput", record_sets[:len(SEEDS)], every),
                                   ("throughput_no_tick", record_sets[len(SEEDS):], None)):
                pairs = []
                for recs in sets:  # interleaved: memory, disk, memory on each set
                    mem_a = throughput(recs, None, LocalDirStore(work / "mem"), ev)
                    disk = throughput(recs, loaded.join, loaded.location, ev)
                    mem_b = throughput(recs, None, LocalDirStore(work / "mem"), ev)
                    pairs.append((mem_a, disk, mem_b))
                    print(f"   ... throughput{'' if ev else ' (no checkpoint)'}: memory {mem_a:,.0f}, disk {disk:,.0f}, "
                          f"memory {mem_b:,.0f} records/s", flush=True)
                extra[name] = pairs
            del record_sets

    print("\n1. pending captures in the disk store (one process; RSS of the whole process)")
    print(f"{'pending':>12} {'RSS MB':>8} {'memory store MB':>16} {'disk MB':>8} {'disk B/capture':>15} "
          f"{'captures/s':>11} {'labels/s':>9} {'bulk load s':>12}")
    for size, r, d, ins, look, load_s in rows:
        print(f"{size:>12,} {r / 1e6:>8,.0f} {mem_per * size / 1e6:>16,.0f} {d / 1e6:>8,.0f} {d / size:>15.1f} "
              f"{ins:>11,.0f} {look:>9,.0f} {load_s:>12.0f}")
    print(f"   (memory store column: the baseline's {mem_per:.0f} B per capture times the size;"
          f" its rates at {base_n:,}: {mem_insert:,.0f} captures/s, {mem_lookup:,.0f} labels/s)")
    if "throughput" in extra:
        print(f"\n2. core pipeline on sets of {extra['records']:,} records each; memory, disk, memory on each set")
        for name, how in (("throughput", f"a checkpoint every {extra['every']:,} records"),
                          ("throughput_no_tick", "no checkpoint")):
            pairs = extra[name]
            ratios = sorted(2 * disk / (mem_a + mem_b) for mem_a, disk, mem_b in pairs)
            print(f"   {how}:")
            for i, (mem_a, disk, mem_b) in enumerate(pairs):
                print(f"   set {i + 1}: memory store (empty) {mem_a:>9,.0f} and {mem_b:,.0f} records/s; "
                      f"disk store at {throughput_at:,} pending {disk:>9,.0f} records/s")
            print(f"   disk / memory (each set's disk run over the mean of its two memory runs): median "
                  f"{statistics.median(ratios):.0%}, range {ratios[0]:.0%}-{ratios[-1]:.0%}")
    if ticks:
        print(f"\n3. tick checkpoint after {tick_n:,} events (20,000 events/s for {tick_n / 20_000:.0f} s),"
              f" the loop going on with events meanwhile")
        for size, tick_s, handoff, lost, whole, job_s in ticks:
            print(f"   {size:>11,} pending: loop blocked {handoff + lost:6.3f} s (hand-off {handoff:.3f} s + work lost "
                  f"{lost:.3f} s); whole checkpoint (remainder write, flush, ship, file) {whole:5.2f} s "
                  f"(its job {job_s:.2f} s); the tick's events at {tick_n / tick_s:,.0f}/s")
        print(f"   baseline: whole-state checkpoint at {base_n:,}: {full_ckpt:.2f} s "
              f"(x{throughput_at // base_n} for {throughput_at:,}: ~{full_ckpt * throughput_at / base_n:.0f} s)")
    if "restore" in extra:
        took, size_b, lookups = extra["restore"]
        print(f"\n4. restore of {restore_at:,} pending on another instance (a copying state location)")
        print(f"   {took:.1f} s for {size_b / 1e6:,.0f} MB ({size_b / 1e6 / took:,.0f} MB/s), then {lookups:,.0f} lookups/s")
        print(f"   baseline: whole-state checkpoint read at {base_n:,}: {full_decode:.2f} s "
              f"(x{restore_at // base_n}: ~{full_decode * restore_at / base_n:.0f} s)")
    loaded.stores.close()


if __name__ == "__main__":
    main()
