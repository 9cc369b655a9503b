"""Partitions moving between instances keep their pending joins: two daemons in one group share
checkpoints under an S3 prefix (moto), and the published totals still equal the batch join."""
from __future__ import annotations

import re
import time
from collections.abc import Callable
from pathlib import Path
from typing import Any

import boto3

from service.devstack.traffic import TrafficSpec, generate
from tests.integration.harness import Stack, produce, wait_for
from tests.integration.test_daemon import VERSIONS, wait_for_counts
from tests.reference import as_dict, batch_counts

SPEC = TrafficSpec(duplicate_rate=0.02, correction_rate=0.05)


def test_partitions_move_between_instances_with_s3_checkpoints(
    kafka_bootstrap: str, moto_endpoint: str, topic_names: Callable[[str], str], tmp_path: Path,
) -> None:
    bucket = topic_names("state")
    boto3.client("s3", endpoint_url=moto_endpoint, region_name="us-east-1").create_bucket(Bucket=bucket)
    stack = Stack(kafka_bootstrap, moto_endpoint, topic_names, tmp_path, partitions=4)
    stack.env["ROLLGUARD_STATE_DIR"] = f"s3://{bucket}/rollguard/"
    traffic = generate(1600, int(time.time() * 1000) - 3_600_000, SPEC, seed=5)
    caps, labels = traffic.capture_records(), traffic.label_records()
    # the first half of the captures, and labels only for the early ones: the rest of the
    # labels will have to find captures that a different instance consumed
    produce(stack.bootstrap, stack.captures, caps[:1600])
    produce(stack.bootstrap, stack.labels, labels[:300])
    first = stack.start()
    second = None
    try:
        dims = {"EndpointName": SPEC.endpoint, "VariantName": SPEC.production, "ModelVersion": VERSIONS[SPEC.production]}
        wait_for(lambda: stack.sums("Invocations", dims) > 0, 60, "the first instance to publish")
        second = stack.start()
        wait_for(lambda: len(re.findall(r"assigned partitions", stack.log.read_text())) >= 3, 90,
                 "a rebalance between the two instances")
        produce(stack.bootstrap, stack.captures, caps[1600:])
        produce(stack.bootstrap, stack.labels, labels[300:])
        wait_for_counts(stack, second, as_dict(batch_counts(traffic.captures, traffic.labels)))
        log = stack.log.read_text()
        assert "restored partition" in log  # the second instance took over state from S3
        keys = boto3.client("s3", endpoint_url=moto_endpoint, region_name="us-east-1").list_objects_v2(Bucket=bucket)
        assert any(o["Key"].endswith(".ckpt") for o in keys.get("Contents", []))
    finally:
        for proc in (first, second):
            if proc is not None:
                stack.stop(proc)


def test_labels_find_captures_that_went_to_the_disk_store_and_moved_with_a_crashed_instance(
    kafka_bootstrap: str, moto_endpoint: str, topic_names: Callable[[str], str], tmp_path: Path,
) -> None:
    """Issue 12: every capture is first committed from memory into the first instance's RocksDB
    and shipped to S3; that instance is killed; the labels come afterwards and must find their
    captures in the store the second instance restored."""
    import json
    import signal

    from tests.integration.harness import http_get

    bucket = topic_names("disk")
    boto3.client("s3", endpoint_url=moto_endpoint, region_name="us-east-1").create_bucket(Bucket=bucket)
    stack = Stack(kafka_bootstrap, moto_endpoint, topic_names, tmp_path, partitions=2)
    stack.env["ROLLGUARD_STATE_DIR"] = f"s3://{bucket}/rollguard/"
    stack.env["ROLLGUARD_STATE_STORE"] = "disk"
    stack.env["ROLLGUARD_LOCAL_STATE_DIR"] = str(tmp_path / "local")
    traffic = generate(600, int(time.time() * 1000) - 3_600_000, SPEC, seed=9)
    caps = traffic.capture_records()
    produce(stack.bootstrap, stack.captures, caps)
    first = stack.start()
    second = None
    try:
        dims = {"EndpointName": SPEC.endpoint, "VariantName": SPEC.production, "ModelVersion": VERSIONS[SPEC.production]}
        invocations = as_dict(batch_counts(traffic.captures, []))[(SPEC.endpoint, SPEC.production, "Invocations")]

        def all_in_the_store() -> bool:
            status = json.loads(http_get(stack, "/v1/status")[1])
            return status["pending_joins"]["captures"] > 0 and status["state"]["store"] == "disk" \
                and status["state"]["front_entries"] == 0
        wait_for(lambda: stack.sums("Invocations", dims) >= invocations, 90, "every capture counted")
        wait_for(all_in_the_store, 30, "the pending captures committed from memory to the store")
        second = stack.start()
        wait_for(lambda: len(re.findall(r"assigned partitions", stack.log.read_text())) >= 3, 90,
                 "a rebalance between the two instances")
        first.send_signal(signal.SIGKILL)
        first.wait()
        wait_for(lambda: stack.log.read_text().count("restored partition") >= 2, 90,
                 "the second instance to restore both partitions")
        produce(stack.bootstrap, stack.labels, traffic.label_records())
        wait_for_counts(stack, second, as_dict(batch_counts(traffic.captures, traffic.labels)))
        status = json.loads(http_get(stack, "/v1/status")[1])
        assert status["state"]["last_restore"]["bytes"] > 0 and status["pending_joins"]["labels"] == 0
    finally:
        for proc in (first, second):
            if proc is not None and proc.poll() is None:
                stack.stop(proc)


