"""Partitions moving between instances keep their pending joins: two daemons in one group share
checkpoints under an S3 prefix (moto), and the published totals still equal the batch join."""
from __future__ import annotations

import re
import time
from collections.abc import Callable
from pathlib import Path

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
