"""The daemon's consume -> join -> publish loop (`rollguard run`; wired in service/wiring.py).

One thread owns all pipeline state: it polls Kafka, feeds records to the partition pipelines
and, when the scheduler flags a tick, expires, drains, checkpoints and hands datums to the
publisher, which sends them from its own thread so a slow or failing CloudWatch never blocks
consumption. Order per tick: drain -> dead letters flushed -> checkpoint (state, offsets,
unsent datums) -> enqueue for publishing. A crash can therefore repeat at most the datums a
checkpoint still lists as unsent, never lose any.
"""
from __future__ import annotations

import dataclasses
import json
import logging
import math
import queue
import threading
from collections.abc import Iterable, Sequence
from dataclasses import dataclass, field
from typing import Any, Protocol

from pipelines import metrics
from pipelines.comparison.config import Comparison
from pipelines.comparison.report import verdict_json
from pipelines.datum import Datum
from pipelines.heartbeat import heartbeat_stamps
from pipelines.join import JoinPolicy, JoinState
from pipelines.parse import ParseLimits
from pipelines.processor import PartitionPipeline, PipelineConfig
from pipelines.records import BadRecord, Source
from pipelines.series import NameCap, SegmentCap
from pipelines.verdict import decide
from pipelines.window import SlidingWindow, gauge_datums
from service import checkpoint, verdicts
from service.clock import SystemClock
from service.consumer import corrupt_position, rebalance_listener
from service.daemon_status import pipeline_totals, window_series
from service.dead_letter import DeadLetters
from service.settings import Settings
from service.state import MemoryStores, StateStores
from service.state_commits import Commit, restore_progress, state_status

log = logging.getLogger("rollguard")

BATCH_DATUMS = 500
CLOUDWATCH_REFUSED = "cloudwatch_refused"  # a datum CloudWatch refused; its PutMetricData entry as JSON
CORRUPT_RECORD = "corrupt_record"  # the Kafka client could not decode it; skipped by offset


class RestoreRefused(ValueError):
    """A partition's checkpoint could not be restored (refused format, corrupt): the daemon stops."""


class Consumer(Protocol):
    def subscribe(self, topics: list[str], listener: Any = None) -> None: ...
    def partitions_for_topic(self, topic: str) -> set[int]: ...
    def assignment(self) -> set[Any]: ...
    def pause(self, *partitions: Any) -> None: ...
    def resume(self, *partitions: Any) -> None: ...
    def poll(self, timeout_ms: int = 0, max_records: int | None = None) -> dict[Any, list[Any]]: ...
    def seek(self, partition: Any, offset: int) -> None: ...
    def commit(self, offsets: Any = None) -> None: ...
    def close(self, autocommit: bool = True) -> None: ...


class Publisher(Protocol):
    """alarms.publisher.Publisher's interface as the loop uses it; enqueue must not block."""

    def enqueue(self, batch_id: str, datums: Iterable[Datum]) -> Any: ...
    def pending(self) -> list[str]: ...
    def discard(self, batch_ids: Iterable[str]) -> Any: ...
    def flush(self, deadline_ms: int | None = None) -> Any: ...
    def wake(self) -> None: ...
    def buffered_datums(self) -> int: ...


def pipeline_config(settings: Settings, comparisons: Sequence[Comparison] = ()) -> PipelineConfig:
    return PipelineConfig(
        captures_topic=settings.captures_topic,
        labels_topic=settings.labels_topic,
        tick_ms=int(settings.tick_seconds * 1000),
        join=JoinPolicy(
            label_ttl_ms=settings.label_ttl_seconds * 1000,
            label_wait_ms=settings.label_wait_seconds * 1000,
            max_pending=settings.pending_cap(),
            expiry_labels=dict(settings.expiry_labels),
        ),
        limits=ParseLimits(max_bytes=settings.max_record_bytes, max_future_ms=settings.max_future_seconds * 1000),
        score_threshold=settings.score_threshold,
        score_thresholds=dict(settings.score_thresholds),
        segment_gauges=settings.segment_gauges,
        comparisons=tuple(comparisons),
    )


def segment_cap(settings: Settings, extra_attributes: tuple[str, ...] = ()) -> SegmentCap:
    """The segment mapping the settings describe: allow-listed values, else first come."""
    return SegmentCap(settings.segment_attributes + extra_attributes, settings.segment_cardinality_cap,
                      settings.segment_values)


