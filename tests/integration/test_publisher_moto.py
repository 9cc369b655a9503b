"""The publisher against a real moto server over HTTP: sums arrive, and arrive once after an outage."""
from __future__ import annotations

import socket
import time
import uuid
from collections import defaultdict
from collections.abc import Sequence
from datetime import datetime, timezone
from typing import Any

import boto3
import numpy as np
import pytest

from alarms.aws_clients import make_cloudwatch_client
from alarms.publisher import Entry, MetricsClient, Publisher
from pipelines.clock import MockedClock
from pipelines.datum import Datum
from pipelines.latency import Histogram

pytestmark = pytest.mark.integration

MIN = 60_000
DIMS = (("EndpointName", "fraud-ep"), ("VariantName", "v6"), ("ModelVersion", "fraud-v6"))


def now_ms() -> int:
    return int(time.time() * 1000)


def dead_endpoint() -> str:
    """A loopback URL where nothing listens (the port was free a moment ago)."""
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        port = s.getsockname()[1]
    return f"http://127.0.0.1:{port}"


class Redirect:
    """A MetricsClient whose target can be swapped: the network 'comes back'."""

    def __init__(self, target: MetricsClient) -> None:
        self.target = target

    def put_metric_data(self, *, Namespace: str, MetricData: list[Entry]) -> object:
        return self.target.put_metric_data(Namespace=Namespace, MetricData=MetricData)


def read_back(endpoint: str, namespace: str, name: str, start_ms: int, end_ms: int) -> dict[int, tuple[float, float]]:
    """minute start (ms) -> (Sum, SampleCount) from GetMetricStatistics, read with a plain boto3 client."""
    cw = boto3.client("cloudwatch", endpoint_url=endpoint, region_name="us-east-1")
    out = cw.get_metric_statistics(
        Namespace=namespace, MetricName=name,
        Dimensions=[{"Name": k, "Value": v} for k, v in DIMS],
        StartTime=datetime.fromtimestamp(start_ms / 1000, timezone.utc),
        EndTime=datetime.fromtimestamp(end_ms / 1000, timezone.utc),
        Period=60, Statistics=["Sum", "SampleCount"],
    )
    return {int(p["Timestamp"].timestamp() * 1000): (p["Sum"], p["SampleCount"]) for p in out["Datapoints"]}


def expected_sums(datums: Sequence[Datum], name: str) -> dict[int, tuple[float, float]]:
    """Independent aggregation: per minute, Sum of values (value·count) and SampleCount (count, or 1)."""
    acc: dict[int, list[float]] = defaultdict(lambda: [0.0, 0.0])
    for d in datums:
        if d.name != name:
            continue
        minute = d.timestamp_ms // MIN * MIN
        if d.values:
            acc[minute][0] += float(np.dot(np.array(d.values), np.array(d.counts)))
            acc[minute][1] += float(np.sum(d.counts))
        else:
            acc[minute][0] += float(d.value or 0.0)
            acc[minute][1] += 1.0
    return {k: (v[0], v[1]) for k, v in acc.items()}


def assert_same(got: dict[int, tuple[float, float]], want: dict[int, tuple[float, float]]) -> None:
    assert got.keys() == want.keys()
    for minute, (total, count) in want.items():
        assert got[minute][0] == pytest.approx(total, rel=1e-9)
        assert got[minute][1] == count


def wide_latency_histogram(rng: np.random.Generator, n: int) -> tuple[Histogram, np.ndarray]:
    samples = np.exp(rng.uniform(np.log(1e-3), np.log(1e8), size=n))
    hist = Histogram()
    for s in samples:
        hist.add(float(s))
    return hist, samples


def test_publish_and_read_back_sums(moto_endpoint: str) -> None:
    namespace = f"RollguardTest-{uuid.uuid4().hex[:10]}"
    clock = MockedClock(now_ms())
    publisher = Publisher(make_cloudwatch_client(moto_endpoint, region_name="us-east-1"), namespace, clock,
                          sleep=lambda s: None)
    rng = np.random.default_rng(42)
    base = clock.now_ms() // MIN * MIN - 20 * MIN
    datums: list[Datum] = []
    latency_samples = 0
    for m in range(5):
        ts = base + m * MIN
        hist, samples = wide_latency_histogram(rng, 3000)
        latency_samples += len(samples)
        assert len(hist) > 150  # forces a split into several datums
        values, counts = hist.distribution()
        datums.append(Datum("Latency", DIMS, ts, "Milliseconds", values=values, counts=counts))
        # Two datums of one metric in one minute (two ticks' worth) must add up.
        datums.append(Datum("Invocations", DIMS, ts, value=float(rng.integers(100, 1000))))
        datums.append(Datum("Invocations", DIMS, ts + 30_000, value=float(rng.integers(100, 1000))))
        datums.append(Datum("TruePositives", DIMS, ts, value=float(rng.integers(0, 50))))
    # Enough scalar datums to need more than one request.
    filler = [Datum("Labeled", DIMS, base + (i % 5) * MIN, value=1.0) for i in range(2500)]
    publisher.enqueue("tick-a", datums[:10])
    publisher.enqueue("tick-b", datums[10:] + filler)
    result = publisher.flush()
    assert result.complete, result.error
    assert result.sent_requests >= 3

    start, end = base - MIN, base + 6 * MIN
    for name in ("Latency", "Invocations", "TruePositives", "Labeled"):
        assert_same(read_back(moto_endpoint, namespace, name, start, end), expected_sums(datums + filler, name))
    latency = read_back(moto_endpoint, namespace, "Latency", start, end)
    assert sum(count for _, count in latency.values()) == latency_samples
    assert {minute: count for minute, (_, count) in read_back(moto_endpoint, namespace, "Labeled", start, end).items()} \
        == {base + m * MIN: 500.0 for m in range(5)}


