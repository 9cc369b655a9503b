"""The daemon loop's bookkeeping with in-memory edges: checkpoints, the sent ledger, partition
moves and backpressure. Real Kafka and CloudWatch are in tests/integration."""
from __future__ import annotations

import json
from collections import namedtuple
from typing import Any

from pipelines.clock import MockedClock
from pipelines.datum import Datum
from service.checkpoint import decode
from service.daemon import Daemon
from service.settings import load_settings

TP = namedtuple("TP", "topic partition")
Rec = namedtuple("Rec", "offset value key headers timestamp")
NOW = 1_790_000_000_000


def assign(daemon: Any, assigned: list[Any]) -> None:
    """A rebalance as the running loop sees it: the assignment, then every restore it left to the loop."""
    daemon.on_partitions_assigned(assigned)
    while daemon.restore_next():
        pass


class FakeConsumer:
    def __init__(self) -> None:
        self.seeks: list[tuple[Any, int]] = []
        self.paused: set[Any] = set()
        self.assigned: set[Any] = set()

    def subscribe(self, topics: list[str], listener: Any = None) -> None: ...
    def partitions_for_topic(self, topic: str) -> set[int]: return set()
    def poll(self, timeout_ms: int = 0, max_records: int | None = None) -> dict[Any, list[Any]]: return {}
    def seek(self, partition: Any, offset: int) -> None: self.seeks.append((partition, offset))
    def commit(self, offsets: Any = None) -> None: ...
    def close(self, autocommit: bool = True) -> None: ...
    def assignment(self) -> set[Any]: return set(self.assigned)
    def pause(self, *partitions: Any) -> None: self.paused |= set(partitions)
    def resume(self, *partitions: Any) -> None: self.paused -= set(partitions)


class FakePublisher:
    """Keeps the liveness batches apart (`heartbeats`), so the tests of counts see counts only."""

    def __init__(self) -> None:
        self.queue: dict[str, list[Any]] = {}
        self.sent: list[str] = []
        self.on_sent: Any = None
        self.buffered = 0
        self.heartbeats: list[Any] = []
        self.wakes = 0

    def enqueue(self, batch_id: str, datums: Any) -> None:
        if batch_id.startswith("heartbeat-"):
            self.heartbeats += list(datums)
        else:
            self.queue[batch_id] = list(datums)
    def pending(self) -> list[str]: return list(self.queue)
    def discard(self, batch_ids: Any) -> None:
        for b in batch_ids:
            self.queue.pop(b, None)
    def buffered_datums(self) -> int: return self.buffered
    def wake(self) -> None: self.wakes += 1

    def flush(self, deadline_ms: int | None = None) -> None:
        done = list(self.queue)
        self.sent += done
        self.queue.clear()
        if done and self.on_sent:
            self.on_sent(done)


class DeadLetters:
    def __init__(self) -> None:
        self.sent: list[Any] = []
        self.written: dict[str, int] = {}

    def send(self, bad: Any, key: Any) -> None: self.sent.append(bad)
    def flush(self, timeout_s: float = 5.0) -> bool: return True
    def pending(self) -> int: return 0
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
    assign(d, [TP("captures", 0), TP("labels", 0)])
    d.process({TP("captures", 0): [capture(1, 0), capture(2, 1)]})
    d.tick()
    ckpt = list(decode(store.files["rollguard.captures.labels.p0.ckpt"], "p0")["unsent"])
    assert ckpt == list(pub.queue)  # the checkpoint lists what the publisher now holds
    pub.flush()
    assert json.loads(store.files["rollguard.captures.labels.p0.ckpt.sent"]) == ckpt


def test_restart_skips_batches_the_ledger_says_were_sent() -> None:
    store, pub = Store(), FakePublisher()
    d = daemon(store, pub)
    assign(d, [TP("captures", 0)])
    d.process({TP("captures", 0): [capture(1, 0)]})
    d.tick()
    pub.flush()  # sent, and recorded; then the process dies before the next checkpoint
    again = daemon(store)
    assign(again, [TP("captures", 0)])
    assert again.publisher.pending() == []  # type: ignore[attr-defined]
    assert again.consumer.seeks == [(TP("captures", 0), 1)]  # type: ignore[attr-defined]


