"""The CloudWatch publisher under a mocked clock, a fake sleep and fake clients."""
from __future__ import annotations

import copy
import json
import random
import threading
from collections import Counter
from collections.abc import Callable
from typing import Any

import boto3
import pytest
from botocore.config import Config
from botocore.exceptions import ClientError, EndpointConnectionError, ReadTimeoutError

from alarms.aws_clients import make_cloudwatch_client
from alarms.metric_data import estimate_entry_bytes
from alarms.publish_errors import classify_error
from alarms.publisher import Entry, Publisher
from pipelines.cloudwatch_rules import DAY_MS, HOUR_MS, MAX_FUTURE_MS, MINUTE_MS
from pipelines.cloudwatch_rules import MAX_DATUM_AGE_MS as CLOUDWATCH_MAX_AGE_MS
from pipelines.clock import MockedClock
from pipelines.datum import Datum

T0 = 1_764_000_000_000
DIMS = (("EndpointName", "fraud-ep"), ("VariantName", "v6"))


def client_error(code: str, status: int, message: str = "boom") -> ClientError:
    return ClientError({"Error": {"Code": code, "Message": message}, "ResponseMetadata": {"HTTPStatusCode": status}},
                       "PutMetricData")


def throttling() -> ClientError:
    return client_error("Throttling", 400, "Rate exceeded")


def server_error() -> ClientError:
    return client_error("InternalFailure", 500)


def connection_refused() -> EndpointConnectionError:
    return EndpointConnectionError(endpoint_url="http://127.0.0.1:9")


class FakeClient:
    """Records successful calls; ``fail(call_index, metric_data)`` returns an exception to raise, or None."""

    def __init__(self, fail: Callable[[int, list[Entry]], Exception | None] = lambda i, md: None) -> None:
        self.fail = fail
        self.calls = 0
        self.received: list[list[Entry]] = []

    def put_metric_data(self, *, Namespace: str, MetricData: list[Entry]) -> object:
        index = self.calls
        self.calls += 1
        error = self.fail(index, MetricData)
        if error is not None:
            raise error
        assert Namespace == "Rollguard"
        self.received.append(copy.deepcopy(MetricData))
        return {}

    def entries(self) -> list[Entry]:
        return [e for request in self.received for e in request]


def fails_first(n: int, make: Callable[[], Exception]) -> Callable[[int, list[Entry]], Exception | None]:
    return lambda i, md: make() if i < n else None


class Harness:
    def __init__(self, client: FakeClient, rng: Callable[[], float] = lambda: 1.0, **kwargs: Any) -> None:
        self.clock = MockedClock(T0)
        self.sleeps: list[float] = []
        self.client = client
        self.publisher = Publisher(client, "Rollguard", self.clock, sleep=self.sleep, rng=rng, **kwargs)

    def sleep(self, seconds: float) -> None:
        self.sleeps.append(seconds)
        self.clock.advance(round(seconds * 1000))


def scalar(i: int, ts: int = T0, name: str = "Invocations") -> Datum:
    return Datum(name, DIMS, ts, "Count", value=float(i))


def key(entry: Entry) -> tuple[Any, ...]:
    dims = tuple((d["Name"], d["Value"]) for d in entry["Dimensions"])
    return (entry["MetricName"], dims, entry["Timestamp"], entry.get("Value"),
            tuple(entry.get("Values", ())), tuple(entry.get("Counts", ())))


# -- packing requests (the flush packs what enqueue split and sized) ----------------------


def flushed(datums: list[Datum], **kwargs: Any) -> list[list[Entry]]:
    """The PutMetricData requests one flush of ``datums`` makes."""
    h = Harness(FakeClient(), **kwargs)
    h.publisher.enqueue("tick-1", datums)
    assert h.publisher.flush().complete
    return h.client.received


def test_requests_hold_at_most_1000_datums_in_order() -> None:
    requests = flushed([scalar(i) for i in range(2500)])
    assert [len(r) for r in requests] == [1000, 1000, 500]
    assert [e["Value"] for r in requests for e in r] == [float(i) for i in range(2500)]


