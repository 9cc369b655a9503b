"""`rollguard run --workers 2` on the real stack: two worker processes in one group, exact totals,
a killed worker restarted by its supervisor, and the parent's API over both."""
from __future__ import annotations

import json
import os
import signal
import time
from collections.abc import Callable
from pathlib import Path

from service.devstack.traffic import Traffic, TrafficSpec, generate
from tests.integration.harness import Stack, http_get, wait_for
from tests.integration.test_daemon import all_checkpointed_batches_sent, send_traffic, wait_for_counts
from tests.reference import as_dict, batch_counts

SPEC = TrafficSpec(duplicate_rate=0.02, correction_rate=0.05)


def status(stack: Stack) -> dict:  # type: ignore[type-arg]
    code, body = http_get(stack, "/v1/status")
    assert code == 200, body
    return json.loads(body)  # type: ignore[no-any-return]


def test_two_workers_are_exact_a_killed_one_is_restarted_and_the_parent_aggregates_both(
    kafka_bootstrap: str, moto_endpoint: str, topic_names: Callable[[str], str], tmp_path: Path,
) -> None:
    stack = Stack(kafka_bootstrap, moto_endpoint, topic_names, tmp_path, partitions=6)
    traffic = generate(2400, int(time.time() * 1000) - 3_600_000, SPEC, seed=21)
    half = len(traffic.captures) // 2
    first = Traffic(traffic.captures[:half], traffic.labels[: len(traffic.labels) // 2], [])
    rest = Traffic(traffic.captures[half:], traffic.labels[len(traffic.labels) // 2:], [])
    send_traffic(stack, first)
    proc = stack.start(ROLLGUARD_WORKERS="2")
    try:
        wait_for_counts(stack, proc, as_dict(batch_counts(first.captures, first.labels)))
        doc = status(stack)
        assert [w["worker"] for w in doc["workers"]] == [1, 2]
        assert doc["partitions"] == list(range(6))
        assert sorted(p for w in doc["workers"] for p in w["partitions"]) == list(range(6))
        assert doc["records"] == sum(w["records"] for w in doc["workers"]) == len(first.captures) + len(first.labels)
        assert doc["join"]["captures"] > 0 and doc["ready"], doc.get("not_ready_reason")

        # kill worker 1 between publisher requests (not the one crash the spec lets repeat a tick)
        wait_for(lambda: all_checkpointed_batches_sent(tmp_path / "state"), 30, "the publisher between requests", 0.01)
        victim = next(w for w in doc["workers"] if w["worker"] == 1)["pid"]
        os.kill(victim, signal.SIGKILL)
        wait_for(lambda: any(w["restarts"] == 1 and w["pid"] not in (None, victim)
                             for w in status(stack)["workers"]), 60, "the supervisor to restart worker 1", 0.5)
        send_traffic(stack, rest, early_labels=0)
        wait_for_counts(stack, proc, as_dict(batch_counts(traffic.captures, traffic.labels)), timeout_s=180)
        wait_for(lambda: http_get(stack, "/readyz")[0] == 200, 60, "both workers ready again", 0.5)
        code, metrics = http_get(stack, "/metrics")
        assert code == 200
        text = metrics.decode()
        assert 'rollguard_worker_restarts_total{worker="1"} 1.0' in text
        assert "rollguard_workers 2.0" in text
        assert "worker 1 (exit code -9" in stack.log.read_text()
    finally:
        stack.stop(proc)
    assert proc.returncode == 0, stack.log_tail()
    assert not [line for line in stack.log.read_text().splitlines() if "Traceback" in line]


def test_a_killed_supervisor_takes_its_workers_with_it(
    kafka_bootstrap: str, moto_endpoint: str, topic_names: Callable[[str], str], tmp_path: Path,
) -> None:
    stack = Stack(kafka_bootstrap, moto_endpoint, topic_names, tmp_path, partitions=2)
    proc = stack.start(ROLLGUARD_WORKERS="2")
    try:
        wait_for(lambda: http_get(stack, "/readyz")[0] == 200, 90, "both workers ready", 0.5)
        pids = [w["pid"] for w in status(stack)["workers"]]
    finally:
        proc.send_signal(signal.SIGKILL)
        proc.wait()

    def gone() -> bool:
        return not any(Path(f"/proc/{pid}").exists() and b"service.cli" in Path(f"/proc/{pid}/cmdline").read_bytes()
                       for pid in pids)

    wait_for(gone, 60, "the workers to drain and exit on their own", 0.5)