def test_restart_resends_what_was_not_sent() -> None:
    store = Store()
    d = daemon(store)
    assign(d, [TP("captures", 0)])
    d.process({TP("captures", 0): [capture(1, 0)]})
    d.tick()  # checkpointed and enqueued, never sent
    again = daemon(store)
    assign(again, [TP("captures", 0)])
    assert len(again.publisher.pending()) == 1  # type: ignore[attr-defined]


def test_rebalance_keeps_partitions_that_stay_and_hands_over_the_rest() -> None:
    store, pub = Store(), FakePublisher()
    d = daemon(store, pub)
    assign(d, [TP("captures", 0), TP("captures", 1)])
    d.process({TP("captures", 0): [capture(1, 0)], TP("captures", 1): [capture(2, 0)]})
    kept = d.slots[0]
    d.on_partitions_revoked([TP("captures", 0), TP("captures", 1)])
    assert not d.slots and set(d.parked) == {0, 1}
    assign(d, [TP("captures", 0)])
    assert d.slots[0] is kept and not d.parked  # partition 1 now belongs to another instance
    other = daemon(store)
    assign(other, [TP("captures", 1)])
    assert other.slots[1].pipeline.join.pending_captures == 1  # its pending join moved with it


def test_bad_records_go_to_dead_letters_with_their_source() -> None:
    d = daemon()
    assign(d, [TP("captures", 0)])
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


class FailingStore(Store):
    """A state directory that can fill up: saves raise ENOSPC while `full` is set."""

    def __init__(self) -> None:
        super().__init__()
        self.full = False

    def save(self, name: str, data: bytes) -> None:
        if self.full:
            raise OSError(28, "No space left on device")
        super().save(name, data)


class CommitRecorder(FakeConsumer):
    def __init__(self) -> None:
        super().__init__()
        self.commits: list[dict[Any, Any]] = []

    def commit(self, offsets: Any = None) -> None:
        self.commits.append(dict(offsets))


def test_a_failing_checkpoint_holds_counts_and_offsets_until_it_can_be_written() -> None:
    store, pub = FailingStore(), FakePublisher()
    d = daemon(store, pub)
    d.consumer = CommitRecorder()
    assign(d, [TP("captures", 0)])
    d.process({TP("captures", 0): [capture(1, 0)]})
    d.tick()
    assert pub.queue and d.consumer.commits[-1][next(iter(d.consumer.commits[-1]))].offset == 1
    store.full = True
    d.process({TP("captures", 0): [capture(2, 1), capture(3, 2)]})
    d.tick()
    d.tick()
    pub.flush()
    assert pub.queue == {} and len(pub.sent) == 1  # the new counts were not handed over
    assert [o.offset for c in d.consumer.commits for o in c.values()] == [1, 1, 1]  # never past the checkpoint
    ready, why = d.readiness()
    assert not ready and "No space left on device" in why
    assert d.status()["checkpoint_failures"] == 2 and d.status()["ready"] is False
    store.full = False
    d.tick()
    assert d.readiness() == (True, "ready")
    invocations = sum(x.value for b in pub.queue.values() for x in b if x.name == "Invocations")
    assert invocations == 2  # held, then published once the checkpoint holds them
    assert d.consumer.commits[-1][next(iter(d.consumer.commits[-1]))].offset == 3
    restored = decode(store.files["rollguard.captures.labels.p0.ckpt"], "p0")
    assert set(restored["unsent"]) == set(pub.queue)


def test_a_restart_after_a_failed_checkpoint_publishes_nothing_twice() -> None:
    store, pub = FailingStore(), FakePublisher()
    d = daemon(store, pub)
    assign(d, [TP("captures", 0)])
    d.process({TP("captures", 0): [capture(1, 0)]})
    d.tick()
    pub.flush()
    store.full = True
    d.process({TP("captures", 0): [capture(2, 1)]})
    d.tick()
    pub.flush()
    assert len(pub.sent) == 1  # the second capture's counts stayed held
    store.full = False
    again = daemon(store)  # the process died; the restart replays from offset 1
    assign(again, [TP("captures", 0)])
    assert again.consumer.seeks == [(TP("captures", 0), 1)]  # type: ignore[attr-defined]
    assert again.publisher.pending() == []  # type: ignore[attr-defined]


def test_the_final_checkpoint_failing_exits_non_zero() -> None:
    store = FailingStore()
    d = daemon(store)
    assign(d, [TP("captures", 0)])
    d.process({TP("captures", 0): [capture(1, 0)]})
    store.full = True
    try:
        d.close()
    except SystemExit as ex:
        assert "final checkpoint failed" in str(ex.code) and "No space left" in str(ex.code)
    else:
        raise AssertionError("close() should have refused to exit 0")


