"""The disk store (RocksDB per partition, shipped incrementally): the same table contract as the
memory store, the join's exactness through commits and restores on "another instance", what a
snapshot uploads, what a restore refuses."""
from __future__ import annotations

import json
import threading
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from pipelines.join import JoinPolicy, JoinState, memory_store
from pipelines.pending import MemoryTable
from pipelines.processor import PartitionPipeline, PipelineConfig
from service.checkpoint import LocalDirStore, decode, encode
from service.state.keys import decode_value, encode_value
from service.state.stores import DiskStores
from tests.reference import as_dict, batch_counts
from tests.unit.pipelines.test_join import NOW, Run, interleaved, message_sets

NAME = "g.c.l.p0.ckpt"


class Site:
    """One state location and the instances (each with its own local directory) sharing it."""

    def __init__(self, tmp: Path) -> None:
        self.tmp = tmp
        self.location = LocalDirStore(tmp / "state")
        self.instances: list[DiskStores] = []

    def instance(self) -> DiskStores:
        stores = DiskStores(self.location, self.tmp / f"local{len(self.instances)}", lambda p: f"g.c.l.p{p}.ckpt", cache_mb=8)
        self.instances.append(stores)
        return stores

    def checkpoint(self, pipeline: PartitionPipeline) -> Any:
        state = {"pipeline": pipeline.snapshot(), "unsent": {}}
        job = pipeline.join.store.commit(  # type: ignore[attr-defined]
            lambda section: self.location.save(NAME, encode({**state, "store": section})))
        return job.result()

    def restore(self, stores: DiskStores, config: PipelineConfig) -> PartitionPipeline:
        state = decode(self.location.load(NAME) or b"", NAME)
        return PartitionPipeline.restore(state["pipeline"], config, store=stores.restore(0, state.get("store")))

    def close(self) -> None:
        for stores in self.instances:
            stores.close()


@pytest.fixture
def site(tmp_path: Path) -> Iterator[Site]:
    s = Site(tmp_path)
    yield s
    s.close()


def arrival(v: Any) -> int:
    return (v[0] if isinstance(v, tuple) else v) >> 8


# -- the table contract, run against both stores ------------------------------------------

@pytest.fixture(params=["memory", "disk", "disk-streaming"])
def table(request: pytest.FixtureRequest, site: Site) -> Iterator[Any]:
    if request.param == "memory":
        yield MemoryTable(arrival)
        return
    from service.state.rocks import DiskStore
    from service.state.ship import LocationShipper

    stores = site.instance()
    store = DiskStore(stores.directory / "t", lineage="0" * 12, section=None, cache=stores.cache,
                      executor=stores.executor, capture_arrival=arrival, label_arrival=arrival,
                      shipper=LocationShipper(site.location, "t.store.", "0" * 12, stores.directory),
                      stream_keys=2 if request.param == "disk-streaming" else 10_000)
    t = store.captures
    t.commit = lambda: store.commit(lambda section: None).result()  # type: ignore[attr-defined]
    yield t
    store.close()


def commit(table: Any) -> None:
    if hasattr(table, "commit"):
        table.commit()


def test_tables_keep_arrival_order_and_take_only_what_is_due(table: Any) -> None:
    for i in range(10):
        table.add("ep", f"id{i}", (i << 8) | 1)
    table.add("other", b"\x01" * 16, (3 << 8) | 2)
    commit(table)
    table.add("ep", "late", (20 << 8) | 1)
    assert len(table) == 12 and table.endpoints()[:2] == ["ep", "other"]
    assert table.get("ep", "id3") == (3 << 8) | 1 and table.get("ep", "nope") is None and table.get("x", "id3") is None
    table.replace("ep", "id2", ((2 << 8) | 3, (2 << 8) | 5))
    assert table.remove("ep", "id1") == (1 << 8) | 1 and table.remove("ep", "id1") is None
    assert [k for k, _ in table.scan("ep", 2, 5)] == ["id3", "id4", "id5"]
    assert table.oldest_s("ep") == 0
    assert table.pop_oldest("ep", 4) == [("id0", 1), ("id2", ((2 << 8) | 3, (2 << 8) | 5)), ("id3", (3 << 8) | 1),
                                         ("id4", (4 << 8) | 1)]
    assert [k for k, _ in table.pop_oldest("ep", None, 2)] == ["id5", "id6"]
    commit(table)
    assert table.oldest_s("ep") == 7 and len(table) == 5
    assert [k for k, _ in table.pop_oldest("ep", 100)] == ["id7", "id8", "id9", "late"]
    table.rewrite("other", lambda v: v | 0x80)
    assert table.get("other", b"\x01" * 16) == (3 << 8) | 0x82
    commit(table)
    assert table.pop_oldest("other", 3) == [(b"\x01" * 16, (3 << 8) | 0x82)] and len(table) == 0