def test_a_new_instance_is_given_every_partition_at_its_first_join(
    kafka_bootstrap: str, moto_endpoint: str, topic_names: Callable[[str], str], tmp_path: Path,
) -> None:
    # Joining before the topics' metadata had arrived, an instance was given nothing, and a second
    # rebalance had to follow (which once never came). Fresh groups: a new one joins the race anew.
    stack = Stack(kafka_bootstrap, moto_endpoint, topic_names, tmp_path)
    for i in range(3):
        proc = stack.start(ROLLGUARD_GROUP_ID=topic_names(f"group{i}"))
        try:
            wait_for(lambda: len(re.findall(r"assigned partitions", stack.log.read_text())) > i, 60,
                     f"instance {i} to be assigned partitions")
        finally:
            stack.stop(proc)
    assert re.findall(r"assigned partitions (\[.*\])", stack.log.read_text()) == ["[0, 1, 2]"] * 3, stack.log_tail()


def test_a_restore_longer_than_the_session_timeout_does_not_cost_the_instance_its_partitions(
    kafka_bootstrap: str, topic_names: Callable[[str], str],
) -> None:
    # kafka-python 3 calls the rebalance callbacks on the thread that sends the group's heartbeats:
    # a restore inside the callback outlasting the session got the instance evicted and its
    # partitions revoked and assigned again. The loop restores now, heartbeats going on meanwhile.
    import threading

    from pipelines.clock import MockedClock
    from service.consumer import group_consumer
    from service.daemon import Daemon
    from service.settings import load_settings
    from service.topics import ensure_topics
    from tests.unit.service.test_daemon import NOW, DeadLetters, FakePublisher, Store

    class SlowStore(Store):
        def load(self, name: str) -> bytes | None:
            if name.endswith(".ckpt"):
                time.sleep(9)  # a big partition from S3
            return super().load(name)

    captures, labels = topic_names("captures"), topic_names("labels")
    ensure_topics(kafka_bootstrap, {captures: 1, labels: 1})
    settings = load_settings(kafka_bootstrap_servers=kafka_bootstrap, captures_topic=captures, labels_topic=labels,
                             group_id=topic_names("group"), kafka_session_timeout_ms=6000)
    d = Daemon(settings, consumer=group_consumer(settings), dead_letters=DeadLetters(),  # type: ignore[arg-type]
               publisher=FakePublisher(), store=SlowStore(), clock=MockedClock(NOW))
    calls: list[str] = []

    def recorded(what: str, callback: Callable[[list[Any]], None]) -> Callable[[list[Any]], None]:
        def call(tps: list[Any]) -> None:
            calls.append(f"{what} {sorted({tp.partition for tp in tps})}")
            callback(tps)
        return call

    d.on_partitions_assigned = recorded("assigned", d.on_partitions_assigned)  # type: ignore[method-assign]
    d.on_partitions_revoked = recorded("revoked", d.on_partitions_revoked)  # type: ignore[method-assign]
    stop = threading.Event()
    loop = threading.Thread(target=d.run, args=(stop,), daemon=True)
    loop.start()
    try:
        wait_for(d.ready.is_set, 60, "the partition to be restored", 0.2)
        time.sleep(8)  # past a second session timeout: an evicted instance would have rejoined by now
        during = [c for c in calls if c != "revoked []"]
    finally:
        stop.set()
        loop.join(60)
    assert during == ["assigned [0]"], calls
    assert d.stats.records == 0 and not loop.is_alive()