def test_distributions_over_150_values_are_split_exactly() -> None:
    values = tuple(float(v) for v in range(1, 401))
    counts = tuple(float(v % 5 + 1) for v in range(400))
    d = Datum("Latency", DIMS, T0, "Milliseconds", values=values, counts=counts)
    [entries] = flushed([d, scalar(1)])
    parts = [e for e in entries if e["MetricName"] == "Latency"]
    assert [len(e["Values"]) for e in parts] == [150, 150, 100]
    assert all(len(e["Values"]) == len(e["Counts"]) for e in parts)
    assert {(e["Timestamp"], json.dumps(e["Dimensions"]), e["Unit"]) for e in parts} == {
        (T0 / 1000, json.dumps(d.to_cloudwatch()["Dimensions"]), "Milliseconds")}
    total = sum(v * c for e in parts for v, c in zip(e["Values"], e["Counts"]))
    assert total == sum(v * c for v, c in zip(values, counts))
    assert sum(c for e in parts for c in e["Counts"]) == sum(counts)


def test_requests_stay_under_the_byte_limit() -> None:
    # 30 dimensions with 1 KiB values: ~31 KB per entry, so bytes bind long before 1000 entries.
    fat = tuple((f"d{j}", "x" * 1024) for j in range(30))
    datums = [Datum("M", fat, T0, value=float(i)) for i in range(100)]
    dist = Datum("Latency", DIMS, T0, "Milliseconds",
                 values=tuple(1.0 + i / 3 for i in range(150)), counts=tuple(float(i + 1) for i in range(150)))
    requests = flushed(datums + [dist] * 300, max_request_bytes=1_000_000)
    assert len(requests) > 1
    for r in requests:
        assert len(r) <= 1000
        assert sum(estimate_entry_bytes(e) for e in r) <= 1_000_000 - 1024
        assert len(json.dumps({"Namespace": "Rollguard", "MetricData": r})) <= 1_000_000
    assert sum(len(r) for r in requests) == 400


def test_byte_estimate_bounds_what_botocore_actually_sends() -> None:
    """Serialise the flushed requests with botocore (never sent) and compare body sizes to the estimate."""
    bodies: list[int] = []

    class Captured(Exception):
        pass

    def capture(request: Any, **_: Any) -> None:
        bodies.append(len(request.body))
        raise Captured()

    client = boto3.client("cloudwatch", region_name="us-east-1", endpoint_url="http://127.0.0.1:9",
                          aws_access_key_id="x", aws_secret_access_key="y",
                          config=Config(disable_request_compression=True))
    client.meta.events.register("before-send.cloudwatch.PutMetricData", capture)
    rnd = random.Random(5)
    datums = [Datum("Latency", DIMS, T0 + i, "Milliseconds",
                    values=tuple(rnd.uniform(0, 1e4) for _ in range(150)),
                    counts=tuple(float(rnd.randrange(1, 10**6)) for _ in range(150))) for i in range(400)]
    datums += [scalar(i, T0 + i) for i in range(3000)]
    requests = flushed(datums, max_request_bytes=200_000)
    assert len(requests) > 1
    for r in requests:
        with pytest.raises(Captured):
            client.put_metric_data(Namespace="Rollguard", MetricData=r)
        assert bodies[-1] <= 1024 + sum(estimate_entry_bytes(e) for e in r) <= 200_000


# -- retries and backoff ------------------------------------------------------------------


def test_throttling_is_retried_with_exponential_backoff() -> None:
    h = Harness(FakeClient(fails_first(4, throttling)), rng=lambda: 1.0)
    h.publisher.enqueue("tick-1", [scalar(1)])
    result = h.publisher.flush()
    assert result.complete and result.sent_datums == 1 and result.retries == 4 and result.failures == 4
    assert h.sleeps == pytest.approx([0.2, 0.4, 0.8, 1.6])
    stats = h.publisher.stats()
    assert (stats.sent_requests, stats.sent_datums, stats.failures, stats.retries) == (1, 1, 4, 4)
    assert stats.last_success_ms == h.clock.now_ms()


