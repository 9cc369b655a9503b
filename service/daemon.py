"""`rollguard run`: the consume -> join -> publish loop.

One thread owns all pipeline state: it polls Kafka, feeds records to the partition pipelines
and, when the scheduler flags a tick, expires, drains, checkpoints and hands datums to the
publisher, which sends them from its own thread so a slow or failing CloudWatch never blocks
consumption. Order per tick: drain -> dead letters flushed -> checkpoint (state, offsets,
unsent datums) -> enqueue for publishing. A crash can therefore repeat at most the datums a
checkpoint still lists as unsent, never lose any.
"""
from __future__ import annotations

import argparse
import dataclasses
import json
import logging
import signal
import sys
import threading
from dataclasses import dataclass, field
from collections.abc import Callable, Iterable
from typing import Any, Protocol

from pipelines.datum import Datum, Dimensions
from pipelines.join import JoinPolicy
from pipelines.parse import ParseLimits
from pipelines.processor import PartitionPipeline, PipelineConfig
from pipelines.series import SegmentCap
from pipelines.window import SlidingWindow, gauge_datums
from service import checkpoint
from service.clock import SystemClock
from service.dead_letter import DeadLetters
from service.settings import Settings

log = logging.getLogger("rollguard")

BATCH_DATUMS = 500


class Consumer(Protocol):
    def subscribe(self, topics: list[str], listener: Any = None) -> None: ...
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
    def buffered_datums(self) -> int: ...


def pipeline_config(settings: Settings) -> PipelineConfig:
    return PipelineConfig(
        captures_topic=settings.captures_topic,
        labels_topic=settings.labels_topic,
        tick_ms=int(settings.tick_seconds * 1000),
        join=JoinPolicy(
            label_ttl_ms=settings.label_ttl_seconds * 1000,
            label_wait_ms=settings.label_wait_seconds * 1000,
            max_pending=settings.max_pending_captures,
        ),
        limits=ParseLimits(max_bytes=settings.max_record_bytes, max_future_ms=settings.max_future_seconds * 1000),
        score_threshold=settings.score_threshold,
        score_thresholds=dict(settings.score_thresholds),
    )


@dataclass
class Slot:
    """A partition this instance owns: its pipeline and the datums not yet confirmed sent."""

    pipeline: PartitionPipeline
    unsent: dict[str, list[Datum]] = field(default_factory=dict)
    sent: set[str] = field(default_factory=set)  # unsent in the last checkpoint, sent since


