"""Helpers for integration tests: the daemon as a real process, producing, reading CloudWatch."""
from __future__ import annotations

import os
import signal
import subprocess
import sys
import time
from collections.abc import Callable
from datetime import datetime, timedelta, timezone
from pathlib import Path
from typing import Any

import boto3
from kafka import KafkaConsumer, KafkaProducer

from service.topics import ensure_topics


def wait_for(predicate: Callable[[], bool], timeout_s: float, what: str, interval_s: float = 1.0) -> None:
    deadline = time.monotonic() + timeout_s
    while time.monotonic() < deadline:
        if predicate():
            return
        time.sleep(interval_s)
    raise AssertionError(f"timed out after {timeout_s:.0f} s waiting for {what}")


def produce(bootstrap: str, topic: str, records: list[tuple[bytes | None, bytes]], headers: list[tuple[str, bytes]] | None = None) -> None:
    producer = KafkaProducer(bootstrap_servers=bootstrap, linger_ms=5, acks="all")
    for key, value in records:
        producer.send(topic, key=key, value=value, headers=headers)
    producer.flush()
    producer.close()


def consume_all(bootstrap: str, topic: str, expected: int, timeout_s: float = 30) -> list[Any]:
    consumer = KafkaConsumer(topic, bootstrap_servers=bootstrap, auto_offset_reset="earliest",
                             enable_auto_commit=False, consumer_timeout_ms=2000)
    out: list[Any] = []
    deadline = time.monotonic() + timeout_s
    while len(out) < expected and time.monotonic() < deadline:
        out.extend(consumer)
    consumer.close()
    return out


class Stack:
    """Topics and settings for one test's daemon: everything unique to the test."""

    def __init__(self, bootstrap: str, aws: str, make_topic: Callable[[str], str], tmp: Path, partitions: int = 3) -> None:
        self.bootstrap, self.aws = bootstrap, aws
        self.captures, self.labels, self.dead = make_topic("captures"), make_topic("labels"), make_topic("dlq")
        ensure_topics(bootstrap, {self.captures: partitions, self.labels: partitions, self.dead: 1})
        self.namespace = "RollguardTest" + make_topic("ns").rsplit("-", 1)[1]
        self.env = {
            **os.environ,
            "ROLLGUARD_KAFKA_BOOTSTRAP_SERVERS": bootstrap,
            "ROLLGUARD_CAPTURES_TOPIC": self.captures,
            "ROLLGUARD_LABELS_TOPIC": self.labels,
            "ROLLGUARD_DEAD_LETTER_TOPIC": self.dead,
            "ROLLGUARD_GROUP_ID": make_topic("group"),
            "ROLLGUARD_NAMESPACE": self.namespace,
            "ROLLGUARD_AWS_ENDPOINT_URL": aws,
            "ROLLGUARD_TICK_SECONDS": "1",
            "ROLLGUARD_KAFKA_SESSION_TIMEOUT_MS": "8000",  # a killed daemon leaves the group sooner
            "ROLLGUARD_STATE_DIR": str(tmp / "state"),
            "ROLLGUARD_HTTP_ADDR": "127.0.0.1:0",
            "ROLLGUARD_WORKERS": "1",  # the daemon in one process, unless a test asks for workers
            "PYTHONUNBUFFERED": "1",
        }
        self.log = tmp / "daemon.log"
        self.cloudwatch = boto3.client("cloudwatch", endpoint_url=aws, region_name="us-east-1")

    def start(self, **env: str) -> subprocess.Popen[bytes]:
        with open(self.log, "ab") as log:
            return subprocess.Popen([sys.executable, "-m", "service.cli", "run"], env={**self.env, **env},
                                    stdout=log, stderr=subprocess.STDOUT)

    def stop(self, proc: subprocess.Popen[bytes], sig: int = signal.SIGTERM) -> None:
        proc.send_signal(sig)
        try:
            proc.wait(timeout=60)
        except subprocess.TimeoutExpired:
            proc.kill()
            proc.wait()

    def sums(self, metric: str, dims: dict[str, str], statistic: str = "Sum") -> float:
        """One metric's total over the last two days, read back with GetMetricStatistics."""
        now = datetime.now(timezone.utc)
        resp = self.cloudwatch.get_metric_statistics(
            Namespace=self.namespace, MetricName=metric,
            Dimensions=[{"Name": k, "Value": v} for k, v in dims.items()],
            StartTime=now - timedelta(days=2), EndTime=now + timedelta(hours=3), Period=86400, Statistics=[statistic],
        )
        return float(sum(p[statistic] for p in resp["Datapoints"]))

    def log_tail(self, lines: int = 40) -> str:
        return "\n".join(self.log.read_text(errors="replace").splitlines()[-lines:]) if self.log.exists() else ""


def http_get(stack: Stack, path: str, timeout_s: float = 60) -> tuple[int, bytes]:
    """GET `path` from the daemon's HTTP API (its port is the one the last start logged)."""
    import re
    import urllib.error
    import urllib.request

    port: list[str] = []

    def listening() -> bool:
        port[:] = re.findall(r"http listening on 127\.0\.0\.1:(\d+)", stack.log_tail(400))[-1:]
        return bool(port)

    wait_for(listening, timeout_s, "the daemon's HTTP API", 0.2)
    try:
        with urllib.request.urlopen(f"http://127.0.0.1:{port[0]}{path}", timeout=10) as resp:
            return resp.status, resp.read()
    except urllib.error.HTTPError as ex:
        return ex.code, ex.read()
