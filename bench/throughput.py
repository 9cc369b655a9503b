"""Throughput: rollguard's consume -> parse -> join -> count path against a bare kafka-python
consumer reading the same two topics, measured in the same run on a broker this script starts.

Also the pure core alone (PartitionPipeline.submit on the same bytes, no Kafka) to show where
the time goes. Prints records/s; never asserted anywhere (shared, noisy machines).
Usage: python3 bench/throughput.py [INFERENCES]
"""
from __future__ import annotations

import contextlib
import sys
import threading
import time
import uuid
from collections.abc import Iterator
from typing import Any

from kafka import KafkaConsumer, KafkaProducer

from pipelines.processor import PartitionPipeline
from service.consumer import group_consumer, rebalance_listener
from service.daemon import Daemon, pipeline_config
from service.devstack import start_kafka
from service.devstack.traffic import TrafficSpec, generate
from service.settings import load_settings
from service.topics import ensure_topics


class NullPublisher:
    def enqueue(self, batch_id: str, datums: list[Any]) -> None: ...
    def pending(self) -> list[str]: return []
    def discard(self, batch_ids: list[str]) -> None: ...
    def flush(self, deadline_ms: int | None = None) -> None: ...
    def buffered_datums(self) -> int: return 0
    def wake(self) -> None: ...


class NullDeadLetters:
    written: dict[str, int] = {}
    last_error: str | None = None

    def send(self, bad: Any, key: bytes | None) -> None: ...
    def flush(self, timeout_s: float = 0.0) -> bool: return True
    def pending(self) -> int: return 0
    def close(self) -> None: ...


class MemoryStore:
    def __init__(self) -> None:
        self.files: dict[str, bytes] = {}

    def load(self, name: str) -> bytes | None:
        return self.files.get(name)

    def save(self, name: str, data: bytes) -> None:
        self.files[name] = data


@contextlib.contextmanager
def python_crc() -> Iterator[None]:
    """kafka-python checking record batches with its pure-Python CRC32C, as it does when the
    `crc32c` package is missing (issue 14's baseline was measured that way: 18,048 records/s)."""
    from kafka.record import default_records
    from kafka.record._crc32c import crc

    fast = default_records.calc_crc32c
    default_records.calc_crc32c = crc  # type: ignore[assignment]
    try:
        yield
    finally:
        default_records.calc_crc32c = fast  # type: ignore[assignment]


def bare(bootstrap: str, topics: list[str], total: int, pure_python_crc: bool = False) -> float:
    if pure_python_crc:
        with python_crc():
            return bare(bootstrap, topics, total)
    consumer = KafkaConsumer(*topics, bootstrap_servers=bootstrap, group_id=f"bare-{uuid.uuid4().hex[:6]}",
                             auto_offset_reset="earliest", enable_auto_commit=False, max_poll_records=2000)
    seen, started = 0, 0.0
    while seen < total:
        batch = consumer.poll(timeout_ms=500)
        if batch and not started:
            started = time.perf_counter()
        seen += sum(len(records) for records in batch.values())
    elapsed = time.perf_counter() - started
    consumer.close()
    return total / elapsed


def rollguard(settings: Any, total: int) -> float:
    daemon = Daemon(settings, consumer=group_consumer(settings), dead_letters=NullDeadLetters(),  # type: ignore[arg-type]
                    publisher=NullPublisher(), store=MemoryStore())
    seen, started = 0, 0.0
    daemon.consumer.subscribe([settings.captures_topic, settings.labels_topic],
                              listener=rebalance_listener(daemon))
    while seen < total:
        batch = daemon.consumer.poll(timeout_ms=500, max_records=2000)
        if batch and not started:
            started = time.perf_counter()
        daemon.process(batch)
        seen += sum(len(records) for records in batch.values())
    daemon.tick()  # one publish tick's drain and checkpoint, as the daemon does every minute
    elapsed = time.perf_counter() - started
    daemon.consumer.close()
    return total / elapsed


def core(settings: Any, captures: list[tuple[bytes, bytes]], labels: list[tuple[bytes, bytes]]) -> float:
    pipeline = PartitionPipeline(0, pipeline_config(settings))
    now = int(time.time() * 1000)
    started = time.perf_counter()
    for i, (_, value) in enumerate(captures):
        pipeline.submit(settings.captures_topic, value, i, now)
    for i, (_, value) in enumerate(labels):
        pipeline.submit(settings.labels_topic, value, i, now)
    pipeline.tick(now)
    return (len(captures) + len(labels)) / (time.perf_counter() - started)


def main() -> None:
    n = int(sys.argv[1]) if len(sys.argv) > 1 else 50_000
    traffic = generate(n, int(time.time() * 1000) - 3_600_000, TrafficSpec(duplicate_rate=0.01, correction_rate=0.02))
    captures, labels = traffic.capture_records(), traffic.label_records()
    total = len(captures) + len(labels)
    with start_kafka() as broker:
        suffix = uuid.uuid4().hex[:6]
        settings = load_settings(kafka_bootstrap_servers=broker.bootstrap_servers, captures_topic=f"captures-{suffix}",
                                 labels_topic=f"labels-{suffix}", group_id=f"rollguard-{suffix}")
        ensure_topics(broker.bootstrap_servers, {settings.captures_topic: 4, settings.labels_topic: 4})
        producer = KafkaProducer(bootstrap_servers=broker.bootstrap_servers, linger_ms=20, batch_size=256 * 1024)
        for key, value in captures:
            producer.send(settings.captures_topic, key=key, value=value)
        for key, value in labels:
            producer.send(settings.labels_topic, key=key, value=value)
        producer.flush()
        topics = [settings.captures_topic, settings.labels_topic]
        print(f"{total:,} records ({len(captures):,} captures, {len(labels):,} labels), 4 partitions each")
        base = bare(broker.bootstrap_servers, topics, total)
        ours = rollguard(settings, total)
        base2 = bare(broker.bootstrap_servers, topics, total)  # again, to see the noise
        print(f"bare kafka-python consumer: {base:>9,.0f} records/s  (repeat: {base2:,.0f})")
        print(f"rollguard consume+join+count: {ours:>7,.0f} records/s  ({ours / ((base + base2) / 2):.0%} of bare)")
    print(f"rollguard core alone (no Kafka): {core(settings, captures, labels):,.0f} records/s")
    print("reference load: ~800 inferences/s = ~1,600 captures/s (production + shadow) plus labels")


if __name__ == "__main__":
    threading.current_thread().name = "bench"
    main()