def test_backoff_is_full_jitter_within_growing_capped_bounds() -> None:
    rnd = random.Random(11)
    h = Harness(FakeClient(fails_first(9, server_error)), rng=rnd.random, max_attempts=10, max_delay_s=20.0)
    h.publisher.enqueue("tick-1", [scalar(1)])
    assert h.publisher.flush().complete
    caps = [min(20.0, 0.2 * 2**k) for k in range(9)]
    assert caps[-1] == 20.0  # the cap is reached
    assert len(h.sleeps) == 9
    assert all(0.0 <= s <= cap for s, cap in zip(h.sleeps, caps))
    assert len(set(h.sleeps)) == 9  # jittered, not a fixed schedule
    # Growth: the same jitter draw produces delays proportional to the cap.
    fixed = Harness(FakeClient(fails_first(9, server_error)), rng=lambda: 0.5, max_attempts=10)
    fixed.publisher.enqueue("tick-1", [scalar(1)])
    fixed.publisher.flush()
    assert fixed.sleeps == pytest.approx([c / 2 for c in caps])


def test_giving_up_keeps_data_buffered_for_the_next_flush() -> None:
    h = Harness(FakeClient(fails_first(5, connection_refused)), max_attempts=5)
    h.publisher.enqueue("tick-1", [scalar(i) for i in range(3)])
    first = h.publisher.flush()
    assert not first.complete and first.remaining == 3 and first.failures == 5 and first.retries == 4
    assert first.error is not None and "tick-1" in first.error and "EndpointConnectionError" in first.error
    assert h.publisher.pending() == ["tick-1"]
    second = h.publisher.flush()
    assert second.complete and second.sent_datums == 3
    assert [e["Value"] for e in h.client.entries()] == [0.0, 1.0, 2.0]
    assert h.publisher.stats().last_error == first.error


def test_deadline_stops_retrying_before_sleeping_past_it() -> None:
    h = Harness(FakeClient(lambda i, md: throttling()), max_attempts=50)
    h.publisher.enqueue("tick-1", [scalar(1)])
    deadline = T0 + 2_000
    result = h.publisher.flush(deadline_ms=deadline)
    assert not result.complete and "deadline" in (result.error or "")
    assert h.clock.now_ms() <= deadline
    assert h.publisher.buffered_datums() == 1


@pytest.mark.parametrize(
    ("exc", "kind"),
    [
        (client_error("Throttling", 400), "retry"),
        (client_error("ThrottlingException", 400), "retry"),
        (client_error("TooManyRequests", 429), "retry"),
        (client_error("InternalFailure", 500), "retry"),
        (client_error("ServiceUnavailable", 503), "retry"),
        (client_error("500", 500), "retry"),
        (EndpointConnectionError(endpoint_url="http://x"), "retry"),
        (ReadTimeoutError(endpoint_url="http://x"), "retry"),
        (ConnectionResetError(), "retry"),
        (client_error("InvalidParameterValue", 400), "reject"),
        (client_error("InvalidParameterCombination", 400), "reject"),
        (client_error("MissingParameter", 400), "reject"),
        (client_error("AccessDenied", 403), "hold"),
        (client_error("ExpiredToken", 400), "hold"),
        (client_error("InvalidClientTokenId", 403), "hold"),
        (ValueError("a bug"), "hold"),
    ],
)
def test_error_classification(exc: Exception, kind: str) -> None:
    assert classify_error(exc) == kind


def test_held_error_stops_the_flush_without_retrying_or_dropping() -> None:
    h = Harness(FakeClient(fails_first(1, lambda: client_error("AccessDenied", 403))))
    h.publisher.enqueue("tick-1", [scalar(1)])
    result = h.publisher.flush()
    assert (result.failures, result.retries, result.remaining, result.rejected) == (1, 0, 1, 0)
    assert h.publisher.flush().complete
    assert len(h.client.entries()) == 1