@dataclass
class DaemonStats:
    records: int = 0
    dead_letters: int = 0
    ticks: int = 0
    checkpoints: int = 0
    checkpoint_failures: int = 0
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
    ) -> None:
        self.settings = settings
        self.config = pipeline_config(settings)
        self.consumer = consumer
        self.dead_letters = dead_letters
        self.publisher = publisher
        self.store = store
        self.clock = clock or SystemClock()
        self.segments = SegmentCap(settings.segment_attributes, settings.segment_cardinality_cap)
        self.window = SlidingWindow(int(settings.window_seconds * 1000), self.config.tick_ms, settings.min_samples)
        self.slots: dict[int, Slot] = {}
        # revoked in a rebalance, kept until the new assignment says whether they stay here
        self.parked: dict[int, Slot] = {}
        self.stats = DaemonStats(started_ms=self.clock.now_ms())
        self.tick_due = threading.Event()
        self.ready = threading.Event()
        self.lock = threading.Lock()  # held while state changes, so the status API reads a consistent view
        self._tick_seq = 0
        self.paused = False  # consumption paused for backpressure
        self._ledger_lock = threading.Lock()

    # -- partition ownership ----------------------------------------------------------------
    def _checkpoint_name(self, partition: int) -> str:
        s = self.settings
        return f"{s.group_id}.{s.captures_topic}.{s.labels_topic}.p{partition}.ckpt"

    def load_partition(self, partition: int) -> Slot:
        name = self._checkpoint_name(partition)
        data = self.store.load(name)
        if data is None:
            slot = Slot(PartitionPipeline(partition, self.config, self.segments, self.window))
        else:
            state = checkpoint.decode(data, name)
            slot = Slot(PartitionPipeline.restore(state["pipeline"], self.config, self.segments, self.window))
            ledger = self.store.load(name + ".sent")
            already = set(json.loads(ledger)) if ledger else set()
            for batch_id, datums in state.get("unsent", {}).items():
                if batch_id not in already:  # sent after that checkpoint was written
                    slot.unsent[batch_id] = datums
                    self.publisher.enqueue(batch_id, datums)
            log.info("restored partition %d at offsets %s with %d pending joins, %d unsent batches",
                     partition, slot.pipeline.offsets, slot.pipeline.join.pending_captures, len(slot.unsent))
        return slot

    def on_partitions_assigned(self, assigned: list[Any]) -> None:
        with self.lock:
            partitions = {tp.partition for tp in assigned}
            for p in sorted(set(self.parked) - partitions):
                # another instance owns it now and restores it from the checkpoint
                gone = self.parked.pop(p)
                self.publisher.discard(list(gone.unsent))
            for tp in assigned:
                slot = self.slots.get(tp.partition) or self.parked.pop(tp.partition, None)
                if slot is None:
                    slot = self.load_partition(tp.partition)
                self.slots[tp.partition] = slot
                offset = slot.pipeline.offsets.get(tp.topic)
                if offset is not None:
                    self.consumer.seek(tp, offset)
            log.info("assigned partitions %s", sorted(partitions))
            self.ready.set()

    def on_partitions_revoked(self, revoked: list[Any]) -> None:
        partitions = sorted({tp.partition for tp in revoked} & set(self.slots))
        if not partitions:
            return
        with self.lock:
            self._tick(partitions, commit=False)  # no blocking consumer calls inside a rebalance
            self.publisher.flush(deadline_ms=self.clock.now_ms() + 5000)
            for p in partitions:
                self._checkpoint(p)
                self.parked[p] = self.slots.pop(p)
            log.info("revoked partitions %s", partitions)

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
                slot = self.slots.get(tp.partition)
                if slot is None:  # cannot happen with co-partitioned topics; never drop silently
                    slot = self.slots[tp.partition] = self.load_partition(tp.partition)
                pipeline = slot.pipeline
                expected = pipeline.offsets.get(tp.topic)
                if expected is not None and records[0].offset != expected:
                    log.warning("%s[%d]: read offset %d, expected %d", tp.topic, tp.partition, records[0].offset, expected)
                for rec in records:
                    bad = pipeline.submit(tp.topic, rec.value or b"", rec.offset, now, dict(rec.headers or ()), rec.timestamp)
                    if bad is not None:
                        self.dead_letters.send(bad, rec.key)
                        self.stats.dead_letters += 1
                self.stats.records += len(records)

    def tick(self) -> None:
        with self.lock:
            self._tick(sorted(self.slots))
            self.tick_due.clear()

    def _tick(self, partitions: list[int], commit: bool = True) -> None:
        now = self.clock.now_ms()
        self._tick_seq += 1
        fresh: list[tuple[str, list[Datum]]] = []
        pending = set(self.publisher.pending())
        for p in partitions:
            slot = self.slots[p]
            slot.unsent = {b: d for b, d in slot.unsent.items() if b in pending}
            datums = slot.pipeline.tick(now)
            # batches no bigger than about one PutMetricData request, so "sent" is recorded
            # per request and a crash can repeat at most one request's worth
            for i in range(0, len(datums), BATCH_DATUMS):
                batch_id = f"p{p}-{now}-{self._tick_seq}-{i // BATCH_DATUMS}"
                slot.unsent[batch_id] = datums[i:i + BATCH_DATUMS]
                fresh.append((batch_id, slot.unsent[batch_id]))
        self.dead_letters.flush()
        for p in partitions:
            self._checkpoint(p)
        for batch_id, datums in fresh:
            self.publisher.enqueue(batch_id, datums)
        self.window.evict(now)
        gauges = gauge_datums(self.window, now, self.config.tick_ms)
        if gauges:
            self.publisher.enqueue(f"gauges-{now}-{self._tick_seq}", gauges)
        if commit:
            self._measure_lag()
            try:
                self.consumer.commit()  # for lag tools only: the checkpoint is the source of truth
            except Exception as ex:  # a rebalance in progress; the next tick commits again
                log.warning("offset commit failed: %s", ex)
        self.stats.ticks += 1
        self.stats.last_tick_ms = now

    def _measure_lag(self) -> None:
        """Records behind the end of each owned partition (from fetch metadata, no broker call)."""
        highwater = getattr(self.consumer, "highwater", None)
        if highwater is None:
            return
        from kafka import TopicPartition

        lag: dict[str, int] = {}
        for p, slot in self.slots.items():
            for topic in (self.settings.captures_topic, self.settings.labels_topic):
                end = highwater(TopicPartition(topic, p))
                if end is not None:
                    lag[f"{topic}[{p}]"] = max(0, end - slot.pipeline.offsets.get(topic, 0))
        self.stats.lag = lag

    def status(self) -> dict[str, Any]:
        """What `rollguard status` and /v1/status show: a consistent, JSON-able view."""
        now = self.clock.now_ms()
        with self.lock:
            series = []
            for key in self.window.series():
                dims: Dimensions = key  # type: ignore[assignment]  # the window is keyed by dimension set
                d = dict(dims)
                if len(dims) > 3 or (len(dims) == 3 and "ModelVersion" not in d):
                    continue  # segment copies: available from query, too many to list here
                series.append({
                    "dimensions": d,
                    "gauges": self.window.gauges(dims, now),
                    "samples": self.window.samples(dims, now),
                })
            pending = {
                "captures": sum(s.pipeline.join.pending_captures for s in self.slots.values()),
                "labels": sum(s.pipeline.join.pending_labels for s in self.slots.values()),
            }
            join: dict[str, int] = {}
            bad: dict[str, int] = {}
            for slot in self.slots.values():
                for k, v in slot.pipeline.join.stats.as_dict().items():
                    join[k] = join.get(k, 0) + v
                for k, v in slot.pipeline.bad_records.items():
                    bad[k] = bad.get(k, 0) + v
            publisher_stats = getattr(self.publisher, "stats", None)
            return {
                "now_ms": now,
                "window_seconds": self.settings.window_seconds,
                "min_samples": self.settings.min_samples,
                "partitions": sorted(self.slots),
                "ready": self.ready.is_set(),
                "series": series,
                "pending_joins": pending,
                "join": join,
                "dead_letters": bad,
                "consumer_lag": dict(self.stats.lag),
                "records": self.stats.records,
                "ticks": self.stats.ticks,
                "last_tick_ms": self.stats.last_tick_ms,
                "last_checkpoint_ms": self.stats.last_checkpoint_ms,
                "checkpoint_failures": self.stats.checkpoint_failures,
                "started_ms": self.stats.started_ms,
                "publisher": dataclasses.asdict(publisher_stats()) if publisher_stats else {},
            }

    def _checkpoint(self, partition: int) -> None:
        slot = self.slots[partition]
        with self._ledger_lock:
            slot.unsent = {b: d for b, d in slot.unsent.items() if b not in slot.sent}
        state = {"pipeline": slot.pipeline.snapshot(), "unsent": dict(slot.unsent)}
        try:
            self.store.save(self._checkpoint_name(partition), checkpoint.encode(state))
            self.stats.checkpoints += 1
            self.stats.last_checkpoint_ms = self.clock.now_ms()
            with self._ledger_lock:
                if slot.sent - set(slot.unsent):
                    slot.sent &= set(slot.unsent)
                    self._save_ledger(partition, slot)
        except Exception as ex:  # keep running: the state is in memory and the next tick retries
            self.stats.checkpoint_failures += 1
            log.error("checkpoint of partition %d failed: %s", partition, ex)

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
            self.consumer.resume(*self.consumer.assignment())
            log.warning("publisher buffer %d/%d datums: resuming consumption", buffered, limit)
        if self.paused:
            self.consumer.pause(*self.consumer.assignment())  # again: a rebalance resets pauses

    def run(self, stop: threading.Event, poll_timeout_ms: int = 200) -> None:
        s = self.settings
        self.consumer.subscribe([s.captures_topic, s.labels_topic], listener=_listener(self))
        while not stop.is_set():
            batch = self.consumer.poll(timeout_ms=poll_timeout_ms, max_records=2000)
            if batch:
                self.process(batch)
            if self.tick_due.is_set():
                self.tick()
                self.apply_backpressure()
        self.close()

    def close(self) -> None:
        """Final tick, a bounded last flush, a final checkpoint; then leave the group."""
        with self.lock:
            if self.slots:
                self._tick(sorted(self.slots), commit=False)
            self.publisher.flush(deadline_ms=self.clock.now_ms() + 10_000)
            pending = set(self.publisher.pending())
            for p, slot in self.slots.items():
                slot.unsent = {b: d for b, d in slot.unsent.items() if b in pending}
                self._checkpoint(p)
        self.consumer.close(autocommit=False)
        self.dead_letters.close()


