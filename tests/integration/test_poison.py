"""Poison records on the real stack: each once stopped the daemon, and every restart replayed it
and died again. Now each becomes a dead letter with a reason, and the partition moves on.

Also dead letters the topic refuses (too large for it) and a dead-letter producer that went
fatal: every dead letter arrives, truncated copies with the original size and hash.
"""
from __future__ import annotations

import hashlib
import json
import time
from collections.abc import Callable
from pathlib import Path

import pytest
from kafka import KafkaAdminClient, KafkaProducer
from kafka.admin import NewTopic

from service.dead_letter import ORIGINAL_SHA256, ORIGINAL_SIZE, REASON, SOURCE_OFFSET, TRUNCATED
from service.devstack.traffic import TrafficSpec, generate
from tests.integration.harness import Stack, consume_all, produce, wait_for
from tests.reference import as_dict, batch_counts

SPEC = TrafficSpec()


class NotUtf8(str):
    """A header key whose wire bytes are not UTF-8: kafka-python encodes keys with str.encode."""

    def encode(self, encoding: str = "utf-8", errors: str = "strict") -> bytes:
        return b"\xff\xfe-key"


def make_topics(bootstrap: str, topics: dict[str, dict[str, str]], partitions: int = 1) -> None:
    admin = KafkaAdminClient(bootstrap_servers=bootstrap)
    try:
        admin.create_topics([NewTopic(name, partitions, 1, topic_configs=configs) for name, configs in topics.items()])
        admin.wait_for_topics(list(topics), timeout_ms=30_000)
    finally:
        admin.close()


@pytest.fixture
def stack(kafka_bootstrap: str, moto_endpoint: str, topic_names: Callable[[str], str], tmp_path: Path) -> Stack:
    """Captures allow 5 MB records; the dead-letter topic keeps Kafka's default 1 MB limit."""
    s = Stack(kafka_bootstrap, moto_endpoint, topic_names, tmp_path, partitions=1)
    for name in ("captures", "labels"):
        setattr(s, name, topic_names(name + "-big"))
    make_topics(kafka_bootstrap, {s.captures: {"max.message.bytes": "5242880"},
                                  s.labels: {"max.message.bytes": "5242880"}})
    s.env.update(ROLLGUARD_CAPTURES_TOPIC=s.captures, ROLLGUARD_LABELS_TOPIC=s.labels)
    return s


def invocations(stack: Stack) -> float:
    return stack.sums("Invocations", {"EndpointName": SPEC.endpoint, "VariantName": SPEC.production,
                                      "ModelVersion": SPEC.production_version})


def big_producer(bootstrap: str) -> KafkaProducer:
    return KafkaProducer(bootstrap_servers=bootstrap, max_request_size=5_000_000, acks="all")


def test_poison_records_are_dead_lettered_and_the_partition_moves_on(stack: Stack) -> None:
    now = int(time.time() * 1000)
    before, after = generate(300, now - 600_000, SPEC, seed=1), generate(300, now - 500_000, SPEC, seed=2)
    template = dict(before.captures[0], inference_id="poison")
    huge_latency = json.dumps(dict(template, inference_id="overflow", latency_ms=1.7976931348623157e308)).encode()
    big_latency = json.dumps(dict(template, inference_id="big", latency_ms=1e200)).encode()
    three_mb = json.dumps(dict(template, inference_id="3mb", error="x" * 3_000_000)).encode()
    produce(stack.bootstrap, stack.captures, before.capture_records())
    producer = big_producer(stack.bootstrap)
    offsets = {}
    for name, value in (("overflow", huge_latency), ("big", big_latency), ("3mb", three_mb)):
        offsets[name] = producer.send(stack.captures, key=name.encode(), value=value).get(timeout=30).offset
    offsets["header"] = producer.send(stack.captures, key=b"h", value=json.dumps(dict(template, inference_id="h")).encode(),
                                      headers=[(NotUtf8("k"), b"v")]).get(timeout=30).offset
    producer.close()
    produce(stack.bootstrap, stack.captures, after.capture_records())
    produce(stack.bootstrap, stack.labels, before.label_records() + after.label_records())
    expected = as_dict(batch_counts(before.captures + after.captures, before.labels + after.labels))
    proc = stack.start()
    try:
        want = expected[(SPEC.endpoint, SPEC.production, "Invocations")]
        wait_for(lambda: proc.poll() is None and invocations(stack) == want, 120, f"{want} invocations published")
        for metric in ("TruePositives", "FalsePositives", "Labeled"):
            got = stack.sums(metric, {"EndpointName": SPEC.endpoint, "VariantName": SPEC.production,
                                      "ModelVersion": SPEC.production_version})
            assert got == expected[(SPEC.endpoint, SPEC.production, metric)], metric
        dead = {int(dict(r.headers)[SOURCE_OFFSET]): r for r in consume_all(stack.bootstrap, stack.dead, 4)}
        assert set(dead) == set(offsets.values()), stack.log_tail()
        reason = {name: dict(dead[o].headers)[REASON].decode() for name, o in offsets.items()}
        assert reason == {"overflow": "invalid_value", "big": "invalid_value", "3mb": "too_large",
                          "header": "corrupt_record"}
        truncated = dict(dead[offsets["3mb"]].headers)
        assert truncated[TRUNCATED] == b"1" and int(truncated[ORIGINAL_SIZE]) == len(three_mb)
        assert truncated[ORIGINAL_SHA256].decode() == hashlib.sha256(three_mb).hexdigest()
        assert three_mb.startswith(dead[offsets["3mb"]].value)
    finally:
        stack.stop(proc)
    assert proc.returncode == 0, stack.log_tail()
    # and a restart does not meet them again
    proc = stack.start()
    try:
        time.sleep(3)
        assert proc.poll() is None, stack.log_tail()
        assert len(consume_all(stack.bootstrap, stack.dead, 5, timeout_s=5)) == 4
    finally:
        stack.stop(proc)
    assert proc.returncode == 0, stack.log_tail()


def test_dead_letters_the_topic_refuses_still_arrive_and_later_ones_too(stack: Stack, topic_names: Callable[[str], str]) -> None:
    small_dlq = topic_names("dlq-small")
    make_topics(stack.bootstrap, {small_dlq: {"max.message.bytes": "200000"}})
    now = int(time.time() * 1000)
    template = generate(1, now - 60_000, SPEC, seed=3).captures[0]
    big = [json.dumps(dict(template, inference_id=f"big{i}", error="y" * 1_500_000)).encode() for i in range(3)]
    producer = big_producer(stack.bootstrap)
    for i, value in enumerate(big):
        producer.send(stack.captures, key=f"big{i}".encode(), value=value)
    producer.flush()
    producer.close()
    produce(stack.bootstrap, stack.captures, [(None, b"{small %d" % i) for i in range(40)])
    proc = stack.start(ROLLGUARD_DEAD_LETTER_TOPIC=small_dlq, ROLLGUARD_MAX_RECORD_BYTES="1048576")
    try:
        dead = consume_all(stack.bootstrap, small_dlq, 43, timeout_s=90)
        assert proc.poll() is None, stack.log_tail()
    finally:
        stack.stop(proc)
    reasons = sorted(dict(r.headers)[REASON].decode() for r in dead)
    assert reasons == ["not_json"] * 40 + ["too_large"] * 3, stack.log_tail()
    for r in dead:
        h = dict(r.headers)
        if h[REASON] == b"too_large":
            assert h[TRUNCATED] == b"1" and int(h[ORIGINAL_SIZE]) > 1_500_000 and len(r.value) <= 200_000
    assert proc.returncode == 0, stack.log_tail()
