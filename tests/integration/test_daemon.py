"""The daemon end to end on the real stack: Kafka broker, moto server, `rollguard run` as a process.

Expected numbers come from a pandas batch join of the messages the test sent (tests/reference.py).
"""
from __future__ import annotations

import json
import random
import signal
import subprocess
import time
from collections.abc import Callable
from pathlib import Path

import pytest

from service.dead_letter import REASON, SOURCE_OFFSET, SOURCE_TOPIC
from service.devstack.traffic import BAD_RECORDS, Traffic, TrafficSpec, generate
from tests.integration.harness import Stack, consume_all, produce, wait_for
from tests.reference import as_dict, batch_counts

SPEC = TrafficSpec(duplicate_rate=0.03, correction_rate=0.08)
VERSIONS = {SPEC.production: SPEC.production_version, SPEC.shadow or "": SPEC.shadow_version}


@pytest.fixture
def stack(kafka_bootstrap: str, moto_endpoint: str, topic_names: Callable[[str], str], tmp_path: Path) -> Stack:
    return Stack(kafka_bootstrap, moto_endpoint, topic_names, tmp_path)


def published(stack: Stack, expected: dict[tuple[str, str, str], int]) -> dict[tuple[str, str, str], int]:
    got = {}
    for endpoint, variant, metric in expected:
        dims = {"EndpointName": endpoint, "VariantName": variant, "ModelVersion": VERSIONS[variant]}
        got[(endpoint, variant, metric)] = int(stack.sums(metric, dims))
    return got


def wait_for_counts(stack: Stack, proc: subprocess.Popen[bytes], expected: dict[tuple[str, str, str], int],
                    timeout_s: float = 120) -> None:
    last: dict[tuple[str, str, str], int] = {}

    def done() -> bool:
        nonlocal last
        assert proc.poll() is None, f"the daemon exited with {proc.returncode}:\n{stack.log_tail()}"
        last = published(stack, expected)
        return last == expected

    try:
        wait_for(done, timeout_s, "CloudWatch sums to equal the batch join", interval_s=2)
    except AssertionError:
        diff = {k: (last.get(k), v) for k, v in expected.items() if last.get(k) != v}
        raise AssertionError(f"published != expected (got, want): {diff}\n{stack.log_tail()}") from None


def send_traffic(stack: Stack, traffic: Traffic, early_labels: int = 100) -> None:
    """Some labels before their captures, then captures, then the rest of the labels."""
    labels = traffic.label_records()
    produce(stack.bootstrap, stack.labels, labels[:early_labels])
    produce(stack.bootstrap, stack.captures, traffic.capture_records())
    produce(stack.bootstrap, stack.labels, labels[early_labels:])


def test_counts_equal_batch_join_and_bad_records_dead_lettered(stack: Stack) -> None:
    now = int(time.time() * 1000)
    traffic = generate(1500, now - 3_600_000, SPEC, seed=7)
    send_traffic(stack, traffic)
    bad = [(None, raw) for _, raw in BAD_RECORDS]
    produce(stack.bootstrap, stack.captures, bad)
    produce(stack.bootstrap, stack.labels, [(None, b'{"inference_id": "x", "label": "maybe", "timestamp": 1}')])
    future = dict(traffic.captures[0], inference_id="future", timestamp=now + 3 * 3_600_000)
    produce(stack.bootstrap, stack.captures, [(b"future", json.dumps(future).encode())])
    expected = as_dict(batch_counts(traffic.captures, traffic.labels))
    assert expected[(SPEC.endpoint, SPEC.production, "Errors")] > 0
    assert expected[(SPEC.endpoint, SPEC.shadow or "", "ShadowComparisons")] > 0

    proc = stack.start()
    try:
        wait_for_counts(stack, proc, expected)
        dead = consume_all(stack.bootstrap, stack.dead, len(bad) + 2)
        reasons = sorted(dict(r.headers)[REASON].decode() for r in dead)
        assert reasons == sorted([reason for reason, _ in BAD_RECORDS] + ["invalid_label", "future_timestamp"])
        assert {r.value for r in dead} >= {raw for _, raw in bad}  # the original bytes
        for r in dead:
            h = dict(r.headers)
            assert h[SOURCE_TOPIC].decode() in (stack.captures, stack.labels) and int(h[SOURCE_OFFSET]) >= 0
    finally:
        stack.stop(proc)
    assert proc.returncode == 0, stack.log_tail()