def _listener(daemon: Daemon) -> Any:
    """kafka-python's ConsumerRebalanceListener, delegating to the daemon (called inside poll)."""
    from kafka import ConsumerRebalanceListener

    class Listener(ConsumerRebalanceListener):
        def on_partitions_revoked(self, revoked: Any) -> None:
            daemon.on_partitions_revoked(list(revoked))

        def on_partitions_assigned(self, assigned: Any) -> None:
            daemon.on_partitions_assigned(list(assigned))

    return Listener()


def check_topics(settings: Settings) -> None:
    """Refuse to run unless captures and labels are co-partitioned and the dead-letter topic exists."""
    from service.topics import partition_counts

    s = settings
    counts = partition_counts(s.kafka_bootstrap_servers, [s.captures_topic, s.labels_topic, s.dead_letter_topic])
    if counts[s.captures_topic] != counts[s.labels_topic]:
        raise SystemExit(
            f"rollguard: topics {s.captures_topic!r} ({counts[s.captures_topic]} partitions) and "
            f"{s.labels_topic!r} ({counts[s.labels_topic]} partitions) must have the same partition count: "
            "both are keyed by inference id so one consumer owns both sides of a join"
        )


def make_consumer(settings: Settings) -> Any:
    """The daemon's kafka-python consumer (not yet subscribed)."""
    from kafka import KafkaConsumer
    from kafka.coordinator.assignors.range import RangePartitionAssignor

    return KafkaConsumer(
        bootstrap_servers=settings.kafka_bootstrap_servers.split(","),
        group_id=settings.group_id,
        enable_auto_commit=False,
        auto_offset_reset="earliest",
        # range assignment gives one consumer the same partition number of both topics
        partition_assignment_strategy=[RangePartitionAssignor],
        max_poll_records=2000,
        fetch_max_bytes=16 * 1024 * 1024,
        max_partition_fetch_bytes=max(settings.max_record_bytes * 2, 1024 * 1024),
        client_id=f"rollguard-{settings.group_id}",
        session_timeout_ms=settings.kafka_session_timeout_ms,
    )