class UnconfirmedDeadLetters(DeadLetters):
    confirmed = False
    last_error = "KafkaTimeoutError: the broker is away"

    def flush(self, timeout_s: float = 5.0) -> bool: return self.confirmed
    def pending(self) -> int: return 0 if self.confirmed else len(self.sent)


def test_unconfirmed_dead_letters_hold_the_checkpoint() -> None:
    store, pub = Store(), FakePublisher()
    d = daemon(store, pub)
    d.dead_letters = UnconfirmedDeadLetters()
    assign(d, [TP("captures", 0)])
    d.process({TP("captures", 0): [Rec(0, b"{oops", None, [], NOW), capture(1, 1)]})
    d.tick()
    assert store.files == {} and pub.queue == {}
    assert "dead letters not confirmed" in d.readiness()[1]
    d.dead_letters.confirmed = True  # type: ignore[attr-defined]
    d.tick()
    assert d.readiness()[0] and pub.queue
    assert decode(store.files["rollguard.captures.labels.p0.ckpt"], "p0")["pipeline"]["offsets"] == {"captures": 2}


class CorruptRecordError(Exception):
    """Named like kafka.errors.CorruptRecordError, which the loop recognises by name."""


class CorruptingConsumer(FakeConsumer):
    """poll() raises like kafka-python does on a record whose header key is not UTF-8."""

    def __init__(self, tp: Any, offset: int) -> None:
        super().__init__()
        self.tp, self.offset = tp, offset
        self._fetcher = type("Fetcher", (), {"_next_partition_records": type("Part", (), {"topic_partition": tp})()})()

    def poll(self, timeout_ms: int = 0, max_records: int | None = None) -> dict[Any, list[Any]]:
        if not self.seeks or self.seeks[-1][1] <= self.offset:
            raise CorruptRecordError("Found invalid record structure: UnicodeDecodeError(...)")
        return {}

    def position(self, tp: Any) -> int:
        return self.offset


def test_a_record_the_client_cannot_decode_is_skipped_and_dead_lettered() -> None:
    d = daemon()
    tp = TP("captures", 0)
    d.consumer = CorruptingConsumer(tp, 5)
    assign(d, [tp])
    assert d.poll(0) == {}
    assert d.consumer.seeks[-1] == (tp, 6)
    (letter,) = d.dead_letters.sent  # type: ignore[attr-defined]
    assert letter.reason == "corrupt_record" and letter.source.offset == 5 and "UnicodeDecodeError" in letter.detail
    assert d.slots[0].pipeline.offsets["captures"] == 6
    assert d.poll(0) == {}  # moved on: no second dead letter
    assert len(d.dead_letters.sent) == 1  # type: ignore[attr-defined]


def test_status_never_waits_for_the_loop() -> None:
    d = daemon()
    assign(d, [TP("captures", 0)])
    d.process({TP("captures", 0): [capture(1, 0)]})
    with d.lock:  # the loop is busy (say, a checkpoint to S3)
        doc = d.status()
    assert doc["records"] == 1 and doc["ready"] is True


class StalledPublisher(FakePublisher):
    """CloudWatch refusing data since the daemon started."""

    def __init__(self, clock: Any) -> None:
        super().__init__()
        self.clock = clock

    def stats(self) -> Any:
        from types import SimpleNamespace

        return SimpleNamespace(buffered_datums=10, last_success_ms=None, last_error_ms=self.clock.now_ms(),
                               last_error="EndpointConnectionError: Could not connect")


def test_readiness_says_when_cloudwatch_has_refused_data_for_too_many_ticks() -> None:
    d = daemon()
    d.publisher = StalledPublisher(d.clock)  # type: ignore[assignment]
    assign(d, [TP("captures", 0)])
    for _ in range(4):
        d.clock.advance(60_000)  # type: ignore[attr-defined]
        d.tick()
    assert d.readiness() == (True, "ready")  # four ticks: patience
    for _ in range(2):
        d.clock.advance(60_000)  # type: ignore[attr-defined]
        d.tick()
    ready, why = d.readiness()
    assert not ready and why.startswith("cannot publish to CloudWatch for 360 s") and "Could not connect" in why