def test_values_encode_as_length_prefixed_elements() -> None:
    for v in (0, 1, (1 << 149) | 5, (3, 1 << 140), (0, 0, 7)):
        assert decode_value(encode_value(v)) == v
    assert encode_value(0x0102) == b"\x02\x02\x01"
    with pytest.raises(ValueError):
        decode_value(b"\x05\x01")


# -- the join on the disk store -----------------------------------------------------------

def disk_run(site: Site, policy: JoinPolicy = JoinPolicy(), stream_keys: int | None = None) -> Run:
    r = Run(policy)
    stores = site.instance()
    store = stores.new(0)
    if stream_keys is not None:
        store.stream_keys = stream_keys  # type: ignore[attr-defined]
    r.pipeline = PartitionPipeline(0, r.pipeline.config, join=JoinState(policy, store=store))
    return r


@settings(max_examples=40, deadline=None, suppress_health_check=[HealthCheck.function_scoped_fixture])
@given(message_sets(), st.data())
def test_any_interleaving_through_commits_and_moves_equals_batch_join(
        tmp_path_factory: pytest.TempPathFactory, data: tuple[list[dict[str, Any]], list[dict[str, Any]], int],
        draw: st.DataObject) -> None:
    captures, labels, seed = data
    stream, ordered_caps = interleaved(captures, labels, seed)
    site = Site(tmp_path_factory.mktemp("site"))
    stream_keys = draw.draw(st.sampled_from([1, 3, 10_000]))  # hand-offs during a tick, or none
    try:
        r = disk_run(site, stream_keys=stream_keys)
        i = 0
        while i < len(stream):  # poll batches of one topic, each read ahead in one MultiGet
            size, topic, msgs = draw.draw(st.integers(1, 5)), stream[i][0], []
            while i < len(stream) and len(msgs) < size and stream[i][0] == topic:
                msgs.append(stream[i][1])
                i += 1
            r.send_many(topic, msgs)
            step = draw.draw(st.sampled_from(["go", "go", "go", "tick", "commit", "move"]))
            if step == "tick":
                r.datums += r.pipeline.tick(r.now)
            elif step in ("commit", "move"):
                r.datums += r.pipeline.tick(r.now)  # the daemon drains, then checkpoints
                site.checkpoint(r.pipeline)
                if step == "move":  # the partition resumes on another instance from the checkpoint
                    r.pipeline = site.restore(site.instance(), r.pipeline.config)
                    r.pipeline.join.store.stream_keys = stream_keys  # type: ignore[attr-defined]
        assert r.totals() == as_dict(batch_counts(ordered_caps, labels))
    finally:
        site.close()


def test_labels_find_captures_committed_to_disk_and_moved(site: Site) -> None:
    r = disk_run(site)
    for i in range(200):
        r.cap({"inference_id": f"{i:08x}-0000-4000-8000-000000000000", "endpoint": "ep", "variant": "prod",
               "timestamp": NOW - 5000, "prediction": i & 1})
    r.datums += r.pipeline.tick(r.now)
    site.checkpoint(r.pipeline)
    store = r.pipeline.join.store
    assert not store.front and not store.inflight  # type: ignore[attr-defined]  # all in RocksDB now
    r.pipeline = site.restore(site.instance(), r.pipeline.config)
    assert r.pipeline.join.pending_captures == 200
    for i in range(200):
        r.lab({"inference_id": f"{i:08x}-0000-4000-8000-000000000000", "label": 1, "timestamp": NOW - 1000})
    t = r.totals()
    assert t[("ep", "prod", "TruePositives")] == 100 and t[("ep", "prod", "FalseNegatives")] == 100