@dataclass
class Slot:
    """A partition this instance owns: its pipeline and the datums not yet confirmed sent."""

    pipeline: PartitionPipeline
    unsent: dict[str, list[Datum]] = field(default_factory=dict)
    sent: set[str] = field(default_factory=set)  # unsent in the last checkpoint, sent since
    # drained but not yet in a written checkpoint: never handed to the publisher before one is,
    # so a restart from an older checkpoint cannot publish them twice
    held: list[str] = field(default_factory=list)
    # next offsets as of the last written checkpoint: the only offsets ever committed
    checkpointed: dict[str, int] = field(default_factory=dict)
    # a disk store's checkpoint being written in the background, and whether the last one failed
    commit: Commit | None = None
    failed: bool = False


@dataclass
class DaemonStats:
    records: int = 0
    ticks: int = 0
    checkpoints: int = 0
    checkpoint_failures: int = 0
    corrupt_records: int = 0
    last_tick_ms: int = 0
    last_checkpoint_ms: int = 0
    started_ms: int = 0
    lag: dict[str, int] = field(default_factory=dict)  # "topic[partition]" -> records behind


class Daemon:
    def __init__(
        self,
        settings: Settings,
        *,
        consumer: Consumer,
        dead_letters: DeadLetters,
        publisher: Publisher,
        store: checkpoint.CheckpointStore,
        clock: Any = None,
        comparisons: Sequence[Comparison] = (),
        state: StateStores | None = None,
    ) -> None:
        self.settings = settings
        self.state: StateStores = state if state is not None else MemoryStores()
        self.restoring: dict[int, tuple[int, int]] = {}  # partition -> (bytes done, bytes in all)
        self.comparisons = tuple(comparisons)
        self.config = pipeline_config(settings, self.comparisons)
        self.consumer = consumer
        self.dead_letters = dead_letters
        self.publisher = publisher
        self.store = store
        self.clock = clock or SystemClock()
        self.segments = segment_cap(settings)
        self.names = NameCap(settings.endpoints, settings.max_endpoints, settings.max_variants, settings.max_model_versions)
        self._window_ms = int(settings.window_seconds * 1000)
        self.slots: dict[int, Slot] = {}
        # revoked in a rebalance, kept until the new assignment says whether they stay here
        self.parked: dict[int, Slot] = {}
        # assigned, paused, and restored by the loop (`restore_next`), not in the rebalance callback
        self.unrestored: dict[int, list[Any]] = {}  # partition -> its topic-partitions
        self.stats = DaemonStats(started_ms=self.clock.now_ms())
        self.tick_due = threading.Event()
        self.ready = threading.Event()  # partitions assigned and restored
        self.lock = threading.Lock()  # serialises the loop and the rebalance callbacks; never held by readers
        self._tick_seq = 0
        self.paused = False  # consumption paused for backpressure
        self._ledger_lock = threading.Lock()
        self.hold: str | None = None  # why state cannot be saved right now (then nothing is committed)
        self.consumer_stall: str | None = None  # why the broker seems unreachable
        self._assigned_ms = 0
        self._refused: queue.SimpleQueue[tuple[Datum, str]] = queue.SimpleQueue()
        self._status: dict[str, Any] | None = None  # taken at tick time, served to readers
        self._heartbeat_ms: int | None = None  # when the last heartbeat went out (None: not since ready)
        self._verdict_prefix = verdicts.prefix(settings.group_id, settings.captures_topic, settings.labels_topic)
        self.evidence: verdicts.Evidence | None = None  # every partition's comparison counts, read at the last tick
        self.evidence_error: str | None = None  # why they could not be read
        self._comparison_status: tuple[Any, list[dict[str, Any]]] | None = None  # (evidence, table), judged on demand

    # -- partition ownership ----------------------------------------------------------------
    def _checkpoint_name(self, partition: int) -> str:
        s = self.settings
        return f"{s.group_id}.{s.captures_topic}.{s.labels_topic}.p{partition}.ckpt"

    def _new_pipeline(self, partition: int) -> PartitionPipeline:
        join = JoinState(self.config.join, store=self.state.new(partition))
        return PartitionPipeline(partition, self.config, self.segments, self._new_window(), join=join, names=self.names)

    def _new_window(self) -> SlidingWindow:
        """Each partition keeps its own share of the gauges, checkpointed with it and moving with it."""
        return SlidingWindow(self._window_ms, self.config.tick_ms, self.settings.min_samples)

    def _windows(self) -> list[SlidingWindow]:
        return [slot.pipeline.window for slot in self.slots.values() if isinstance(slot.pipeline.window, SlidingWindow)]

    def window(self) -> SlidingWindow:
        """The gauges' window over every partition this instance owns."""
        return SlidingWindow.merged(self._windows(), self._window_ms, self.config.tick_ms, self.settings.min_samples)

    def _slot(self, partition: int) -> Slot:
        """The slot of an owned partition; one a record arrives for unannounced (cannot happen
        with co-partitioned topics) is loaded rather than its records dropped."""
        slot = self.slots.get(partition)
        if slot is None:
            slot = self.slots[partition] = self.load_partition(partition)
        return slot

    def load_partition(self, partition: int) -> Slot:
        name = self._checkpoint_name(partition)
        data = self.store.load(name)
        if data is None:
            return Slot(self._new_pipeline(partition))
        state = checkpoint.decode(data, name)
        section = state.get("store")
        with restore_progress(self.restoring, partition, section):
            store = self.state.restore(partition, section, lambda done: self.restoring.__setitem__(
                partition, (done, self.restoring[partition][1])))
        pipeline = PartitionPipeline.restore(state["pipeline"], self.config, self.segments, self._new_window(),
                                             names=self.names, store=store)
        slot = Slot(pipeline, checkpointed=dict(pipeline.offsets))
        ledger = self.store.load(name + ".sent")
        already = set(json.loads(ledger)) if ledger else set()
        for batch_id, datums in state.get("unsent", {}).items():
            if batch_id not in already:  # sent after that checkpoint was written
                slot.unsent[batch_id] = datums
                self.publisher.enqueue(batch_id, datums)
        log.info("restored partition %d at offsets %s with %d pending joins, %d unsent batches",
                 partition, pipeline.offsets, pipeline.join.pending_captures, len(slot.unsent))
        return slot

    def on_partitions_assigned(self, assigned: list[Any]) -> None:
        """Take over what this instance kept; a partition to restore from its checkpoint is paused
        and left to `restore_next`. kafka-python 3 calls this on its IO thread, which also sends
        the group heartbeats: a restore here (~40 s from S3 at the sizing guide's partition size)
        outlasting the session timeout got the instance evicted and the group rebalanced again."""
        with self.lock:
            partitions = {tp.partition for tp in assigned}
            for p in sorted(set(self.parked) - partitions):
                # another instance owns it now and restores it from the checkpoint
                gone = self.parked.pop(p)
                self.publisher.discard(list(gone.unsent))
                self.state.drop(gone.pipeline.join.store)
            self.unrestored = {}
            for tp in assigned:
                slot = self.slots.get(tp.partition) or self.parked.pop(tp.partition, None)
                if slot is None:
                    self.unrestored.setdefault(tp.partition, []).append(tp)
                    continue
                self.slots[tp.partition] = slot
                self._seek(slot, [tp])
            if self.unrestored:
                self.consumer.pause(*self._unrestored_tps())
            log.info("assigned partitions %s", sorted(partitions))
            self._assigned_ms = self.clock.now_ms()
            if not self.unrestored:
                self.ready.set()
            self._status = self._build_status(self.clock.now_ms())

    def restore_next(self) -> bool:
        """Restore one assigned partition from its checkpoint, on the loop's thread, and resume it;
        False when none waits. One a call, so the loop polls between restores."""
        if not self.unrestored:  # the loop asks every poll: no lock for the usual answer
            return False
        with self.lock:
            if not self.unrestored:
                return False
            partition = min(self.unrestored)
            tps = self.unrestored[partition]
            try:
                slot = self.slots.get(partition) or self.load_partition(partition)
            except ValueError as ex:  # a checkpoint refused: one line, as from the rebalance callback
                raise RestoreRefused(str(ex)) from ex
            del self.unrestored[partition]
            self.slots[partition] = slot
            self._seek(slot, tps)
            if not self.paused:
                self.consumer.resume(*tps)
            if not self.unrestored:
                self.ready.set()
                self._status = self._build_status(self.clock.now_ms())
            return True

    def _unrestored_tps(self) -> set[Any]:
        return {tp for tps in self.unrestored.values() for tp in tps}

    def _seek(self, slot: Slot, tps: list[Any]) -> None:
        for tp in tps:
            offset = slot.pipeline.offsets.get(tp.topic)
            if offset is not None:
                self.consumer.seek(tp, offset)

    def on_partitions_revoked(self, revoked: list[Any]) -> None:
        with self.lock:  # not restored yet: nothing of them here to save
            for tp in revoked:
                self.unrestored.pop(tp.partition, None)
        partitions = sorted({tp.partition for tp in revoked} & set(self.slots))
        if not partitions:
            return
        with self.lock:
            self._tick(partitions, commit=False)  # no blocking consumer calls inside a rebalance
            self._settle(partitions, wait=True)
            self.publisher.flush(deadline_ms=self.clock.now_ms() + 5000)
            if self.hold is None:
                for p in partitions:
                    self._checkpoint(p)
                self._settle(partitions, wait=True)
            for p in partitions:
                self.parked[p] = self.slots.pop(p)
            log.info("revoked partitions %s", partitions)

    def on_refused(self, datum: Datum, why: str) -> None:
        """From the publisher's thread: CloudWatch refused this datum for good (the rest of its
        request was sent). It goes to the dead-letter topic at the next tick, from the loop."""
        self._refused.put((datum, why))

    def _dead_letter_refused(self) -> None:
        while True:
            try:
                datum, why = self._refused.get_nowait()
            except queue.Empty:
                return
            raw = json.dumps(datum.to_cloudwatch(), sort_keys=True).encode()
            self.dead_letters.send(BadRecord(CLOUDWATCH_REFUSED, f"CloudWatch refused the datum: {why}"[:300], raw), None)

    def on_sent(self, batch_ids: list[str]) -> None:
        """From the publisher's thread: record at once that these batches reached CloudWatch,
        so a crash before the next checkpoint does not send them again."""
        by_partition: dict[int, list[str]] = {}
        for batch_id in batch_ids:
            if batch_id.startswith("p"):
                by_partition.setdefault(int(batch_id[1:].split("-", 1)[0]), []).append(batch_id)
        with self._ledger_lock:
            for p, ids in by_partition.items():
                slot = self.slots.get(p) or self.parked.get(p)
                if slot is None:
                    continue
                slot.sent.update(ids)
                self._save_ledger(p, slot)

    def _save_ledger(self, partition: int, slot: Slot) -> None:
        try:
            self.store.save(self._checkpoint_name(partition) + ".sent", json.dumps(sorted(slot.sent)).encode())
        except Exception as ex:  # the checkpoint still lists them: at worst one tick is sent twice
            log.warning("could not record sent batches of partition %d: %s", partition, ex)

    # -- the loop ---------------------------------------------------------------------------
    def process(self, batch: dict[Any, list[Any]]) -> None:
        now = self.clock.now_ms()
        with self.lock:
            for tp, records in batch.items():
                pipeline = self._slot(tp.partition).pipeline
                expected = pipeline.offsets.get(tp.topic)
                if expected is not None and records[0].offset != expected:
                    log.warning("%s[%d]: read offset %d, expected %d", tp.topic, tp.partition, records[0].offset, expected)
                rows = []
                for rec in records:
                    try:
                        headers = dict(rec.headers or ())
                    except (TypeError, ValueError):  # headers that are not (key, value) pairs
                        headers = {}
                    rows.append((rec.value or b"", rec.offset, headers, rec.timestamp))
                for i, bad in pipeline.submit_many(tp.topic, rows, now):
                    self.dead_letters.send(bad, records[i].key)
                self.stats.records += len(records)

    def skip_corrupt(self, tp: Any, offset: int, error: BaseException) -> None:
        """A record the Kafka client cannot even decode (say, a header key that is not UTF-8):
        dead-letter what is known about it and move past it, so it cannot crash-loop the loop."""
        with self.lock:
            slot = self._slot(tp.partition)
            detail = f"the Kafka client cannot decode the record: {type(error).__name__}: {error}".splitlines()[0][:300]
            bad = BadRecord(CORRUPT_RECORD, detail, b"", Source(tp.topic, tp.partition, offset))
            slot.pipeline.offsets[tp.topic] = offset + 1
            slot.pipeline.bad_records[CORRUPT_RECORD] += 1
            self.dead_letters.send(bad, None)
            self.stats.corrupt_records += 1
            log.error("%s[%d] offset %d: %s; skipped and dead-lettered", tp.topic, tp.partition, offset, detail)
        self.consumer.seek(tp, offset + 1)

    def tick(self) -> None:
        with self.lock:
            self._tick(sorted(self.slots))
            self._heartbeat()
            self.tick_due.clear()
        self.publisher.wake()  # what the tick released goes out now, not at the flusher's next interval
        self._commit()

    def _heartbeat(self) -> None:
        """Tell CloudWatch this instance is alive, whatever the traffic, while it is ready: a
        fail-safe alarm on `Heartbeat` goes to ALARM when every instance stops. One datum per
        tick bucket this tick completed (`pipelines.heartbeat`: its counts are drained), so its
        Sum per period is the number of live instances. Its own batch, not part of the exact
        counts (like the gauges); after a spell of not being ready, only the newest bucket."""
        now = self.clock.now_ms()
        if not self.readiness()[0]:
            self._heartbeat_ms = None
            return
        stamps = heartbeat_stamps(self._heartbeat_ms, now, self.config.tick_ms)
        self._heartbeat_ms = now
        if stamps:
            beats = [Datum(metrics.HEARTBEAT, (), ts, metrics.COUNT_UNIT, 1.0) for ts in stamps]
            self.publisher.enqueue(f"heartbeat-{now}-{self._tick_seq}", beats)

    def _tick(self, partitions: list[int], commit: bool = True) -> None:
        self._settle(partitions, wait=True)  # expiry reads the store: the last commit must be in it
        now = self.clock.now_ms()
        self._tick_seq += 1
        pending = set(self.publisher.pending())
        for p in partitions:
            slot = self.slots[p]
            slot.unsent = {b: d for b, d in slot.unsent.items() if b in pending or b in slot.held}
            datums = slot.pipeline.tick(now)
            # batches no bigger than about one PutMetricData request, so "sent" is recorded
            # per request and a crash can repeat at most one request's worth
            for i in range(0, len(datums), BATCH_DATUMS):
                batch_id = f"p{p}-{now}-{self._tick_seq}-{i // BATCH_DATUMS}"
                slot.unsent[batch_id] = datums[i:i + BATCH_DATUMS]
                slot.held.append(batch_id)
        self._dead_letter_refused()
        # a checkpoint moves offsets past the bad records, so their dead letters come first
        if not self.dead_letters.flush(timeout_s=min(5.0, self.settings.tick_seconds)):
            self._hold(f"{self.dead_letters.pending()} dead letters not confirmed written: {self.dead_letters.last_error}")
        else:
            written = {p: self._checkpoint(p) for p in partitions}
            if all(w is not False for w in written.values()) and not any(s.failed for s in self.slots.values()):
                self.hold = None
            for p in partitions:
                if written[p] is True:
                    self._release(self.slots[p], list(self.slots[p].held), dict(self.slots[p].pipeline.offsets))
        for partition_window in self._windows():
            partition_window.evict(now)
        window = self.window()
        gauges = gauge_datums(window, now, self.config.tick_ms)
        if gauges:  # not part of the exact counts: a restart only recomputes them
            self.publisher.enqueue(f"gauges-{now}-{self._tick_seq}", gauges)
        if self.comparisons:
            self._judge(now)
        if commit:
            self._measure_lag()
        self.stats.ticks += 1
        self.stats.last_tick_ms = now
        self._status = self._build_status(now, window)

    def _judge(self, now: int) -> None:
        """Sum every partition's comparison counts (this instance's and the others', from the
        state location) and publish each comparison's `Verdict`, while ready: a verdict that
        stops arriving is what the fail-safe verdict alarm reads as ALARM."""
        try:
            self.evidence = verdicts.gather(self.store, self._verdict_prefix, self.comparisons)
            self.evidence_error = None
        except Exception as ex:  # the store is away: no verdict this tick, the alarm's fail-safe acts
            self.evidence = None
            self.evidence_error = f"{type(ex).__name__}: {ex}".splitlines()[0]
            log.error("cannot read the comparison counts: %s", self.evidence_error)
            return
        for problem in verdicts.describe_problems(self.evidence):
            log.warning("%s", problem)
        if not self.readiness()[0]:
            return
        datums = []
        for c in self.comparisons:
            state = decide(c.config(), self.evidence.tally(c).counts(c)).state
            dims = ((metrics.ENDPOINT_NAME, c.endpoint), (metrics.COMPARISON, c.name))
            datums.append(Datum(metrics.VERDICT, dims, now, metrics.GAUGE_UNIT, metrics.VERDICT_VALUES[state.value]))
        self.publisher.enqueue(f"verdicts-{now}-{self._tick_seq}", datums)

    def comparison_status(self) -> list[dict[str, Any]]:
        """Each comparison's verdict with its table, judged from the last tick's counts when
        asked (the full table takes a while with many segments; never under the loop's lock)."""
        evidence, cached = self.evidence, self._comparison_status
        if cached is not None and cached[0] is evidence:
            return cached[1]
        out: list[dict[str, Any]] = []
        for c in self.comparisons:
            if evidence is None:
                out.append({"name": c.name, "endpoint": c.endpoint, "state": None, "error": self.evidence_error})
                continue
            out.append({**verdict_json(c, evidence.verdict(c)), "evidence": verdicts.plain(evidence)})
        self._comparison_status = (evidence, out)
        return out

    def _release(self, slot: Slot, batches: list[str], offsets: dict[str, int]) -> None:
        """A checkpoint holding `batches` and `offsets` is written: publish them, commit those."""
        for batch_id in batches:
            if batch_id in slot.unsent:
                self.publisher.enqueue(batch_id, slot.unsent[batch_id])
        released = set(batches)
        slot.held = [b for b in slot.held if b not in released]
        slot.checkpointed = offsets

    def _settle(self, partitions: Iterable[int] | None = None, wait: bool = False) -> None:
        """Finish the background checkpoints (disk store) that are done, or all when `wait`:
        release what they hold, or hold on (and retry at the next tick) when one failed."""
        released = False
        for p in sorted(self.slots) if partitions is None else partitions:
            slot = self.slots.get(p)
            c = slot.commit if slot is not None else None
            if slot is None or c is None or not (wait or c.job.done()):
                continue
            slot.commit = None
            error = c.error()
            if error is not None:
                slot.failed = True
                self.stats.checkpoint_failures += 1
                broken = getattr(slot.pipeline.join.store, "broken", None)
                if broken is not None:  # the local store lost a tick's changes: only a restart is exact
                    raise SystemExit(f"rollguard: partition {p}: {broken}; restart to resume from the last checkpoint")
                self._hold(f"checkpoint of partition {p}: {error}")
                continue
            slot.failed = False
            self._checkpointed(p, slot, c.unsent)
            self._release(slot, c.batches, c.offsets)
            released = True
            if not any(s.failed for s in self.slots.values()):
                self.hold = None
        if released and all(s.commit is None for s in self.slots.values()):
            self.publisher.wake()  # the tick's last checkpoint is written: its datums go out in full requests

    def _checkpointed(self, partition: int, slot: Slot, unsent: set[str]) -> None:
        self.stats.checkpoints += 1
        self.stats.last_checkpoint_ms = self.clock.now_ms()
        with self._ledger_lock:
            if slot.sent - unsent:
                slot.sent &= unsent
                self._save_ledger(partition, slot)

    def _hold(self, why: str) -> None:
        if self.hold != why:
            log.error("state cannot be saved, holding counts and offsets until it can: %s", why)
        self.hold = why

    def _commit(self) -> None:
        """Commit the offsets of the last written checkpoints (for lag tools and for a restart
        without a checkpoint); never past what a checkpoint holds. Outside the lock: it is I/O."""
        from kafka import OffsetAndMetadata, TopicPartition

        offsets = {TopicPartition(topic, p): OffsetAndMetadata(offset, "", -1)
                   for p, slot in list(self.slots.items()) for topic, offset in slot.checkpointed.items()}
        if not offsets:
            return
        commit_async = getattr(self.consumer, "commit_async", None)
        try:
            if commit_async is not None:
                commit_async(offsets)
            else:
                self.consumer.commit(offsets)
        except Exception as ex:  # a rebalance in progress or the broker away; the next tick commits again
            log.warning("offset commit failed: %s", ex)

    def _measure_lag(self) -> None:
        """Records behind the end of each owned partition (from fetch metadata, no broker call);
        unknown, not 0, while the group coordinator cannot be reached."""
        self.consumer_stall = self._consumer_stall()
        highwater = getattr(self.consumer, "highwater", None)
        if highwater is None:
            return
        if self.consumer_stall is not None:
            self.stats.lag = {}
            return
        from kafka import TopicPartition

        lag: dict[str, int] = {}
        for p, slot in self.slots.items():
            for topic in (self.settings.captures_topic, self.settings.labels_topic):
                end = highwater(TopicPartition(topic, p))
                if end is not None:
                    lag[f"{topic}[{p}]"] = max(0, end - slot.pipeline.offsets.get(topic, 0))
        self.stats.lag = lag

    def _consumer_stall(self) -> str | None:
        metrics = getattr(self.consumer, "metrics", None)
        if metrics is None:
            return None
        try:
            ago = metrics().get("consumer-coordinator-metrics", {}).get("last-heartbeat-seconds-ago")
        except Exception:  # noqa: BLE001 - metrics are advisory
            return None
        limit = self.settings.ready_consumer_stall_seconds
        if isinstance(ago, (int, float)) and math.isfinite(ago) and ago > limit:
            return f"cannot consume: no heartbeat from the Kafka group coordinator for {ago:.0f} s"
        return None

    def readiness(self) -> tuple[bool, str]:
        """(ready, one-line reason) for /readyz; reads plain fields only, never blocks."""
        for p, (done, total) in list(self.restoring.items()):
            return False, f"restoring partition {p} ({done / 1e6:.1f} of {total / 1e6:.1f} MB)"
        if not self.ready.is_set() or self.unrestored:
            return False, "waiting for partition assignment and state restore"
        if self.hold is not None:
            return False, f"checkpoint failing: {self.hold}"
        if self.consumer_stall is not None:
            return False, self.consumer_stall
        stats = getattr(self.publisher, "stats", None)
        if stats is not None:
            pub = stats()
            stall_ms = self.settings.ready_publish_stall_ticks * self.config.tick_ms
            last_ok = pub.last_success_ms if pub.last_success_ms is not None else self.stats.started_ms
            now = self.clock.now_ms()
            if pub.buffered_datums and pub.last_error_ms is not None and pub.last_error_ms > last_ok \
                    and now - last_ok > stall_ms:
                return False, f"cannot publish to CloudWatch for {(now - last_ok) / 1000:.0f} s: {pub.last_error}"
        # the loop itself may be stuck (a Kafka client call blocking while the broker is away),
        # and then nothing above is refreshed
        silent_ms = self.clock.now_ms() - max(self.stats.last_tick_ms, self._assigned_ms)
        if silent_ms > max(3 * self.config.tick_ms, self.settings.ready_consumer_stall_seconds * 1000):
            return False, f"cannot consume: the loop has not ticked for {silent_ms / 1000:.0f} s"
        return True, "ready"

    def status(self) -> dict[str, Any]:
        """What `rollguard status` and /v1/status show: the view taken at the last tick (or
        assignment), plus plain counters; never waits for the loop."""
        snapshot = self._status
        if snapshot is None:
            with self.lock:
                snapshot = self._status = self._build_status(self.clock.now_ms())
        ready, why = self.readiness()
        publisher_stats = getattr(self.publisher, "stats", None)  # its own lock, never the loop's
        # live, not from the last tick: a restore runs inside an assignment, between ticks
        state = state_status(self.state, self.restoring, [slot.pipeline.join.store for slot in list(self.slots.values())])
        return {**snapshot, "state": state, "records": self.stats.records, "ready": ready,
                "not_ready_reason": None if ready else why,
                "publisher": dataclasses.asdict(publisher_stats()) if publisher_stats else {},
                **({"comparisons": self.comparison_status()} if self.comparisons else {})}

    def _build_status(self, now: int, window: SlidingWindow | None = None) -> dict[str, Any]:
        return {
            "now_ms": now,
            "window_seconds": self.settings.window_seconds,
            "min_samples": self.settings.min_samples,
            "partitions": sorted(self.slots),
            "series": window_series(self.window() if window is None else window, now),
            **pipeline_totals(slot.pipeline for slot in self.slots.values()),
            "dead_letters": dict(self.dead_letters.written),
            "dead_letters_pending": self.dead_letters.pending(),
            "consumer_lag": dict(self.stats.lag),
            "consumer_connected": self.consumer_stall is None,
            "ticks": self.stats.ticks,
            "last_tick_ms": self.stats.last_tick_ms,
            "last_checkpoint_ms": self.stats.last_checkpoint_ms,
            "checkpoint_failures": self.stats.checkpoint_failures,
            "corrupt_records": self.stats.corrupt_records,
            "state_hold": self.hold,
            "started_ms": self.stats.started_ms,
        }

    def _checkpoint(self, partition: int) -> bool | None:
        """Write one partition's checkpoint; False (counted, logged, held) when it cannot be,
        None when a disk store writes it in the background (`_settle` finishes it)."""
        slot = self.slots[partition]
        with self._ledger_lock:
            slot.unsent = {b: d for b, d in slot.unsent.items() if b not in slot.sent}
        state = {"pipeline": slot.pipeline.snapshot(), "unsent": dict(slot.unsent)}
        store = slot.pipeline.join.store
        if not store.inline:
            self._start_commit(partition, slot, state)
            return None
        try:
            self.store.save(self._checkpoint_name(partition), checkpoint.encode(state))
            counts = self._comparison_counts(partition, slot)
            if counts is not None:  # after the checkpoint: never ahead of the state it restores
                self.store.save(*counts)
        except Exception as ex:  # keep running: the state is in memory and the next tick retries
            self.stats.checkpoint_failures += 1
            self._hold(f"checkpoint of partition {partition}: {type(ex).__name__}: {ex}".splitlines()[0])
            return False
        self._checkpointed(partition, slot, set(slot.unsent))
        return True

    def _comparison_counts(self, partition: int, slot: Slot) -> tuple[str, bytes] | None:
        """(name, bytes) of the partition's comparison-counts object, taken with its checkpoint."""
        if not self.comparisons:
            return None
        data = verdicts.encode(partition, slot.pipeline.offsets, slot.pipeline.comparison_tallies())
        return verdicts.object_name(self._verdict_prefix, partition), data

    def _start_commit(self, partition: int, slot: Slot, state: dict[str, Any]) -> None:
        """The disk store writes the tick's changes and ships them in the background; the
        checkpoint file (small state, offsets, unsent datums, the files) is written after them."""
        prepared = checkpoint.prepare(state)  # now, on this thread: the pipeline moves on
        counts = self._comparison_counts(partition, slot)
        name = self._checkpoint_name(partition)

        def finish(section: Any) -> None:
            self.store.save(name, checkpoint.seal(prepared, section))
            if counts is not None:  # after the checkpoint: never ahead of the state it restores
                self.store.save(*counts)

        job = slot.pipeline.join.store.commit(finish)  # type: ignore[attr-defined]
        slot.commit = Commit(job, list(slot.held), dict(slot.pipeline.offsets), set(slot.unsent))

    def apply_backpressure(self) -> None:
        """Pause consumption while CloudWatch is not taking data and the publisher's buffer is
        80 % full, resume below 50 %: records then wait in Kafka instead of being dropped."""
        buffered = self.publisher.buffered_datums()
        limit = self.settings.max_buffered_datums
        if not self.paused and buffered >= 0.8 * limit:
            self.paused = True
            log.warning("publisher buffer %d/%d datums: pausing consumption until CloudWatch catches up", buffered, limit)
        elif self.paused and buffered < 0.5 * limit:
            self.paused = False
            self.consumer.resume(*(self.consumer.assignment() - self._unrestored_tps()))  # the rest once restored
            log.warning("publisher buffer %d/%d datums: resuming consumption", buffered, limit)
        if self.paused:
            self.consumer.pause(*self.consumer.assignment())  # again: a rebalance resets pauses

    def poll(self, timeout_ms: int) -> dict[Any, list[Any]]:
        """One poll; a record the client cannot decode is skipped (and dead-lettered), never raised."""
        try:
            return self.consumer.poll(timeout_ms=timeout_ms, max_records=2000)
        except Exception as ex:
            if type(ex).__name__ != "CorruptRecordError":
                raise
            where = corrupt_position(self.consumer)
            if where is None:
                raise
            self.skip_corrupt(where[0], where[1], ex)
            return {}

    def run(self, stop: threading.Event, poll_timeout_ms: int = 200) -> None:
        s = self.settings
        self.consumer.subscribe([s.captures_topic, s.labels_topic], listener=rebalance_listener(self))
        self._await_topic_metadata()
        while not stop.is_set():
            batch = self.poll(0 if self.unrestored else poll_timeout_ms)
            if batch:
                self.process(batch)
            self.restore_next()
            if any(slot.commit is not None for slot in list(self.slots.values())):
                with self.lock:
                    self._settle()
            if self.tick_due.is_set():
                self.tick()
                self.apply_backpressure()
        self.close()

    def _await_topic_metadata(self) -> None:
        """Have both topics' partitions before the first poll joins the group.

        Without them the group leader assigns nothing, and a second rebalance must follow once
        the metadata arrives: a wasted rebalance at every start, and kafka-python 3.0.12 has been
        seen never to finish it (an instance that sat on an empty assignment for 17 minutes,
        spinning in poll). Asked after subscribing, so the metadata the join compares against
        already lists them. A failure here only costs that second rebalance."""
        s = self.settings
        try:
            for topic in (s.captures_topic, s.labels_topic):
                self.consumer.partitions_for_topic(topic)
        except Exception as ex:  # noqa: BLE001 - the join fetches metadata itself
            log.warning("could not fetch topic metadata before joining the group: %s", ex)

    def close(self) -> None:
        """Final tick, a bounded last flush, a final checkpoint; then leave the group.

        Raises SystemExit with one line when the final checkpoint cannot be written, so the
        process exits non-zero and the operator knows the next start replays from an older one.
        """
        with self.lock:
            if self.slots:
                self._tick(sorted(self.slots), commit=False)
                self._settle(wait=True)
            self.publisher.flush(deadline_ms=self.clock.now_ms() + 10_000)
            pending = set(self.publisher.pending())
            ok = self.hold is None
            if ok:
                for p, slot in self.slots.items():
                    slot.unsent = {b: d for b, d in slot.unsent.items() if b in pending or b in slot.held}
                    ok = self._checkpoint(p) is not False and ok
                self._settle(wait=True)
                ok = ok and self.hold is None
        self._commit()
        self.consumer.close(autocommit=False)  # may revoke, which ticks and checkpoints once more
        self.dead_letters.close()
        self.state.close()
        if not ok:
            raise SystemExit(f"rollguard: final checkpoint failed, the next start resumes from the last one written: {self.hold}")
