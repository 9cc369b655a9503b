"""Smoke tests of the local stack: the Kafka features rollguard relies on, and CloudWatch over HTTP."""
from __future__ import annotations

import time
from collections.abc import Callable
from datetime import datetime, timedelta, timezone

import boto3
import pytest
from kafka import KafkaConsumer, KafkaProducer, TopicPartition
from kafka.structs import OffsetAndMetadata

from service.topics import MissingTopicError, ensure_topics, partition_counts


def test_topics_are_created_once_and_counted(kafka_bootstrap: str, topic_names: Callable[[str], str]) -> None:
    a, b = topic_names("captures"), topic_names("labels")
    ensure_topics(kafka_bootstrap, {a: 3, b: 2})
    ensure_topics(kafka_bootstrap, {a: 5, b: 2})  # existing topics are left alone
    assert partition_counts(kafka_bootstrap, [a, b]) == {a: 3, b: 2}
    missing = topic_names("missing")
    with pytest.raises(MissingTopicError, match=missing):
        partition_counts(kafka_bootstrap, [a, missing])


def test_keyed_messages_round_trip_through_a_consumer_group(
    kafka_bootstrap: str, topic_names: Callable[[str], str]
) -> None:
    topic, group = topic_names("smoke"), topic_names("smoke-group")
    ensure_topics(kafka_bootstrap, {topic: 3})
    sent = {f"id-{i}": f"value-{i}" for i in range(100)}
    producer = KafkaProducer(bootstrap_servers=kafka_bootstrap, acks="all", linger_ms=5)
    try:
        for key, value in sent.items():
            producer.send(topic, key=key.encode(), value=value.encode())
        producer.flush(timeout=30)
    finally:
        producer.close()

    consumer = KafkaConsumer(topic, bootstrap_servers=kafka_bootstrap, group_id=group,
                             enable_auto_commit=False, auto_offset_reset="earliest")
    received: dict[str, str] = {}
    partitions_seen: set[int] = set()
    try:
        deadline = time.monotonic() + 60
        while len(received) < len(sent) and time.monotonic() < deadline:
            for tp, records in consumer.poll(timeout_ms=1000).items():
                partitions_seen.add(tp.partition)
                for record in records:
                    received[record.key.decode()] = record.value.decode()
        consumer.commit()
        committed = {p: consumer.committed(TopicPartition(topic, p)) for p in range(3)}
        ends = consumer.end_offsets([TopicPartition(topic, p) for p in range(3)])
    finally:
        consumer.close()

    assert received == sent
    assert partitions_seen == {0, 1, 2}  # keys spread over every partition
    assert committed == {tp.partition: end for tp, end in ends.items()}
    assert sum(committed.values()) == len(sent)

    # A new member of the same group resumes after the commit: nothing is redelivered.
    again = KafkaConsumer(topic, bootstrap_servers=kafka_bootstrap, group_id=group,
                          enable_auto_commit=False, auto_offset_reset="earliest")
    try:
        redelivered = []
        deadline = time.monotonic() + 30
        while len(again.assignment()) < 3 and time.monotonic() < deadline:
            redelivered += [r for records in again.poll(timeout_ms=500).values() for r in records]
        redelivered += [r for records in again.poll(timeout_ms=500).values() for r in records]
        assert len(again.assignment()) == 3
        assert redelivered == []
        assert {tp.partition: again.position(tp) for tp in again.assignment()} == committed
        # Manual commit of an explicit offset is what the daemon's checkpointing uses.
        again.commit({TopicPartition(topic, 0): OffsetAndMetadata(0, "", -1)})
        assert again.committed(TopicPartition(topic, 0)) == 0
    finally:
        again.close()


def test_cloudwatch_metric_round_trip_over_http(moto_endpoint: str) -> None:
    client = boto3.client("cloudwatch", endpoint_url=moto_endpoint)
    now = datetime.now(timezone.utc).replace(second=0, microsecond=0)
    dims = [{"Name": "EndpointName", "Value": "fraud-ep"}, {"Name": "VariantName", "Value": "v6"}]
    client.put_metric_data(Namespace="RollguardSmoke", MetricData=[
        {"MetricName": "TruePositives", "Dimensions": dims, "Timestamp": now, "Value": v, "Unit": "Count"}
        for v in (3.0, 4.0)
    ])
    stats = client.get_metric_statistics(
        Namespace="RollguardSmoke", MetricName="TruePositives", Dimensions=dims,
        StartTime=now - timedelta(minutes=5), EndTime=now + timedelta(minutes=5),
        Period=600, Statistics=["Sum", "SampleCount"],
    )
    assert [(p["Sum"], p["SampleCount"]) for p in stats["Datapoints"]] == [(7.0, 2.0)]
