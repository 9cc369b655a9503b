"""`rollguard run` as the benchmarks drive it: a subprocess with its own log, its status API
read over HTTP, and what it published read back from the AWS API (CloudWatch over HTTP)."""
from __future__ import annotations

import json
import os
import re
import signal
import subprocess
import sys
import time
import urllib.error
import urllib.request
from dataclasses import dataclass
from datetime import datetime, timedelta, timezone
from pathlib import Path
from typing import Any

COUNT_METRICS = ("Invocations", "Errors", "TruePositives", "FalsePositives", "FalseNegatives", "TrueNegatives",
                 "Labeled", "ShadowAgreements", "ShadowComparisons")


@dataclass(frozen=True)
class Topics:
    captures: str
    labels: str
    dead_letters: str


def daemon_env(kafka: str, aws: str, topics: Topics, group: str, namespace: str, state_dir: Path,
               tick_s: float) -> dict[str, str]:
    return {
        **os.environ,
        "ROLLGUARD_KAFKA_BOOTSTRAP_SERVERS": kafka, "ROLLGUARD_AWS_ENDPOINT_URL": aws,
        "ROLLGUARD_CAPTURES_TOPIC": topics.captures, "ROLLGUARD_LABELS_TOPIC": topics.labels,
        "ROLLGUARD_DEAD_LETTER_TOPIC": topics.dead_letters, "ROLLGUARD_GROUP_ID": group,
        "ROLLGUARD_NAMESPACE": namespace, "ROLLGUARD_STATE_DIR": str(state_dir),
        "ROLLGUARD_TICK_SECONDS": f"{tick_s:g}", "ROLLGUARD_HTTP_ADDR": "127.0.0.1:0",
        "ROLLGUARD_KAFKA_SESSION_TIMEOUT_MS": "10000",
        "AWS_ACCESS_KEY_ID": "testing", "AWS_SECRET_ACCESS_KEY": "testing",
        "AWS_REGION": "us-east-1", "AWS_DEFAULT_REGION": "us-east-1", "PYTHONUNBUFFERED": "1",
    }


class Daemon:
    """One `rollguard run --workers N` process (the supervisor, or the daemon itself when N = 1)."""

    def __init__(self, env: dict[str, str], workers: int, log: Path) -> None:
        self.log = log
        with open(log, "ab") as out:
            self.proc = subprocess.Popen([sys.executable, "-m", "service.cli", "run", "--workers", str(workers),
                                          "--log-level", "INFO"], env=env,
                                         stdout=out, stderr=subprocess.STDOUT)
        self._address: str | None = None

    def address(self, timeout_s: float = 60.0) -> str:
        deadline = time.monotonic() + timeout_s
        while self._address is None:
            self.check_alive()
            found = re.findall(r"http listening on (127\.0\.0\.1:\d+)", self.log.read_text(errors="replace"))
            if found:
                self._address = found[-1]
                break
            if time.monotonic() > deadline:
                raise RuntimeError(f"no HTTP address logged in {timeout_s:.0f} s:\n{self.tail()}")
            time.sleep(0.1)
        return self._address

    def get(self, path: str) -> tuple[int, bytes]:
        try:
            with urllib.request.urlopen(f"http://{self.address()}{path}", timeout=10) as resp:
                return resp.status, resp.read()
        except urllib.error.HTTPError as ex:
            return ex.code, ex.read()

    def status(self) -> dict[str, Any]:
        code, body = self.get("/v1/status")
        if code != 200:
            raise RuntimeError(f"/v1/status answered {code}: {body[:200]!r}")
        doc: dict[str, Any] = json.loads(body)
        return doc

    def ready(self) -> bool:
        return self.get("/readyz")[0] == 200

    def check_alive(self) -> None:
        if self.proc.poll() is not None:
            raise RuntimeError(f"rollguard run exited with {self.proc.returncode}:\n{self.tail()}")

    def stop(self, timeout_s: float = 120.0) -> int:
        if self.proc.poll() is None:
            self.proc.send_signal(signal.SIGTERM)
        try:
            return self.proc.wait(timeout=timeout_s)
        except subprocess.TimeoutExpired:
            self.proc.kill()
            return self.proc.wait()

    def dump_stacks(self) -> None:
        """Have a live daemon print its threads' stacks to its log (service.signals)."""
        if self.proc.poll() is None:
            self.proc.send_signal(signal.SIGUSR1)

    def tail(self, lines: int = 30) -> str:
        return "\n".join(self.log.read_text(errors="replace").splitlines()[-lines:])


