"""The daemon loop's bookkeeping with in-memory edges: checkpoints, the sent ledger, partition
moves and backpressure. Real Kafka and CloudWatch are in tests/integration."""
from __future__ import annotations

import json
from collections import namedtuple
from typing import Any

from pipelines.clock import MockedClock
from service.checkpoint import decode
from service.daemon import Daemon
from service.settings import load_settings

TP = namedtuple("TP", "topic partition")
Rec = namedtuple("Rec", "offset value key headers timestamp")
NOW = 1_790_000_000_000


class FakeConsumer:
    def __init__(self) -> None:
        self.seeks: list[tuple[Any, int]] = []
        self.paused: set[Any] = set()
        self.assigned: set[Any] = set()

    def subscribe(self, topics: list[str], listener: Any = None) -> None: ...
    def poll(self, timeout_ms: int = 0, max_records: int | None = None) -> dict[Any, list[Any]]: return {}
    def seek(self, partition: Any, offset: int) -> None: self.seeks.append((partition, offset))
    def commit(self, offsets: Any = None) -> None: ...
    def close(self, autocommit: bool = True) -> None: ...
    def assignment(self) -> set[Any]: return set(self.assigned)
    def pause(self, *partitions: Any) -> None: self.paused |= set(partitions)
    def resume(self, *partitions: Any) -> None: self.paused -= set(partitions)


class FakePublisher:
    def __init__(self) -> None:
        self.queue: dict[str, list[Any]] = {}
        self.sent: list[str] = []
        self.on_sent: Any = None
        self.buffered = 0

    def enqueue(self, batch_id: str, datums: Any) -> None: self.queue[batch_id] = list(datums)
    def pending(self) -> list[str]: return list(self.queue)
    def discard(self, batch_ids: Any) -> None:
        for b in batch_ids:
            self.queue.pop(b, None)
    def buffered_datums(self) -> int: return self.buffered

    def flush(self, deadline_ms: int | None = None) -> None:
        done = list(self.queue)
        self.sent += done
        self.queue.clear()
        if done and self.on_sent:
            self.on_sent(done)


class DeadLetters:
    def __init__(self) -> None:
        self.sent: list[Any] = []

    def send(self, bad: Any, key: Any) -> None: self.sent.append(bad)
    def flush(self) -> None: ...
    def close(self) -> None: ...


class Store:
    def __init__(self) -> None:
        self.files: dict[str, bytes] = {}

    def load(self, name: str) -> bytes | None: return self.files.get(name)
    def save(self, name: str, data: bytes) -> None: self.files[name] = data


def daemon(store: Store | None = None, publisher: FakePublisher | None = None) -> Daemon:
    pub = publisher or FakePublisher()
    d = Daemon(load_settings(max_buffered_datums=100), consumer=FakeConsumer(), dead_letters=DeadLetters(),  # type: ignore[arg-type]
               publisher=pub, store=store or Store(), clock=MockedClock(NOW))
    pub.on_sent = d.on_sent
    return d


def capture(i: int, offset: int) -> Rec:
    msg = {"inference_id": f"id{i}", "endpoint": "ep", "variant": "v", "timestamp": NOW - 1000, "prediction": 1}
    return Rec(offset, json.dumps(msg).encode(), f"id{i}".encode(), [], NOW)


def test_tick_checkpoints_before_enqueue_and_ledger_records_sends() -> None:
    store, pub = Store(), FakePublisher()
    d = daemon(store, pub)
    d.on_partitions_assigned([TP("captures", 0), TP("labels", 0)])
    d.process({TP("captures", 0): [capture(1, 0), capture(2, 1)]})
    d.tick()
    ckpt = list(decode(store.files["rollguard.captures.labels.p0.ckpt"], "p0")["unsent"])
    assert ckpt == list(pub.queue)  # the checkpoint lists what the publisher now holds
    pub.flush()
    assert json.loads(store.files["rollguard.captures.labels.p0.ckpt.sent"]) == ckpt


def test_restart_skips_batches_the_ledger_says_were_sent() -> None:
    store, pub = Store(), FakePublisher()
    d = daemon(store, pub)
    d.on_partitions_assigned([TP("captures", 0)])
    d.process({TP("captures", 0): [capture(1, 0)]})
    d.tick()
    pub.flush()  # sent, and recorded; then the process dies before the next checkpoint
    again = daemon(store)
    again.on_partitions_assigned([TP("captures", 0)])
    assert again.publisher.pending() == []  # type: ignore[attr-defined]
    assert again.consumer.seeks == [(TP("captures", 0), 1)]  # type: ignore[attr-defined]


def test_restart_resends_what_was_not_sent() -> None:
    store = Store()
    d = daemon(store)
    d.on_partitions_assigned([TP("captures", 0)])
    d.process({TP("captures", 0): [capture(1, 0)]})
    d.tick()  # checkpointed and enqueued, never sent
    again = daemon(store)
    again.on_partitions_assigned([TP("captures", 0)])
    assert len(again.publisher.pending()) == 1  # type: ignore[attr-defined]


def test_rebalance_keeps_partitions_that_stay_and_hands_over_the_rest() -> None:
    store, pub = Store(), FakePublisher()
    d = daemon(store, pub)
    d.on_partitions_assigned([TP("captures", 0), TP("captures", 1)])
    d.process({TP("captures", 0): [capture(1, 0)], TP("captures", 1): [capture(2, 0)]})
    kept = d.slots[0]
    d.on_partitions_revoked([TP("captures", 0), TP("captures", 1)])
    assert not d.slots and set(d.parked) == {0, 1}
    d.on_partitions_assigned([TP("captures", 0)])
    assert d.slots[0] is kept and not d.parked  # partition 1 now belongs to another instance
    other = daemon(store)
    other.on_partitions_assigned([TP("captures", 1)])
    assert other.slots[1].pipeline.join.pending_captures == 1  # its pending join moved with it


def test_bad_records_go_to_dead_letters_with_their_source() -> None:
    d = daemon()
    d.on_partitions_assigned([TP("captures", 0)])
    d.process({TP("captures", 0): [Rec(7, b"{oops", None, [], NOW)]})
    bad = d.dead_letters.sent  # type: ignore[attr-defined]
    assert len(bad) == 1 and bad[0].reason == "not_json" and bad[0].source.offset == 7


def test_backpressure_pauses_and_resumes() -> None:
    pub = FakePublisher()
    d = daemon(publisher=pub)
    d.consumer.assigned = {TP("captures", 0)}  # type: ignore[attr-defined]
    pub.buffered = 85
    d.apply_backpressure()
    assert d.paused and d.consumer.paused == {TP("captures", 0)}  # type: ignore[attr-defined]
    pub.buffered = 60
    d.apply_backpressure()
    assert d.paused  # hysteresis: not yet
    pub.buffered = 10
    d.apply_backpressure()
    assert not d.paused and d.consumer.paused == set()  # type: ignore[attr-defined]
