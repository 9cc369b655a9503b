"""Faults that once lost data or killed the daemon, on the real stack: a state directory that
fills up (a real tmpfs of 4 MiB), and a broker that stops answering with dead letters in flight.

Expected counts come from a pandas batch join of the messages sent (tests/reference.py).
"""
from __future__ import annotations

import json
import os
import signal
import subprocess
import time
from collections.abc import Callable, Iterator
from pathlib import Path

import pytest

from service.devstack import start_kafka
from service.devstack.traffic import BAD_RECORDS, TrafficSpec, generate
from tests.integration.harness import Stack, consume_all, http_get, produce, wait_for
from tests.reference import as_dict, batch_counts

SPEC = TrafficSpec()
PRODUCTION = {"EndpointName": SPEC.endpoint, "VariantName": SPEC.production, "ModelVersion": SPEC.production_version}


class Tmpfs:
    """A small real filesystem for the state directory, filled and emptied on demand."""

    def __init__(self, path: Path, size: str = "4m") -> None:
        self.path = path
        path.mkdir(parents=True, exist_ok=True)
        self.sudo = [] if os.geteuid() == 0 else ["sudo", "-n"]  # .ci/run's machines run as root
        subprocess.run([*self.sudo, "mount", "-t", "tmpfs", "-o", f"size={size},mode=1777", "tmpfs", str(path)],
                       check=True, capture_output=True)
        self.filler = path / "filler"

    def fill(self) -> None:
        with open(self.filler, "ab", buffering=0) as f:
            for chunk in (65536, 1):  # the last bytes too
                try:
                    while True:
                        f.write(b"\0" * chunk)
                except OSError:
                    pass

    def free(self) -> None:
        self.filler.unlink(missing_ok=True)

    def unmount(self) -> None:
        subprocess.run([*self.sudo, "umount", "-l", str(self.path)], check=False, capture_output=True)


@pytest.fixture
def disk(tmp_path: Path) -> Iterator[Tmpfs]:
    fs = Tmpfs(tmp_path / "state")
    yield fs
    fs.unmount()


def counts(stack: Stack, metrics: tuple[str, ...]) -> dict[str, int]:
    return {m: int(stack.sums(m, PRODUCTION)) for m in metrics}


METRICS = ("Invocations", "Errors", "TruePositives", "FalsePositives", "FalseNegatives", "TrueNegatives", "Labeled")


def expected_counts(captures: list[dict], labels: list[dict]) -> dict[str, int]:
    table = as_dict(batch_counts(captures, labels))
    return {m: table.get((SPEC.endpoint, SPEC.production, m), 0) for m in METRICS}


def wait_counts(stack: Stack, proc: subprocess.Popen[bytes], want: dict[str, int], timeout_s: float = 120) -> None:
    last: dict[str, int] = {}

    def done() -> bool:
        nonlocal last
        assert proc.poll() is None, f"the daemon exited with {proc.returncode}:\n{stack.log_tail()}"
        last = counts(stack, tuple(want))
        return last == want

    try:
        wait_for(done, timeout_s, "published counts to equal the batch join", 2)
    except AssertionError:
        raise AssertionError(f"published {last} != expected {want}\n{stack.log_tail()}") from None


def test_a_full_state_directory_holds_offsets_and_counts_and_recovers(
        kafka_bootstrap: str, moto_endpoint: str, topic_names: Callable[[str], str], tmp_path: Path, disk: Tmpfs) -> None:
    stack = Stack(kafka_bootstrap, moto_endpoint, topic_names, tmp_path, partitions=2)
    now = int(time.time() * 1000)
    a, b, c = (generate(500, now - 3_600_000 + i * 600_000, SPEC, seed=20 + i) for i in range(3))
    proc = stack.start()
    try:
        produce(stack.bootstrap, stack.captures, a.capture_records())
        wait_counts(stack, proc, {"Invocations": expected_counts(a.captures, [])["Invocations"]})
        # the disk fills: the next captures are consumed, but no checkpoint can hold them
        disk.fill()
        produce(stack.bootstrap, stack.captures, b.capture_records())
        wait_for(lambda: http_get(stack, "/readyz")[0] == 503, 60, "/readyz to say not ready")
        code, body = http_get(stack, "/readyz")
        assert b"No space left on device" in body, body
        time.sleep(3)
        status = json.loads(http_get(stack, "/v1/status")[1])
        assert status["checkpoint_failures"] > 0 and status["records"] >= 2 * len(a.captures)
        assert counts(stack, ("Invocations",))["Invocations"] == expected_counts(a.captures, [])["Invocations"]
        # space returns: it recovers by itself, publishing the held counts once
        disk.free()
        wait_for(lambda: http_get(stack, "/readyz")[0] == 200, 60, "/readyz to say ready again")
        wait_counts(stack, proc, {"Invocations": expected_counts(a.captures + b.captures, [])["Invocations"]})
        # full again, then a crash: the restart resumes from the last checkpoint written
        disk.fill()
        produce(stack.bootstrap, stack.captures, c.capture_records())
        wait_for(lambda: http_get(stack, "/readyz")[0] == 503, 60, "/readyz to say not ready")
        proc.send_signal(signal.SIGKILL)
        proc.wait()
        disk.free()
        proc = stack.start()
        labels = a.labels + b.labels + c.labels
        produce(stack.bootstrap, stack.labels, [(lab["inference_id"].encode(), json.dumps(lab).encode()) for lab in labels])
        wait_counts(stack, proc, expected_counts(a.captures + b.captures + c.captures, labels))
        # a stop while the disk is full: the final checkpoint fails, and the exit code says so
        disk.fill()
        more = generate(50, now - 600_000, SPEC, seed=40)
        produce(stack.bootstrap, stack.captures, more.capture_records())
        wait_for(lambda: http_get(stack, "/readyz")[0] == 503, 60, "/readyz to say not ready")
    finally:
        stack.stop(proc)
    assert proc.returncode == 2, stack.log_tail()
    assert "final checkpoint failed" in stack.log_tail()