def refuses_marked(calls: list[list[Entry]] | None = None) -> Callable[[int, list[Entry]], Exception | None]:
    """CloudWatch as a fake: any request holding a datum named Poison is refused with a 400."""
    def fail(i: int, md: list[Entry]) -> Exception | None:
        if calls is not None:
            calls.append(md)
        bad = any(e["MetricName"] == "Poison" for e in md)
        return client_error("InvalidParameterValue", 400, "nope") if bad else None
    return fail


def test_a_refused_datum_is_dropped_alone_and_the_rest_of_its_request_is_sent() -> None:
    h = Harness(FakeClient(refuses_marked()), max_metrics_per_request=2)
    h.publisher.enqueue("tick-1", [scalar(1), scalar(2)])
    h.publisher.enqueue("tick-2", [scalar(3, name="Poison")])
    h.publisher.enqueue("tick-3", [scalar(4), scalar(5)])
    result = h.publisher.flush()
    # Requests: [1,2] ok, [Poison(tick-2), 4(tick-3)] refused, then [Poison] refused and [4] ok, [5] ok.
    assert result.complete and result.rejected == 1 and result.sent_datums == 4 and result.retries == 0
    assert [e["Value"] for e in h.client.entries()] == [1.0, 2.0, 4.0, 5.0]
    stats = h.publisher.stats()
    assert (stats.rejected, stats.rejected_requests, stats.sent_datums) == (1, 1, 4)
    [(ids, message)] = stats.rejections
    assert ids == ("tick-2",) and "Poison{EndpointName=fraud-ep,VariantName=v6}" in message
    assert "InvalidParameterValue" in message
    assert stats.last_error is not None and "tick-2" in stats.last_error
    assert h.publisher.pending() == []


def test_bisecting_a_refused_request_delivers_every_valid_datum_in_order() -> None:
    """Issue 10, item 8: one bad datum used to cost the whole request (all valid datums with it)."""
    calls: list[list[Entry]] = []
    sent: list[list[str]] = []
    h = Harness(FakeClient(refuses_marked(calls)), on_sent=sent.append)
    datums = [scalar(i, name="Poison" if i in (17, 500, 501, 998) else "Invocations") for i in range(1000)]
    h.publisher.enqueue("tick-1", datums[:600])
    h.publisher.enqueue("tick-2", datums[600:])
    result = h.publisher.flush()
    assert result.complete and result.rejected == 4 and result.sent_datums == 996
    assert [e["Value"] for e in h.client.entries()] == [float(i) for i in range(1000) if i not in (17, 500, 501, 998)]
    stats = h.publisher.stats()
    assert stats.rejected == 4 and sorted(ids for ids, _ in stats.rejections) == [("tick-1",)] * 3 + [("tick-2",)]
    assert len(calls) <= 1 + 4 * 2 * 10  # a few bisection steps per bad datum, not one call per datum
    assert sorted(b for ids in sent for b in ids) == ["tick-1", "tick-2"]  # both done: never sent again
    assert h.publisher.pending() == [] and h.publisher.buffered_datums() == 0


def test_a_hold_while_bisecting_keeps_the_unsent_rest_buffered_in_order() -> None:
    def fail(i: int, md: list[Entry]) -> Exception | None:
        if i >= 3:
            return client_error("AccessDenied", 403) if i == 3 else None
        return client_error("InvalidParameterValue", 400) if any(e["MetricName"] == "Poison" for e in md) else None

    h = Harness(FakeClient(fail))
    h.publisher.enqueue("tick-1", [scalar(0, name="Poison")] + [scalar(i) for i in range(1, 8)])
    # calls: [0..7] refused, [0..3] refused, [0,1] refused, [0] held: nothing dropped yet
    first = h.publisher.flush()
    assert not first.complete and first.rejected == 0 and h.publisher.buffered_datums() == 8
    second = h.publisher.flush()
    assert second.complete and h.client.entries()[0]["MetricName"] == "Poison"  # CloudWatch took it this time
    assert [e["Value"] for e in h.client.entries()] == [float(i) for i in range(8)]