def wait_for(predicate: Any, timeout_s: float, what: str, interval_s: float = 0.2) -> float:
    """Poll until ``predicate()``; the monotonic time it first held."""
    deadline = time.monotonic() + timeout_s
    while True:
        if predicate():
            return time.monotonic()
        if time.monotonic() > deadline:
            raise RuntimeError(f"timed out after {timeout_s:.0f} s waiting for {what}")
        time.sleep(interval_s)


def consumption(daemons: list[Daemon], total: int, timeout_s: float, interval_s: float = 0.2) -> tuple[float, float, int]:
    """(start, end, counted at start) of consuming ``total`` records across ``daemons``: the first
    poll that saw some consumed, with how many it saw, and the first poll that saw all of them.
    The rate is (total - counted at start) / (end - start): what a process did before its status
    could be read (a supervisor's workers start consuming before the parent reads them) is left out."""
    deadline = time.monotonic() + timeout_s
    start, counted = 0.0, 0
    while True:
        now = time.monotonic()
        seen = 0
        for d in daemons:
            d.check_alive()
            try:
                seen += int(d.status().get("records") or 0)
            except (OSError, RuntimeError, ValueError):  # its API is not up yet
                pass
        if seen and not start:
            start, counted = now, seen
        if seen >= total:
            return start, now, counted
        if now > deadline:
            for d in daemons:  # where each one waits: its threads' stacks go to its log
                d.dump_stacks()
            time.sleep(1)
            tails = "".join(f"\n--- {d.log.name}:\n{d.tail(120)}" for d in daemons)
            raise RuntimeError(f"consumed {seen:,} of {total:,} records in {timeout_s:.0f} s{tails}")
        time.sleep(interval_s)


class CloudWatch:
    """What the daemon published, read back over HTTP (the moto server).

    The moto server scans every datum it holds on each read, and its GetMetricData matches
    dimensions across namespaces, so totals are read per namespace with GetMetricStatistics and
    freshness with GetMetricData on dimension values of its own over the last minutes only."""

    def __init__(self, endpoint_url: str) -> None:
        import boto3

        self.client = boto3.client("cloudwatch", endpoint_url=endpoint_url, region_name="us-east-1",
                                   aws_access_key_id="testing", aws_secret_access_key="testing")

    def total(self, namespace: str, metric: str, dims: dict[str, str], since: datetime) -> float:
        """One metric's Sum of the datums stamped from ``since`` on (GetMetricStatistics)."""
        resp = self.client.get_metric_statistics(
            Namespace=namespace, MetricName=metric, Dimensions=[{"Name": k, "Value": v} for k, v in dims.items()],
            StartTime=since, EndTime=datetime.now(timezone.utc) + timedelta(hours=3), Period=86400, Statistics=["Sum"])
        return float(sum(p["Sum"] for p in resp["Datapoints"]))

    def recent(self, namespace: str, metric: str, dims: dict[str, str], since: datetime) -> float:
        """One metric's Sum since ``since`` (minutes ago) with GetMetricData, as a dashboard reads it."""
        now = datetime.now(timezone.utc)
        resp = self.client.get_metric_data(
            MetricDataQueries=[{"Id": "m", "ReturnData": True, "MetricStat": {
                "Metric": {"Namespace": namespace, "MetricName": metric,
                           "Dimensions": [{"Name": k, "Value": v} for k, v in dims.items()]},
                "Period": 60, "Stat": "Sum"}}],
            StartTime=since.replace(second=0, microsecond=0), EndTime=now + timedelta(minutes=2))
        return float(sum(v for r in resp["MetricDataResults"] for v in r["Values"]))

    def published(self, namespace: str, expected: dict[tuple[str, str, str], int], versions: dict[str, str],
                  since: datetime) -> dict[tuple[str, str, str], int]:
        return {(ep, var, metric): int(self.total(namespace, metric, {"EndpointName": ep, "VariantName": var,
                                                                      "ModelVersion": versions[var]}, since))
                for ep, var, metric in expected}
