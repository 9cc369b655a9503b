"""The dead-letter topic: original bytes as the value, source and reason as headers.

Nothing here raises into the loop. Every send's result is checked at `flush`, which says
whether everything handed over so far is confirmed written; only then may the daemon
checkpoint offsets past those records. A record too large for the producer or the topic goes
as a truncated copy carrying its original size and SHA-256; after any failed send the
producer is rebuilt (an idempotent producer may have gone fatal) and the record sent again,
at least once. Counts are of confirmed writes only.
"""
from __future__ import annotations

import hashlib
import logging
import time
from collections import Counter
from collections.abc import Callable
from dataclasses import dataclass
from typing import Any, Protocol

from pipelines.records import BadRecord

log = logging.getLogger("rollguard.dead_letter")

REASON = "rollguard.reason"
DETAIL = "rollguard.detail"
SOURCE_TOPIC = "rollguard.source.topic"
SOURCE_PARTITION = "rollguard.source.partition"
SOURCE_OFFSET = "rollguard.source.offset"
TRUNCATED = "rollguard.truncated"
ORIGINAL_SIZE = "rollguard.original.size"
ORIGINAL_SHA256 = "rollguard.original.sha256"

#: what a truncated copy keeps when the topic refused the record (or a first truncation)
SMALL_COPY_BYTES = 16 * 1024


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


@dataclass(frozen=True, slots=True)
class Letter:
    """One dead letter as it goes on the wire."""

    reason: str
    value: bytes
    key: bytes | None
    headers: tuple[tuple[str, bytes], ...]

    @property
    def is_truncated(self) -> bool:
        return any(name == TRUNCATED for name, _ in self.headers)

    def truncated(self, limit: int) -> Letter:
        """A copy keeping the first `limit` bytes, with the original's size and SHA-256."""
        if self.is_truncated:  # the size and hash already describe the original
            return Letter(self.reason, self.value[:limit], self.key, self.headers)
        extra = ((TRUNCATED, b"1"), (ORIGINAL_SIZE, str(len(self.value)).encode()),
                 (ORIGINAL_SHA256, hashlib.sha256(self.value).hexdigest().encode()))
        return Letter(self.reason, self.value[:limit], self.key, self.headers + extra)


def letter_for(bad: BadRecord, key: bytes | None, max_bytes: int) -> Letter:
    letter = Letter(bad.reason, bad.raw, key[:1024] if key else key, tuple(headers_for(bad)))
    return letter.truncated(max_bytes) if len(bad.raw) > max_bytes else letter


def _too_large(ex: BaseException | None) -> bool:
    return type(ex).__name__ in ("MessageSizeTooLargeError", "RecordTooLargeError", "RecordBatchTooLargeError")


class DeadLetters:
    """Sends bad records to the dead-letter topic; `flush` confirms them before a checkpoint.

    `producer` is a producer or a factory of one; with a factory, a failed producer is rebuilt.
    """

    def __init__(self, producer: Producer | Callable[[], Producer], topic: str, *, max_bytes: int = 1_000_000,
                 monotonic: Callable[[], float] = time.monotonic) -> None:
        self._factory: Callable[[], Producer] | None = None
        if not hasattr(producer, "send"):
            self._factory = producer  # type: ignore[assignment]
            producer = self._factory()  # type: ignore[misc]
        self.producer: Producer = producer  # type: ignore[assignment]
        self.topic, self.max_bytes, self.monotonic = topic, max_bytes, monotonic
        self._in_flight: list[tuple[Letter, Any]] = []
        self._backlog: list[Letter] = []  # refused or failed: sent again at the next flush
        self.written: Counter[str] = Counter()  # confirmed on the topic, by reason
        self.truncated = 0
        self.rebuilt = 0
        self.last_error: str | None = None

    @property
    def sent(self) -> int:
        return sum(self.written.values())

    def pending(self) -> int:
        """Dead letters handed over but not yet confirmed written."""
        return len(self._in_flight) + len(self._backlog)

    def send(self, bad: BadRecord, key: bytes | None) -> None:
        """Hand one bad record over; never raises (a failure is retried at `flush`)."""
        self._submit(letter_for(bad, key, self.max_bytes))

    def _submit(self, letter: Letter) -> None:
        try:
            future = self.producer.send(self.topic, value=letter.value, key=letter.key, headers=list(letter.headers))
        except Exception as ex:  # noqa: BLE001 - kept and sent again, never lost
            if _too_large(ex) and len(letter.value) > SMALL_COPY_BYTES:
                self._submit(letter.truncated(SMALL_COPY_BYTES))
                return
            self.last_error = f"{type(ex).__name__}: {ex}"
            self._backlog.append(letter)
            return
        self._in_flight.append((letter, future))

    def _confirm(self, letter: Letter) -> None:
        self.written[letter.reason] += 1
        if letter.is_truncated:
            self.truncated += 1

    def _rebuild(self) -> None:
        if self._factory is None:
            return
        log.warning("rebuilding the dead-letter producer after: %s", self.last_error)
        for letter, future in self._in_flight:  # what the old one still holds goes again
            if future.is_done and future.succeeded():
                self._confirm(letter)
            else:
                self._backlog.append(letter)
        self._in_flight = []
        try:
            self.producer.close(timeout=0)
        except Exception:  # noqa: BLE001 - it is being replaced because it is broken
            pass
        try:
            self.producer = self._factory()
            self.rebuilt += 1
        except Exception as ex:  # noqa: BLE001 - the broker may be down; the next flush tries again
            self.last_error = f"cannot rebuild the dead-letter producer: {type(ex).__name__}: {ex}"

    def flush(self, timeout_s: float = 5.0) -> bool:
        """Wait up to `timeout_s`; True when every dead letter so far is confirmed written."""
        deadline = self.monotonic() + timeout_s
        for _ in range(3):
            if self._backlog:
                self._rebuild()
                backlog, self._backlog = self._backlog, []
                for letter in backlog:
                    self._submit(letter)
            if not self._in_flight:
                break
            try:
                self.producer.flush(timeout=max(0.0, deadline - self.monotonic()))
            except Exception as ex:  # noqa: BLE001 - a broker outage pauses, it never kills
                self.last_error = f"{type(ex).__name__}: {ex}"
            waiting: list[tuple[Letter, Any]] = []
            for letter, future in self._in_flight:
                if not future.is_done:
                    waiting.append((letter, future))
                elif future.succeeded():
                    self._confirm(letter)
                else:
                    error = future.exception
                    self.last_error = f"{type(error).__name__}: {error}"
                    too_large = _too_large(error) and len(letter.value) > SMALL_COPY_BYTES
                    self._backlog.append(letter.truncated(SMALL_COPY_BYTES) if too_large else letter)
            self._in_flight = waiting
            if waiting or not self._backlog or self.monotonic() >= deadline:
                break
        return not self._in_flight and not self._backlog

    def close(self) -> None:
        try:
            self.producer.close(timeout=10)
        except Exception as ex:  # noqa: BLE001 - shutting down; no checkpoint went past unconfirmed ones
            log.warning("closing the dead-letter producer: %s", ex)