def test_invalid_datums_are_dropped_on_enqueue_and_counted() -> None:
    h = Harness(FakeClient())
    result = h.publisher.enqueue("tick-1", [
        scalar(1),
        Datum("Invocations", DIMS, T0, value=float("nan")),
        Datum("Latency", DIMS, T0, "Milliseconds", values=(1.0, 2.0), counts=(1.0,)),
        Datum("Invocations", DIMS, T0, unit="Furlongs", value=1.0),
    ])
    assert (result.accepted, result.dropped_invalid) == (1, 3)
    stats = h.publisher.stats()
    assert stats.dropped_invalid == 3 and "tick-1" in (stats.last_error or "")
    assert h.publisher.flush().sent_datums == 1


# -- timestamps ---------------------------------------------------------------------------


def test_too_old_and_too_new_are_dropped_and_counted_on_enqueue() -> None:
    h = Harness(FakeClient())
    margin = h.publisher.age_margin_ms
    oldest_ok = T0 - CLOUDWATCH_MAX_AGE_MS + margin
    newest_ok = T0 + MAX_FUTURE_MS
    result = h.publisher.enqueue("tick-1", [
        scalar(1, oldest_ok - 1), scalar(2, oldest_ok), scalar(3, T0 - 15 * DAY_MS),
        scalar(4, newest_ok), scalar(5, newest_ok + 1),
    ])
    assert (result.accepted, result.dropped_too_old, result.dropped_too_new) == (2, 2, 1)
    assert h.publisher.flush().sent_datums == 2
    assert [e["Value"] for e in h.client.entries()] == [2.0, 4.0]
    stats = h.publisher.stats()
    assert (stats.dropped_too_old, stats.dropped_too_new) == (2, 1)


def test_every_timestamp_the_parser_accepts_is_sent() -> None:
    """One future limit for parser and publisher (issue 10, item 9): captures stamped +1 h 45 min
    .. +2 h used to parse and then be dropped as too new. The limit itself stays clear of
    CloudWatch's two hours by the clock skew SigV4 tolerates."""
    from pipelines.parse import ParseLimits, parse_capture
    from pipelines.records import Capture

    assert ParseLimits().max_future_ms == MAX_FUTURE_MS <= 2 * HOUR_MS - 5 * MINUTE_MS
    h = Harness(FakeClient())
    accepted = []
    for ahead in (105 * MINUTE_MS, 110 * MINUTE_MS + 1, MAX_FUTURE_MS):
        raw = json.dumps({"inference_id": f"i{ahead}", "endpoint": "fraud-ep", "variant": "v6",
                          "timestamp": T0 + ahead, "prediction": 1}).encode()
        record = parse_capture(raw, now_ms=T0)
        assert isinstance(record, Capture), record
        accepted.append(Datum("Invocations", DIMS, record.timestamp_ms, value=1.0))
    assert parse_capture(json.dumps({"inference_id": "x", "endpoint": "fraud-ep", "variant": "v6",
                                     "timestamp": T0 + MAX_FUTURE_MS + 1, "prediction": 1}).encode(),
                         now_ms=T0).reason == "future_timestamp"  # type: ignore[union-attr]
    assert h.publisher.enqueue("tick-1", accepted).accepted == 3
    h.clock.advance(MINUTE_MS)  # time only brings them closer
    assert h.publisher.flush().sent_datums == 3
    assert h.publisher.stats().dropped_too_new == 0