class SilentCoordinator(FakeConsumer):
    """The group coordinator has not answered a heartbeat for a minute (the broker is away)."""

    def metrics(self) -> dict[str, dict[str, float]]:
        return {"consumer-coordinator-metrics": {"last-heartbeat-seconds-ago": 61.0}}

    def highwater(self, tp: Any) -> int:
        return 5  # stale fetch metadata: it would claim the partition is caught up


def test_lag_is_unknown_and_readiness_false_while_the_broker_is_away() -> None:
    d = daemon()
    d.consumer = SilentCoordinator()
    assign(d, [TP("captures", 0)])
    d.tick()
    ready, why = d.readiness()
    assert not ready and "no heartbeat from the Kafka group coordinator for 61 s" in why
    doc = d.status()
    assert doc["consumer_lag"] == {} and doc["consumer_connected"] is False


class LockCheckingConsumer(CommitRecorder):
    """Commits block for up to 30 s while the broker is away: never while holding the state lock."""

    def __init__(self, daemon_lock: Any) -> None:
        super().__init__()
        self.lock = daemon_lock

    def commit(self, offsets: Any = None) -> None:
        assert not self.lock.locked(), "commit() called while holding the daemon's lock"
        super().commit(offsets)


def test_offsets_are_committed_outside_the_state_lock() -> None:
    d = daemon()
    d.consumer = LockCheckingConsumer(d.lock)
    assign(d, [TP("captures", 0)])
    d.process({TP("captures", 0): [capture(1, 0)]})
    d.tick()
    assert d.consumer.commits  # type: ignore[attr-defined]


def labelled(i: int, offset: int) -> Rec:
    msg = {"inference_id": f"id{i}", "endpoint": "ep", "label": i % 2, "timestamp": NOW - 500}
    return Rec(offset, json.dumps(msg).encode(), f"id{i}".encode(), [], NOW)


def test_gauges_survive_a_restart_and_move_with_their_partition() -> None:
    store = Store()
    d = daemon(store)
    assign(d, [TP("captures", 0), TP("captures", 1)])
    d.process({TP("captures", 0): [capture(i, i) for i in range(40)], TP("labels", 0): [labelled(i, i) for i in range(40)],
               TP("captures", 1): [capture(100 + i, i) for i in range(35)]})
    d.tick()
    before = {s["dimensions"]["VariantName"]: s["gauges"] for s in d.status()["series"]}
    assert before["v"]["Precision"] == 0.5 and before["v"]["ErrorRate"] == 0.0
    again = daemon(store)  # a restart: the gauges come back from the checkpoints, not after a window
    assign(again, [TP("captures", 0), TP("captures", 1)])
    assert {s["dimensions"]["VariantName"]: s["gauges"] for s in again.status()["series"]} == before
    only_p1 = daemon(store)  # partition 0 moved elsewhere: only partition 1's share is here
    assign(only_p1, [TP("captures", 1)])
    (series,) = [s for s in only_p1.status()["series"] if len(s["dimensions"]) == 2]
    assert series["samples"]["Invocations"] == 35 and "Precision" not in series["gauges"]


def test_readiness_says_when_the_loop_itself_is_stuck() -> None:
    d = daemon()
    assign(d, [TP("captures", 0)])
    d.tick()
    d.clock.advance(3 * 60_000)  # type: ignore[attr-defined]
    assert d.readiness() == (True, "ready")
    d.clock.advance(1000)  # type: ignore[attr-defined]  # no tick for more than three tick intervals
    ready, why = d.readiness()
    assert not ready and why == "cannot consume: the loop has not ticked for 181 s"


def test_every_ready_instance_publishes_a_heartbeat_every_tick_without_traffic() -> None:
    """Issue 10, item 1: the liveness signal fail-safe alarms watch, independent of traffic."""
    pub = FakePublisher()
    d = daemon(publisher=pub)
    d.tick()
    assert pub.heartbeats == []  # not ready: no partitions assigned and restored yet
    assign(d, [TP("captures", 0)])
    for _ in range(3):
        d.tick()  # no records at all
        d.clock.advance(60_000)  # type: ignore[attr-defined]
    # one per tick bucket each tick completed (pipelines.heartbeat): the first vouches for the last one
    done = NOW - NOW % 60_000 - 60_000
    assert pub.heartbeats == [Datum("Heartbeat", (), done + i * 60_000, "Count", 1.0) for i in range(3)]
    d.tick()
    d.tick()  # a second tick in the same bucket (a rebalance, a slow scheduler) adds nothing
    assert len(pub.heartbeats) == 4 and pub.queue == {}  # apart from the exact counts (never checkpointed)
    d.clock.advance(150_000)  # type: ignore[attr-defined]  # a late tick completes two buckets at once
    d.tick()
    assert [b.timestamp_ms for b in pub.heartbeats[4:]] == [done + 4 * 60_000, done + 5 * 60_000]