def test_expiry_and_the_cap_work_from_the_time_index(site: Site) -> None:
    r = disk_run(site, JoinPolicy(label_ttl_ms=10_000, label_wait_ms=5_000, max_pending=50))
    for i in range(80):
        r.cap({"inference_id": f"id{i}", "endpoint": "ep", "variant": "prod", "timestamp": NOW - 1000, "prediction": 1})
        r.now += 100
        if i % 30 == 29:
            r.datums += r.pipeline.tick(r.now)
            site.checkpoint(r.pipeline)
    r.lab({"inference_id": "z", "endpoint": "ep", "label": 1, "timestamp": NOW})
    assert r.pipeline.join.pending_captures <= 50
    r.now += 11_000
    r.totals()
    assert r.endpoint_totals("Evicted") + r.endpoint_totals("Expired") == 80
    assert r.endpoint_totals("OrphanLabels") == 1 and r.pipeline.join.pending_captures == 0


class GatedShipper:
    """Ships only once the test opens the gate: the loop runs while a commit is in flight."""

    def __init__(self, inner: Any) -> None:
        self.inner, self.gate = inner, threading.Event()

    def ship(self, db: Any) -> Any:
        assert self.gate.wait(30), "the test never opened the gate"
        return self.inner.ship(db)

    def shipped(self, section: Any) -> None:
        self.inner.shipped(section)


def test_the_snapshot_is_the_state_at_the_commit_whatever_is_streamed_meanwhile(site: Site) -> None:
    r = disk_run(site, stream_keys=1)  # a hand-off at every change when no job is in flight
    store: Any = r.pipeline.join.store
    for i in range(300):
        r.cap({"inference_id": f"a{i}", "endpoint": "ep", "variant": "prod", "timestamp": NOW, "prediction": 1})
    gated = store.shipper = GatedShipper(store.shipper)
    state = {"pipeline": r.pipeline.snapshot(), "unsent": {}}
    job = store.commit(lambda section: site.location.save(NAME, encode({**state, "store": section})))
    for i in range(300):  # while the commit waits to ship: none of these may reach its snapshot
        r.cap({"inference_id": f"b{i}", "endpoint": "ep", "variant": "prod", "timestamp": NOW, "prediction": 1})
        assert r.pipeline.join.store.captures.get("ep", f"b{i}") is not None
    r.lab({"inference_id": "a7", "label": 1, "timestamp": NOW})
    gated.gate.set()
    job.result()
    for i in range(50):  # the commit is done: these stream into RocksDB, still after the snapshot
        r.cap({"inference_id": f"c{i}", "endpoint": "ep", "variant": "prod", "timestamp": NOW, "prediction": 1})
    store.settle()
    assert len(store.front) < 50 and r.pipeline.join.pending_captures == 650  # some went to RocksDB
    other = site.restore(site.instance(), r.pipeline.config)
    assert other.join.pending_captures == 300
    captures = other.join.store.captures
    assert all(captures.get("ep", f"a{i}") is not None for i in range(300))
    assert not any(captures.get("ep", f"{c}{i}") is not None for c in "bc" for i in range(50))
    assert captures.get("ep", "a7") != r.pipeline.join.store.captures.get("ep", "a7")  # labelled after the commit


class RefusingDb:
    """RocksDB that refuses writes (a full disk), otherwise itself."""

    def __init__(self, db: Any) -> None:
        self.db = db

    def write(self, batch: Any) -> None:
        raise OSError("IO error: No space left on device")

    def __getattr__(self, name: str) -> Any:
        return getattr(self.db, name)


def test_a_refused_write_during_a_tick_fails_the_next_commit_and_loses_no_read(site: Site) -> None:
    r = disk_run(site, stream_keys=1)
    store: Any = r.pipeline.join.store
    real, store.db = store.db, RefusingDb(store.db)
    for i in range(20):
        r.cap({"inference_id": f"a{i}", "endpoint": "ep", "variant": "prod", "timestamp": NOW, "prediction": 1})
    store.settle()
    assert store.broken is not None and "No space left" in store.broken
    assert all(store.captures.get("ep", f"a{i}") is not None for i in range(20))
    with pytest.raises(RuntimeError, match="refused a write"):
        store.commit(lambda section: None).result()
    store.db = real


class CountingDb:
    """RocksDB that counts point reads, otherwise itself."""

    def __init__(self, db: Any) -> None:
        self.db, self.point_reads = db, 0

    def get(self, key: Any) -> Any:
        if not isinstance(key, list):
            self.point_reads += 1
        return self.db.get(key)

    def __getattr__(self, name: str) -> Any:
        return getattr(self.db, name)