def test_datums_that_age_out_during_an_outage_are_dropped_and_counted() -> None:
    h = Harness(FakeClient(fails_first(10**9, connection_refused)), max_attempts=2)
    margin = h.publisher.age_margin_ms
    edge = T0 - CLOUDWATCH_MAX_AGE_MS + margin  # valid now, too old a minute from now
    h.publisher.enqueue("tick-1", [scalar(1, edge), scalar(2, edge + 10 * MINUTE_MS), scalar(3, T0)])
    assert not h.publisher.flush().complete
    h.clock.advance(5 * MINUTE_MS)
    h.client.fail = lambda i, md: None
    result = h.publisher.flush()
    assert result.complete and result.dropped_too_old == 1 and result.sent_datums == 2
    assert [e["Value"] for e in h.client.entries()] == [2.0, 3.0]
    assert h.publisher.stats().dropped_too_old == 1


# -- buffer bounds ------------------------------------------------------------------------


def test_overflow_drops_the_oldest_and_counts_them() -> None:
    h = Harness(FakeClient(), max_buffered_datums=10)
    for t in range(3):
        h.publisher.enqueue(f"tick-{t}", [scalar(10 * t + i) for i in range(4)])
    stats = h.publisher.stats()
    assert stats.dropped_overflow == 2 and stats.buffered_datums == 10
    assert "dropped the 2 oldest" in (stats.last_error or "")
    assert h.publisher.pending() == ["tick-0", "tick-1", "tick-2"]
    h.publisher.flush()
    assert [e["Value"] for e in h.client.entries()] == [2, 3, 10, 11, 12, 13, 20, 21, 22, 23]
    h.publisher.enqueue("tick-3", [scalar(i) for i in range(12)])  # a batch larger than the cap
    assert h.publisher.stats().dropped_overflow == 4
    assert h.publisher.buffered_datums() == 10


def test_pending_includes_the_batch_being_sent() -> None:
    seen: list[list[str]] = []

    def pending_then_fail(i: int, md: list[Entry]) -> Exception:
        seen.append(h.publisher.pending())
        return connection_refused()

    h = Harness(FakeClient(pending_then_fail), max_attempts=1)
    h.publisher.enqueue("tick-1", [scalar(1)])
    h.publisher.flush()
    assert seen == [["tick-1"]]
    assert h.publisher.pending() == ["tick-1"]


# -- the outage story ---------------------------------------------------------------------


def test_long_outage_then_recovery_delivers_every_datum_exactly_once() -> None:
    outage_until = T0 + 3 * HOUR_MS
    h = Harness(FakeClient(), rng=random.Random(2).random, max_metrics_per_request=50)
    clock = h.clock
    h.client.fail = lambda i, md: (connection_refused() if i % 2 else throttling()) if clock.now_ms() < outage_until else None
    rnd = random.Random(9)
    sent: list[Datum] = []
    for tick in range(6 * 60):  # six hours of one-minute ticks
        tick_ms = T0 + tick * MINUTE_MS
        clock.set(tick_ms)
        datums = [scalar(rnd.randrange(1000), tick_ms - rnd.randrange(3) * MINUTE_MS, name=f"M{j}") for j in range(7)]
        sent.extend(datums)
        h.publisher.enqueue(f"tick-{tick}", datums)
        result = h.publisher.flush(deadline_ms=tick_ms + MINUTE_MS)
        assert clock.now_ms() <= tick_ms + MINUTE_MS
        if clock.now_ms() >= outage_until + MINUTE_MS:
            assert result.complete
    received = h.client.entries()
    assert Counter(map(key, received)) == Counter(key(d.to_cloudwatch()) for d in sent)
    # FIFO: the backlog went out in the order it was enqueued.
    assert [key(e) for e in received] == [key(d.to_cloudwatch()) for d in sent]
    stats = h.publisher.stats()
    assert stats.sent_datums == len(sent) and stats.failures > 100 and stats.retries > 0
    assert stats.dropped_overflow == stats.dropped_too_old == stats.rejected == 0