def all_checkpointed_batches_sent(state_dir: Path) -> bool:
    """True when every batch the checkpoints list as unsent is recorded as sent: the publisher
    is between requests, so a kill now is not the one crash-between-write-and-record the spec
    allows to duplicate a tick."""
    from service import checkpoint

    files = sorted(state_dir.glob("*.ckpt"))
    for f in files:
        unsent = set(checkpoint.decode(f.read_bytes(), f.name)["unsent"])
        ledger = Path(str(f) + ".sent")
        sent = set(json.loads(ledger.read_bytes())) if ledger.exists() else set()
        if not unsent <= sent:
            return False
    return bool(files)


def test_sigkill_mid_stream_then_restart_is_exact(stack: Stack, tmp_path: Path) -> None:
    now = int(time.time() * 1000)
    traffic = generate(2000, now - 3_600_000, SPEC, seed=11)
    caps, labels = traffic.capture_records(), traffic.label_records()
    rng = random.Random(3)
    cut_c, cut_l = rng.randint(500, 3000), rng.randint(300, 1200)
    produce(stack.bootstrap, stack.captures, caps[:cut_c])
    produce(stack.bootstrap, stack.labels, labels[:cut_l])
    proc = stack.start(ROLLGUARD_TICK_SECONDS="5")
    wait_for(lambda: stack.sums("Invocations", {"EndpointName": SPEC.endpoint, "VariantName": SPEC.production,
                                                "ModelVersion": SPEC.production_version}) > 0, 60, "a first publish")
    # more records arrive and are consumed; kill without warning before the next checkpoint,
    # so the restart must restore the last checkpoint and replay them
    state = tmp_path / "state"
    wait_for(lambda: all_checkpointed_batches_sent(state), 30, "the publisher between requests", 0.01)
    checkpointed = {f: f.stat().st_mtime_ns for f in state.glob("*.ckpt")}
    produce(stack.bootstrap, stack.captures, caps[cut_c:cut_c + 500])
    produce(stack.bootstrap, stack.labels, labels[cut_l:cut_l + 200])
    time.sleep(0.5)
    if {f: f.stat().st_mtime_ns for f in state.glob("*.ckpt")} != checkpointed:  # a tick came between
        wait_for(lambda: all_checkpointed_batches_sent(state), 30, "the publisher between requests", 0.01)
    proc.send_signal(signal.SIGKILL)
    proc.wait()
    produce(stack.bootstrap, stack.captures, caps[cut_c + 500:])
    produce(stack.bootstrap, stack.labels, labels[cut_l + 200:])
    proc = stack.start()
    try:
        wait_for_counts(stack, proc, as_dict(batch_counts(traffic.captures, traffic.labels)))
    finally:
        stack.stop(proc)


def test_refuses_topics_that_are_not_co_partitioned(kafka_bootstrap: str, moto_endpoint: str,
                                                   topic_names: Callable[[str], str], tmp_path: Path) -> None:
    from service.topics import ensure_topics

    stack = Stack(kafka_bootstrap, moto_endpoint, topic_names, tmp_path)
    other = topic_names("labels2")
    ensure_topics(kafka_bootstrap, {other: 2})
    proc = stack.start(ROLLGUARD_LABELS_TOPIC=other)
    assert proc.wait(timeout=60) == 2
    log = stack.log_tail()
    assert "same partition count" in log and other in log


def test_heartbeat_is_published_without_traffic_and_stops_with_the_daemon(stack: Stack) -> None:
    """Issue 10, item 1: the liveness signal a fail-safe alarm watches, from the real daemon on the real stack."""
    proc = stack.start()  # tick 1 s, and no record ever sent
    try:
        wait_for(lambda: stack.sums("Heartbeat", {}) >= 3, 60, "three heartbeats with no traffic", interval_s=0.5)
        assert proc.poll() is None, stack.log_tail()
        assert stack.sums("Heartbeat", {}, "SampleCount") == stack.sums("Heartbeat", {})  # each one a 1
    finally:
        stack.stop(proc)
    assert proc.returncode == 0, stack.log_tail()
    stopped = stack.sums("Heartbeat", {})
    time.sleep(4)  # four ticks' worth
    assert stack.sums("Heartbeat", {}) == stopped  # a dead daemon sends none: the fail-safe alarm sees it missing
    proc = stack.start()
    try:
        wait_for(lambda: stack.sums("Heartbeat", {}) > stopped, 60, "the heartbeat to resume after a restart", 0.5)
    finally:
        stack.stop(proc)