def test_outage_then_recovery_delivers_every_sum_exactly_once(moto_endpoint: str) -> None:
    namespace = f"RollguardTest-{uuid.uuid4().hex[:10]}"
    clock = MockedClock(now_ms())
    sleeps: list[float] = []

    def sleep(seconds: float) -> None:
        sleeps.append(seconds)
        clock.advance(round(seconds * 1000))

    client = Redirect(make_cloudwatch_client(dead_endpoint(), region_name="us-east-1", connect_timeout_s=2))
    publisher = Publisher(client, namespace, clock, sleep=sleep, max_attempts=3, max_metrics_per_request=20)
    rng = np.random.default_rng(7)
    base = clock.now_ms() // MIN * MIN - 30 * MIN
    datums: list[Datum] = []
    for tick in range(10):
        ts = base + tick * MIN
        hist, _ = wide_latency_histogram(rng, 500)
        values, counts = hist.distribution()
        batch = [Datum("Latency", DIMS, ts, "Milliseconds", values=values, counts=counts)]
        batch += [Datum("Errors", DIMS, ts, value=float(rng.integers(0, 9))) for _ in range(13)]
        datums.extend(batch)
        publisher.enqueue(f"tick-{tick}", batch)
        result = publisher.flush()
        assert not result.complete and result.sent_datums == 0
        assert result.error is not None and "EndpointConnectionError" in result.error
    assert publisher.pending() == [f"tick-{t}" for t in range(10)]
    stats = publisher.stats()
    assert stats.failures == 30 and stats.retries == 20 and stats.sent_datums == 0
    assert len(sleeps) == 20

    client.target = make_cloudwatch_client(moto_endpoint, region_name="us-east-1")
    result = publisher.flush()
    assert result.complete, result.error
    assert publisher.pending() == []
    # The network returns for good: flushing again must not send anything twice.
    assert publisher.flush().sent_requests == 0

    start, end = base - MIN, base + 11 * MIN
    for name in ("Latency", "Errors"):
        assert_same(read_back(moto_endpoint, namespace, name, start, end), expected_sums(datums, name))
    stats = publisher.stats()
    assert stats.dropped_too_old == stats.dropped_overflow == stats.rejected == 0


def test_moto_rejection_is_counted_not_retried(moto_endpoint: str) -> None:
    """A datum moto refuses with a 4xx is dropped and recorded, and later batches still go out; so do
    the valid datums of its own request (issue 10, item 8)."""
    namespace = f"RollguardTest-{uuid.uuid4().hex[:10]}"
    clock = MockedClock(now_ms())
    raw = make_cloudwatch_client(moto_endpoint, region_name="us-east-1")

    class Poisoning:
        """Slips a NaN past the publisher's own validation, as a stand-in for any data CloudWatch refuses."""

        def put_metric_data(self, *, Namespace: str, MetricData: list[Entry]) -> object:
            data: list[dict[str, Any]] = [dict(e) for e in MetricData]
            for e in data:
                if e["MetricName"] == "Poison":
                    e["Value"] = float("nan")
            return raw.put_metric_data(Namespace=Namespace, MetricData=data)

    publisher = Publisher(Poisoning(), namespace, clock, sleep=lambda s: None, max_metrics_per_request=1)
    ts = clock.now_ms() // MIN * MIN - 5 * MIN
    publisher.enqueue("tick-1", [Datum("Poison", DIMS, ts, value=1.0)])
    publisher.enqueue("tick-2", [Datum("Invocations", DIMS, ts, value=5.0)])
    result = publisher.flush()
    assert result.complete and result.rejected == 1 and result.sent_datums == 1 and result.retries == 0
    [(ids, message)] = publisher.stats().rejections
    assert ids == ("tick-1",) and "InvalidParameterValue" in message
    assert read_back(moto_endpoint, namespace, "Invocations", ts - MIN, ts + MIN) == {ts: (5.0, 1.0)}

    together = Publisher(Poisoning(), namespace, clock, sleep=lambda s: None)  # one request for all three
    ts -= MIN
    together.enqueue("tick-3", [Datum("Invocations", DIMS, ts, value=7.0), Datum("Poison", DIMS, ts, value=1.0),
                                Datum("Errors", DIMS, ts, value=2.0)])
    result = together.flush()
    assert result.complete and result.rejected == 1 and result.sent_datums == 2
    [(ids, message)] = together.stats().rejections
    assert ids == ("tick-3",) and "Poison" in message and "InvalidParameterValue" in message
    assert read_back(moto_endpoint, namespace, "Invocations", ts - MIN, ts + MIN / 2) == {ts: (7.0, 1.0)}
    assert read_back(moto_endpoint, namespace, "Errors", ts - MIN, ts + MIN / 2) == {ts: (2.0, 1.0)}

