"""Kafka topic administration: create the topics rollguard needs, read their partition counts.

Each function takes the cluster as a bootstrap string (a PLAINTEXT cluster, e.g. the devstack's)
or as Settings, whose TLS/SASL settings then apply (service/kafka_clients.py).
"""
from __future__ import annotations

from kafka import KafkaAdminClient
from kafka.errors import for_code

from service.kafka_clients import explain_bootstrap_failure, make_admin
from service.settings import Settings

_NO_ERROR = 0
_TOPIC_ALREADY_EXISTS = 36
_UNKNOWN_TOPIC_OR_PARTITION = 3


class MissingTopicError(LookupError):
    """A topic rollguard needs does not exist on the cluster."""


def _admin(cluster: str | Settings) -> KafkaAdminClient:
    if isinstance(cluster, Settings):
        admin: KafkaAdminClient = make_admin(cluster, client_id="rollguard-topics")
        return admin
    with explain_bootstrap_failure():
        return KafkaAdminClient(bootstrap_servers=cluster, client_id="rollguard-topics")


def _bootstrap(cluster: str | Settings) -> str:
    return cluster.kafka_bootstrap_servers if isinstance(cluster, Settings) else cluster


def ensure_topics(cluster: str | Settings, topics: dict[str, int], replication: int = 1,
                  *, timeout_s: float = 30.0) -> None:
    """Create each missing topic with the given partition count; idempotent.

    Existing topics are left exactly as they are (their partition count is never changed; the
    daemon's co-partitioning check reports a mismatch). Returns once every named topic has a
    leader for each partition, so producers and consumers can use them at once.
    """
    for name, partitions in topics.items():
        if partitions < 1:
            raise ValueError(f"topic {name!r}: partition count must be >= 1, got {partitions}")
    if replication < 1:
        raise ValueError(f"replication factor must be >= 1, got {replication}")
    if not topics:
        return
    admin = _admin(cluster)
    try:
        existing = set(admin.list_topics())
        missing = {name: {"num_partitions": n, "replication_factor": replication}
                   for name, n in topics.items() if name not in existing}
        if missing:
            result = admin.create_topics(missing, raise_errors=False)
            for topic in result["topics"]:
                # Another process may create the same topic between our list and create.
                if topic["error_code"] not in (_NO_ERROR, _TOPIC_ALREADY_EXISTS):
                    error = for_code(topic["error_code"])
                    raise RuntimeError(f"creating topic {topic['name']!r} failed: {error.__name__}: "
                                       f"{topic.get('error_message') or ''}".rstrip(": "))
        admin.wait_for_topics(list(topics), timeout_ms=int(timeout_s * 1000))
    finally:
        admin.close()


def partition_counts(cluster: str | Settings, topics: list[str]) -> dict[str, int]:
    """Partition count of each named topic; raises MissingTopicError naming any that do not exist."""
    if not topics:
        return {}
    admin = _admin(cluster)
    try:
        described = {t["name"]: t for t in admin.describe_topics(list(topics))}
    finally:
        admin.close()
    missing = [name for name in topics
               if name not in described or described[name]["error_code"] == _UNKNOWN_TOPIC_OR_PARTITION]
    if missing:
        raise MissingTopicError(f"topic(s) {', '.join(map(repr, missing))} do not exist on {_bootstrap(cluster)}")
    counts: dict[str, int] = {}
    for name in topics:
        topic = described[name]
        if topic["error_code"] != _NO_ERROR:
            raise RuntimeError(f"describing topic {name!r} failed: {for_code(topic['error_code']).__name__}")
        counts[name] = len(topic["partitions"])
    return counts
