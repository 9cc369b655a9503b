"""The dead-letter topic: original bytes as the value, source and reason as headers."""
from __future__ import annotations

from typing import Any, Protocol

from pipelines.records import BadRecord

REASON = "rollguard.reason"
DETAIL = "rollguard.detail"
SOURCE_TOPIC = "rollguard.source.topic"
SOURCE_PARTITION = "rollguard.source.partition"
SOURCE_OFFSET = "rollguard.source.offset"


class Producer(Protocol):
    def send(self, topic: str, value: bytes | None = None, key: bytes | None = None, headers: list[tuple[str, bytes]] | None = None) -> Any: ...

    def flush(self, timeout: float | None = None) -> None: ...

    def close(self, timeout: float | None = None) -> None: ...


def headers_for(bad: BadRecord) -> list[tuple[str, bytes]]:
    headers = [(REASON, bad.reason.encode()), (DETAIL, bad.detail.encode("utf-8", "replace")[:1000])]
    if bad.source is not None:
        headers += [
            (SOURCE_TOPIC, bad.source.topic.encode()),
            (SOURCE_PARTITION, str(bad.source.partition).encode()),
            (SOURCE_OFFSET, str(bad.source.offset).encode()),
        ]
    return headers


class DeadLetters:
    """Sends bad records to the dead-letter topic; `flush` before a checkpoint so none is lost."""

    def __init__(self, producer: Producer, topic: str) -> None:
        self.producer, self.topic = producer, topic
        self.sent = 0

    def send(self, bad: BadRecord, key: bytes | None) -> None:
        self.producer.send(self.topic, value=bad.raw, key=key, headers=headers_for(bad))
        self.sent += 1

    def flush(self) -> None:
        self.producer.flush(timeout=30)

    def close(self) -> None:
        self.producer.close(timeout=10)
