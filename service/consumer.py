"""The daemon's kafka-python consumer: how it is built, its rebalance listener, and where a
record it could not decode sits."""
from __future__ import annotations

import logging
from typing import Any, Protocol

from service.settings import Settings

log = logging.getLogger("rollguard")


class RebalanceHandler(Protocol):
    """What the rebalance listener calls (service.daemon.Daemon satisfies it)."""

    def on_partitions_revoked(self, revoked: list[Any]) -> None: ...
    def on_partitions_assigned(self, assigned: list[Any]) -> None: ...


def crc_in_c() -> bool:
    """Whether kafka-python checks record-batch CRCs with the crc32c package (C) rather than in
    pure Python, which took 59 % of the daemon's time (bench/RESULTS.md)."""
    from kafka.record import util

    return getattr(util, "crc32c_c", None) is not None


def group_consumer(settings: Settings) -> Any:
    """The daemon's kafka-python consumer (not yet subscribed)."""
    from kafka.coordinator.assignors.range import RangePartitionAssignor

    from service.kafka_clients import make_consumer

    if not crc_in_c():
        log.warning("the crc32c package is missing: kafka-python checks CRCs in pure Python, "
                    "which makes consuming about 5 times slower (pip install crc32c)")

    return make_consumer(
        settings,
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
        # at most a third of the session, as Kafka advises (kafka-python's 3 s is half of a 6 s one)
        heartbeat_interval_ms=min(3000, settings.kafka_session_timeout_ms // 3),
    )


def rebalance_listener(daemon: RebalanceHandler) -> Any:
    """kafka-python's ConsumerRebalanceListener, delegating to the daemon (called inside poll)."""
    from kafka import ConsumerRebalanceListener

    class Listener(ConsumerRebalanceListener):
        def on_partitions_revoked(self, revoked: Any) -> None:
            daemon.on_partitions_revoked(list(revoked))

        def on_partitions_assigned(self, assigned: Any) -> None:
            daemon.on_partitions_assigned(list(assigned))

    return Listener()


def corrupt_position(consumer: Any) -> tuple[Any, int] | None:
    """The partition and offset of the record kafka-python just failed to decode.

    kafka-python raises CorruptRecordError from poll() without saying where; the partition's
    records that raised are still the fetcher's next in line, at the failing offset. Read from
    its internals (pinned by tests/integration/test_poison.py); None if they are not there.
    """
    part = getattr(getattr(consumer, "_fetcher", None), "_next_partition_records", None)
    tp = getattr(part, "topic_partition", None)
    if tp is None:
        return None
    try:
        return tp, int(consumer.position(tp))
    except Exception:  # noqa: BLE001
        return None