def test_background_flusher_and_concurrent_enqueue_deliver_exactly_once() -> None:
    lock_free_during_calls: list[bool] = []
    rnd = random.Random(4)
    rnd_lock = threading.Lock()
    publisher_box: list[Publisher] = []

    def fail(i: int, md: list[Entry]) -> Exception | None:
        # The buffer lock must not be held across the network call. The enqueueing thread may
        # hold it for a moment, so wait for it: had the flusher kept it, the wait would time out.
        acquired = publisher_box[0]._lock.acquire(timeout=2)
        if acquired:
            publisher_box[0]._lock.release()
        lock_free_during_calls.append(acquired)
        with rnd_lock:
            return throttling() if rnd.random() < 0.3 else None

    client = FakeClient(fail)
    clock = MockedClock(T0)
    publisher = Publisher(client, "Rollguard", clock, sleep=lambda s: None, max_metrics_per_request=7)
    publisher_box.append(publisher)
    publisher.start_background(0.001)
    expected: list[Datum] = []
    for b in range(300):
        datums = [scalar(b * 10 + i) for i in range(b % 5 + 1)]
        expected.extend(datums)
        publisher.enqueue(f"b{b}", datums)
    assert publisher.stop(timeout_s=10)
    publisher.flush()
    while publisher.buffered_datums():
        publisher.flush()
    assert Counter(e["Value"] for e in client.entries()) == Counter(d.value for d in expected)
    assert all(lock_free_during_calls) and len(lock_free_during_calls) > 10


def test_start_stop_background() -> None:
    h = Harness(FakeClient())
    h.publisher.start_background(0.01)
    with pytest.raises(RuntimeError, match="already running"):
        h.publisher.start_background(0.01)
    h.publisher.enqueue("tick-1", [scalar(1)])
    for _ in range(500):
        if h.client.entries():
            break
        threading.Event().wait(0.01)
    assert h.publisher.stop()
    assert [e["Value"] for e in h.client.entries()] == [1.0]


def test_make_cloudwatch_client_uses_endpoint_and_no_sdk_retries() -> None:
    client = make_cloudwatch_client("http://127.0.0.1:9", region_name="us-east-1")
    meta = client.meta  # type: ignore[attr-defined]
    assert meta.endpoint_url == "http://127.0.0.1:9"
    assert meta.config.disable_request_compression is True
    assert meta.config.retries["total_max_attempts"] == 1
    aws = make_cloudwatch_client(region_name="us-east-1")
    assert aws.meta.config.disable_request_compression is False  # type: ignore[attr-defined]


def test_an_exception_escaping_a_flush_leaves_the_datums_buffered() -> None:
    class Interrupted(BaseException):
        pass

    def sleep(seconds: float) -> None:
        raise Interrupted()

    client = FakeClient(fails_first(1, throttling))
    publisher = Publisher(client, "Rollguard", MockedClock(T0), sleep=sleep)
    publisher.enqueue("tick-1", [scalar(1), scalar(2)])
    with pytest.raises(Interrupted):
        publisher.flush()
    assert publisher.pending() == ["tick-1"] and publisher.buffered_datums() == 2
    assert publisher.flush().sent_datums == 2


def test_each_refused_datum_is_handed_on_so_the_daemon_can_dead_letter_it() -> None:
    refused: list[tuple[str, str]] = []
    h = Harness(FakeClient(refuses_marked()), on_refused=lambda d, why: refused.append((d.name, why)))
    h.publisher.enqueue("tick-1", [scalar(1), scalar(2, name="Poison"), scalar(3)])
    assert h.publisher.flush().complete
    assert [name for name, _ in refused] == ["Poison"] and "InvalidParameterValue" in refused[0][1]


def test_wake_flushes_now_rather_than_at_the_next_interval() -> None:
    h = Harness(FakeClient())
    h.publisher.start_background(3600)  # the interval alone would not flush within the test
    try:
        h.publisher.enqueue("tick-1", [scalar(1)])
        h.publisher.wake()
        for _ in range(500):
            if h.client.entries():
                break
            threading.Event().wait(0.01)
        assert [e["Value"] for e in h.client.entries()] == [1.0]
    finally:
        assert h.publisher.stop(timeout_s=5)  # stop wakes the thread too: it does not wait an hour