def test_no_heartbeat_while_not_ready() -> None:
    store, pub = FailingStore(), FakePublisher()
    d = daemon(store, pub)
    assign(d, [TP("captures", 0)])
    d.tick()
    assert len(pub.heartbeats) == 1
    store.full = True  # the checkpoint fails: the instance holds and says it is not ready
    for _ in range(3):
        d.clock.advance(60_000)  # type: ignore[attr-defined]
        d.tick()
    assert not d.readiness()[0] and len(pub.heartbeats) == 1
    store.full = False
    d.clock.advance(60_000)  # type: ignore[attr-defined]
    d.tick()
    assert d.readiness()[0] and len(pub.heartbeats) == 2


def test_a_datum_cloudwatch_refused_goes_to_the_dead_letter_topic() -> None:
    from pipelines.datum import Datum

    d = daemon()
    assign(d, [TP("captures", 0)])
    d.on_refused(Datum("Invocations", (("EndpointName", "ep"),), NOW, "Count", 1.0), "InvalidParameterValue: nope")
    d.tick()
    (letter,) = d.dead_letters.sent  # type: ignore[attr-defined]
    assert letter.reason == "cloudwatch_refused" and "InvalidParameterValue" in letter.detail
    assert json.loads(letter.raw)["MetricName"] == "Invocations" and letter.source is None


def test_a_partition_to_restore_is_paused_in_the_callback_and_restored_by_the_loop() -> None:
    # kafka-python 3 runs the callback on the thread that sends the group's heartbeats
    store = Store()
    first = daemon(store)
    assign(first, [TP("captures", 0), TP("labels", 0)])
    first.process({TP("captures", 0): [capture(i, i) for i in range(3)]})
    first.tick()
    d = daemon(store)
    consumer: FakeConsumer = d.consumer  # type: ignore[assignment]
    d.on_partitions_assigned([TP("captures", 0), TP("labels", 0), TP("captures", 1), TP("labels", 1)])
    assert d.slots == {} and consumer.seeks == []
    assert consumer.paused == {TP("captures", 0), TP("labels", 0), TP("captures", 1), TP("labels", 1)}
    assert d.readiness() == (False, "waiting for partition assignment and state restore")
    assert d.restore_next()
    assert d.slots[0].pipeline.join.pending_captures == 3 and consumer.seeks == [(TP("captures", 0), 3)]
    assert consumer.paused == {TP("captures", 1), TP("labels", 1)} and not d.ready.is_set()
    assert d.restore_next() and not d.restore_next()
    assert sorted(d.slots) == [0, 1] and consumer.paused == set() and d.readiness()[0]


def test_a_partition_revoked_before_its_restore_is_not_restored() -> None:
    d = daemon()
    d.on_partitions_assigned([TP("captures", 0), TP("captures", 1)])
    assert d.restore_next()
    d.on_partitions_revoked([TP("captures", 0), TP("captures", 1)])
    assert not d.restore_next() and list(d.parked) == [0]
    d.on_partitions_assigned([TP("captures", 0)])  # kept here: taken back at once, nothing to restore
    assert list(d.slots) == [0] and not d.restore_next() and d.ready.is_set()


def test_backpressure_resumes_only_restored_partitions_and_a_restore_waits_for_it_to_end() -> None:
    d = daemon()
    consumer: FakeConsumer = d.consumer  # type: ignore[assignment]
    d.publisher.buffered = 100  # type: ignore[attr-defined]
    d.on_partitions_assigned([TP("captures", 0), TP("captures", 1)])
    consumer.assigned = {TP("captures", 0), TP("captures", 1)}
    assert d.restore_next()
    d.apply_backpressure()
    assert d.paused and d.restore_next()
    assert consumer.paused == {TP("captures", 0), TP("captures", 1)}  # restored, but paused: the buffer is full
    d.on_partitions_assigned([TP("captures", 0), TP("captures", 1), TP("captures", 2)])  # 2 not restored yet
    consumer.assigned.add(TP("captures", 2))
    d.publisher.buffered = 0  # type: ignore[attr-defined]
    d.apply_backpressure()
    assert not d.paused and consumer.paused == {TP("captures", 2)}
