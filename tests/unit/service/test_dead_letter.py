"""DeadLetters against an in-memory producer: every send checked, truncation, rebuild, outages."""
from __future__ import annotations

import hashlib
from typing import Any

from kafka.errors import KafkaTimeoutError, MessageSizeTooLargeError

from pipelines.records import BadRecord, Source
from service.dead_letter import ORIGINAL_SHA256, ORIGINAL_SIZE, SMALL_COPY_BYTES, TRUNCATED, DeadLetters


class Future:
    def __init__(self, error: BaseException | None = None, done: bool = True) -> None:
        self.is_done, self.exception = done, error

    def succeeded(self) -> bool:
        return self.is_done and self.exception is None


class Producer:
    """Accepts sends; `refuse_over` makes the 'broker' fail a record larger than it; `fatal`
    makes every later send raise, like an idempotent producer that went fatal."""

    def __init__(self, refuse_over: int | None = None, local_limit: int | None = None) -> None:
        self.written: list[dict[str, Any]] = []
        self.refuse_over, self.local_limit = refuse_over, local_limit
        self.fatal = False
        self.down = False
        self.closed = False
        self._futures: list[tuple[Future, dict[str, Any]]] = []

    def send(self, topic: str, value: bytes | None = None, key: bytes | None = None, headers: Any = None) -> Future:
        if self.fatal:
            raise RuntimeError("producer is in a fatal state")
        if self.local_limit is not None and len(value or b"") > self.local_limit:
            raise MessageSizeTooLargeError("the message is larger than max_request_size")
        future = Future(done=False)
        self._futures.append((future, {"topic": topic, "value": value, "key": key, "headers": dict(headers or [])}))
        return future

    def flush(self, timeout: float | None = None) -> None:
        if self.down:
            raise KafkaTimeoutError("Timeout waiting for future")
        for future, record in self._futures:
            if self.refuse_over is not None and len(record["value"]) > self.refuse_over:
                future.exception = MessageSizeTooLargeError("broker: the request included a message larger than the max")
                self.fatal = True  # what kafka-python's idempotent producer did in the probe
            else:
                self.written.append(record)
            future.is_done = True
        self._futures = []

    def close(self, timeout: float | None = None) -> None:
        self.closed = True


def bad(raw: bytes, offset: int = 0, reason: str = "too_large") -> BadRecord:
    return BadRecord(reason, "detail", raw, Source("captures", 0, offset))


def test_nothing_counts_until_the_broker_confirms_it() -> None:
    producer = Producer()
    dl = DeadLetters(producer, "dlq")
    dl.send(bad(b"{oops", reason="not_json"), b"k")
    assert dl.sent == 0 and dl.pending() == 1
    assert dl.flush() is True
    assert dl.sent == 1 and dl.written == {"not_json": 1} and dl.pending() == 0
    assert producer.written[0]["value"] == b"{oops"


def test_a_record_over_the_limit_goes_as_a_truncated_copy_with_size_and_hash() -> None:
    producer = Producer()
    dl = DeadLetters(producer, "dlq", max_bytes=2048)
    raw = b"x" * 3_000_000
    dl.send(bad(raw), None)
    assert dl.flush()
    (record,) = producer.written
    assert record["value"] == raw[:2048]
    h = record["headers"]
    assert h[TRUNCATED] == b"1" and int(h[ORIGINAL_SIZE]) == len(raw)
    assert h[ORIGINAL_SHA256].decode() == hashlib.sha256(raw).hexdigest()
    assert dl.truncated == 1


def test_producer_side_size_refusal_never_raises() -> None:
    producer = Producer(local_limit=SMALL_COPY_BYTES * 2)
    dl = DeadLetters(producer, "dlq", max_bytes=1_000_000)
    dl.send(bad(b"y" * 500_000), None)  # under max_bytes but over what the producer takes
    assert dl.flush()
    assert len(producer.written[0]["value"]) == SMALL_COPY_BYTES and dl.truncated == 1


def test_topic_refusal_then_fatal_producer_is_rebuilt_and_nothing_is_lost() -> None:
    producers: list[Producer] = []

    def factory() -> Producer:
        producers.append(Producer(refuse_over=1_048_576))
        return producers[-1]

    dl = DeadLetters(factory, "dlq", max_bytes=2_000_000)
    dl.send(bad(b"z" * 1_500_000, 0), None)  # the topic (1 MB) refuses it; the producer goes fatal
    for i in range(40):
        dl.send(bad(b"{small", i + 1, "not_json"), None)
    dl.flush()
    for i in range(40):
        dl.send(bad(b"{later", 100 + i, "not_json"), None)
    assert dl.flush()
    written = [r for p in producers for r in p.written]
    assert len(written) == 81 and dl.sent == 81
    (big,) = [r for r in written if r["headers"].get(TRUNCATED)]
    assert len(big["value"]) == SMALL_COPY_BYTES and int(big["headers"][ORIGINAL_SIZE]) == 1_500_000
    assert dl.rebuilt >= 1 and producers[0].closed


def test_a_broker_outage_pauses_and_recovers() -> None:
    producer = Producer()
    dl = DeadLetters(producer, "dlq")
    producer.down = True
    dl.send(bad(b"{oops", reason="not_json"), None)
    assert dl.flush(timeout_s=0.01) is False and dl.sent == 0 and dl.pending() == 1
    assert "Timeout" in (dl.last_error or "")
    producer.down = False
    assert dl.flush() is True and dl.sent == 1