def build(settings: Settings, clock: Any = None) -> Daemon:
    """The production wiring: kafka-python, boto3 and the local or S3 checkpoint store."""
    from kafka import KafkaProducer

    from alarms.publisher import Publisher as CloudWatchPublisher
    from alarms.publisher import make_cloudwatch_client
    from service import aws

    clock = clock or SystemClock()
    built: list[Daemon] = []
    consumer = make_consumer(settings)
    producer = KafkaProducer(
        bootstrap_servers=settings.kafka_bootstrap_servers.split(","), acks="all", linger_ms=20,
        max_request_size=max(settings.max_record_bytes * 2 + 65536, 1048576),
    )
    publisher = CloudWatchPublisher(
        make_cloudwatch_client(settings.aws_endpoint_url, region_name=settings.aws_region),
        settings.namespace, clock, max_buffered_datums=settings.max_buffered_datums,
        on_sent=lambda ids: built[0].on_sent(ids),
    )
    store = checkpoint.open_store(settings.state_dir, lambda: aws.client("s3", settings))
    daemon = Daemon(
        settings, consumer=consumer, dead_letters=DeadLetters(producer, settings.dead_letter_topic),
        publisher=publisher, store=store, clock=clock,
    )
    built.append(daemon)
    return daemon


def serve(settings: Settings, stop: threading.Event, clock: Any = None,
          started: Callable[[Daemon], None] | None = None) -> Daemon:
    """Run the daemon until `stop` is set: scheduler, publisher thread, HTTP API, loop."""
    from apscheduler.schedulers.background import BackgroundScheduler

    check_topics(settings)
    daemon = build(settings, clock)
    if started is not None:
        started(daemon)
    scheduler = BackgroundScheduler(daemon=True)
    scheduler.add_job(daemon.tick_due.set, "interval", seconds=settings.tick_seconds, id="tick")
    scheduler.start()
    publisher: Any = daemon.publisher
    publisher.start_background(max(0.2, min(settings.tick_seconds / 4, 5.0)))
    http = _start_http(daemon)
    try:
        daemon.run(stop)
    finally:
        scheduler.shutdown(wait=False)
        publisher.stop()
        if http is not None:
            http.shutdown()
    return daemon


def _start_http(daemon: Daemon) -> Any:
    try:
        from service.http_api import start_server
    except ImportError:
        return None
    return start_server(daemon)


def main(argv: list[str]) -> int:
    from service.settings import load_or_exit

    parser = argparse.ArgumentParser(prog="rollguard run", description="Consume captures and labels, publish metrics.")
    parser.add_argument("--log-level", default="INFO")
    args = parser.parse_args(argv)
    logging.basicConfig(level=args.log_level.upper(), format="%(asctime)s %(levelname)s %(name)s: %(message)s")
    logging.getLogger("kafka").setLevel(logging.WARNING)
    logging.getLogger("apscheduler").setLevel(logging.WARNING)
    settings = load_or_exit()
    stop = threading.Event()
    for sig in (signal.SIGTERM, signal.SIGINT):
        signal.signal(sig, lambda *_: stop.set())
    try:
        serve(settings, stop)
    except SystemExit as ex:
        if isinstance(ex.code, str):
            print(ex.code, file=sys.stderr)
            return 2
        raise
    except Exception as ex:  # one clear line for start-up failures (unreachable Kafka, missing topic)
        if not stop.is_set() and type(ex).__module__.startswith(("kafka", "service.topics")):
            print(f"rollguard: cannot start: {ex}", file=sys.stderr)
            return 2
        raise
    return 0


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