def test_a_read_ahead_answers_reads_until_a_change_or_hand_off_makes_it_stale(site: Site) -> None:
    store: Any = site.instance().new(0)
    t = store.captures
    for i in range(4):
        t.add("ep", f"id{i}", (i << 8) | 1)
    store.commit(lambda section: None).result()
    real = store.db
    store.db = db = CountingDb(real)
    try:
        store.prefetch([("ep", f"id{i}") for i in range(4)] + [("ep", "missing"), ("nowhere", "id0")], [])
        assert t.get("ep", "id0") == 1 and t.get("ep", "missing") is None and db.point_reads == 0
        assert t.remove("ep", "id1") == (1 << 8) | 1 and t.get("ep", "id1") is None  # the front answers
        t.replace("ep", "id2", (2 << 8) | 3)
        store.stream()  # the changes go to RocksDB: the read-ahead is forgotten, not trusted
        store.settle()
        assert t.get("ep", "id1") is None and t.get("ep", "id2") == (2 << 8) | 3 and db.point_reads == 2
        store.prefetch([("ep", "id3")], [])
        t.rewrite("ep", lambda v: v | 0x80)  # straight into RocksDB
        assert t.get("ep", "id3") == (3 << 8) | 0x81
        t.add("ep", "new", 5 << 8)
        store.prefetch([("ep", "new"), ("ep", "id0")], [])  # a key the front holds is not read
        pk = t._primary("ep", "id0")[0]
        assert list(store.prefetched) == [pk] and store.prefetched[pk] == real.get(pk)
    finally:
        store.db = real


# -- shipping ------------------------------------------------------------------------------

def test_a_snapshot_uploads_only_new_files_and_deletes_what_no_checkpoint_names(site: Site) -> None:
    r = disk_run(site)
    for i in range(5000):
        r.cap({"inference_id": f"a{i}", "endpoint": "ep", "variant": "prod", "timestamp": NOW, "prediction": 1})
    first = site.checkpoint(r.pipeline)
    shipper = r.pipeline.join.store.shipper  # type: ignore[attr-defined]
    before = shipper.shipped_bytes
    r.cap({"inference_id": "one-more", "endpoint": "ep", "variant": "prod", "timestamp": NOW, "prediction": 1})
    second = site.checkpoint(r.pipeline)
    sst = [f for f in first.files if f.name.endswith(".sst")]
    assert set(sst) <= set(second.files)  # the first snapshot's SST is named again, not uploaded again
    added = shipper.shipped_bytes - before
    assert added < sum(f.size for f in sst) / 4, (added, sst)
    objects = set(site.location.names("g.c.l.p0.store."))
    assert objects == {f.object for f in second.files}  # the first manifest object is gone
    third = site.checkpoint(r.pipeline)  # nothing changed: nothing shipped
    assert third.files == second.files and shipper.shipped_bytes == before + added


def test_restore_refuses_missing_or_altered_files(site: Site) -> None:
    r = disk_run(site)
    r.cap({"inference_id": "a", "endpoint": "ep", "variant": "prod", "timestamp": NOW, "prediction": 1})
    section = site.checkpoint(r.pipeline)
    sst = next(f for f in section.files if f.name.endswith(".sst"))
    path = site.tmp / "state" / sst.object
    data = bytearray(path.read_bytes())
    data[100] ^= 1
    path.unlink()  # the original is hard-linked into the local store: replace, never alter in place
    path.write_bytes(bytes(data))
    with pytest.raises(ValueError, match="checksum mismatch"):
        site.restore(site.instance(), r.pipeline.config)
    path.unlink()
    with pytest.raises(ValueError, match="missing from the state location"):
        site.restore(site.instance(), r.pipeline.config)


def test_a_memory_checkpoint_moves_into_the_disk_store(site: Site) -> None:
    r = Run()
    r.cap({"inference_id": "a", "endpoint": "ep", "variant": "prod", "timestamp": NOW, "prediction": 1})
    r.lab({"inference_id": "early", "label": 1, "timestamp": NOW})
    state = decode(encode({"pipeline": r.pipeline.snapshot(), "unsent": {}}), NAME)
    assert "store" not in state
    stores = site.instance()
    p = PartitionPipeline.restore(state["pipeline"], r.pipeline.config, store=stores.restore(0, None))
    assert (p.join.pending_captures, p.join.pending_labels) == (1, 1)
    assert p.join.store.captures.get("ep", "a") is not None and not p.join.store.inline
    assert memory_store().inline
    json.dumps(p.snapshot()["join"]["captures"])  # nothing inline any more
