"""The daemon's production wiring: the topic check, the clients (kafka-python, boto3), the
checkpoint store, and serving it all (scheduler, publisher thread, HTTP API, loop)."""
from __future__ import annotations

import threading
from collections.abc import Callable
from typing import Any

from service import checkpoint, verdicts
from service.clock import SystemClock
from service.consumer import group_consumer
from service.daemon import Daemon
from service.dead_letter import DeadLetters
from service.http_api.server import start_server
from service.settings import Settings
from service.state import open_state_stores


def check_topics(settings: Settings) -> None:
    """Refuse to run unless captures and labels are co-partitioned and the dead-letter topic exists."""
    from service.topics import partition_counts

    s = settings
    counts = partition_counts(s, [s.captures_topic, s.labels_topic, s.dead_letter_topic])
    if counts[s.captures_topic] != counts[s.labels_topic]:
        raise SystemExit(
            f"rollguard: topics {s.captures_topic!r} ({counts[s.captures_topic]} partitions) and "
            f"{s.labels_topic!r} ({counts[s.labels_topic]} partitions) must have the same partition count: "
            "both are keyed by inference id so one consumer owns both sides of a join"
        )


def build(settings: Settings, clock: Any = None) -> Daemon:
    """The production wiring: kafka-python, boto3 and the local or S3 checkpoint store."""
    from kafka import KafkaProducer

    from alarms.aws_clients import make_cloudwatch_client
    from alarms.publisher import Publisher as CloudWatchPublisher
    from service import aws
    from service.kafka_clients import client_config

    clock = clock or SystemClock()
    built: list[Daemon] = []
    consumer = group_consumer(settings)

    def dead_letter_producer() -> Any:  # a factory: a producer that failed is rebuilt
        return KafkaProducer(**client_config(settings), acks="all", linger_ms=20,
                             max_request_size=settings.dead_letter_max_bytes + 65536)

    publisher = CloudWatchPublisher(
        make_cloudwatch_client(settings.aws_endpoint_url, region_name=settings.aws_region),
        settings.namespace, clock, max_buffered_datums=settings.max_buffered_datums,
        on_sent=lambda ids: built[0].on_sent(ids),
        on_refused=lambda datum, why: built[0].on_refused(datum, why),
    )
    store = checkpoint.open_store(settings.state_dir, lambda: aws.client("s3", settings))
    try:
        comparisons = verdicts.load_comparisons(settings)
    except ValueError as ex:
        raise SystemExit(f"rollguard: {ex}") from None
    daemon = Daemon(
        settings, consumer=consumer, dead_letters=DeadLetters(dead_letter_producer, settings.dead_letter_topic,
                                                                max_bytes=settings.dead_letter_max_bytes),
        publisher=publisher, store=store, clock=clock, comparisons=comparisons,
        state=open_state_stores(settings, store),
    )
    built.append(daemon)
    return daemon


def serve(settings: Settings, stop: threading.Event, clock: Any = None,
          started: Callable[[Daemon], None] | None = None, *,
          listening: Callable[[tuple[str, int]], None] | None = None, http_label: str = "http") -> Daemon:
    """Run the daemon until `stop` is set: scheduler, publisher thread, HTTP API, loop.

    ``listening`` is told the API's bound address (a worker reports it to its supervisor);
    ``http_label`` starts the log line that names it."""
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
    http = start_server(daemon, label=http_label)
    if listening is not None:
        listening(http.address)
    try:
        daemon.run(stop)
    finally:
        scheduler.shutdown(wait=False)
        publisher.stop()
        http.shutdown()
    return daemon