@pytest.fixture
def own_broker() -> Iterator[object]:
    """A broker of this test's own: it is stopped (SIGSTOP) and resumed, so no other test may share it."""
    with start_kafka() as broker:
        yield broker


def test_a_broker_outage_with_dead_letters_in_flight_pauses_the_daemon(
        own_broker: object, moto_endpoint: str, topic_names: Callable[[str], str], tmp_path: Path) -> None:
    broker: object = own_broker
    bootstrap: str = broker.bootstrap_servers  # type: ignore[attr-defined]
    pid: int = broker.pid  # type: ignore[attr-defined]
    stack = Stack(bootstrap, moto_endpoint, topic_names, tmp_path, partitions=1)
    now = int(time.time() * 1000)
    traffic = generate(400, now - 3_600_000, SPEC, seed=50)
    bad = [(None, raw) for _, raw in BAD_RECORDS] * 300
    proc = stack.start(ROLLGUARD_READY_CONSUMER_STALL_SECONDS="8")
    try:
        produce(stack.bootstrap, stack.captures, traffic.capture_records())
        wait_for(lambda: http_get(stack, "/readyz")[0] == 200, 60, "the daemon ready")
        produce(stack.bootstrap, stack.captures, bad)
        os.kill(pid, signal.SIGSTOP)  # at once: the daemon is now consuming them and dead-lettering
        try:
            stopped_at = time.monotonic()
            wait_for(lambda: http_get(stack, "/readyz")[0] == 503, 60, "/readyz to say not ready during the outage")
            while time.monotonic() - stopped_at < 45:  # longer than any producer or client timeout
                assert proc.poll() is None, f"the daemon died during the outage:\n{stack.log_tail()}"
                time.sleep(1)
        finally:
            os.kill(pid, signal.SIGCONT)
        produce(stack.bootstrap, stack.labels, traffic.label_records())
        wait_counts(stack, proc, expected_counts(traffic.captures, traffic.labels), timeout_s=180)
        dead = consume_all(stack.bootstrap, stack.dead, len(bad), timeout_s=120)
        assert len({int(dict(r.headers)["rollguard.source.offset"]) for r in dead}) == len(bad), stack.log_tail()
        wait_for(lambda: http_get(stack, "/readyz")[0] == 200, 60, "/readyz ready after the outage")
    finally:
        stack.stop(proc)
    assert proc.returncode == 0, stack.log_tail()


def test_cloudwatch_away_makes_the_daemon_not_ready_and_nothing_is_lost(
        kafka_bootstrap: str, moto_endpoint: str, topic_names: Callable[[str], str], tmp_path: Path) -> None:
    from service.devstack import start_moto
    from service.devstack.processes import free_port

    port = free_port()  # nothing answers there yet: every PutMetricData fails to connect
    stack = Stack(kafka_bootstrap, f"http://127.0.0.1:{port}", topic_names, tmp_path, partitions=1)
    now = int(time.time() * 1000)
    traffic = generate(300, now - 3_600_000, SPEC, seed=60)
    produce(stack.bootstrap, stack.captures, traffic.capture_records())
    produce(stack.bootstrap, stack.labels, traffic.label_records())
    proc = stack.start(ROLLGUARD_READY_PUBLISH_STALL_TICKS="3")
    try:
        wait_for(lambda: http_get(stack, "/readyz")[0] == 503 and b"cannot publish" in http_get(stack, "/readyz")[1],
                 90, "/readyz to say it cannot publish")
        with start_moto(port=port):
            wait_for(lambda: http_get(stack, "/readyz")[0] == 200, 90, "/readyz ready once CloudWatch answers")
            wait_counts(stack, proc, expected_counts(traffic.captures, traffic.labels))
            stack.stop(proc)
    finally:
        stack.stop(proc)
    assert proc.returncode == 0, stack.log_tail()
