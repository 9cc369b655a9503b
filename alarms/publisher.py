"""CloudWatch publisher: a bounded buffer of Datums, batched PutMetricData, retries.

Side effects live here and nowhere else in the metric path. The consumer
thread calls :meth:`Publisher.enqueue`; a flusher (the run loop, or the
publisher's own daemon thread) calls :meth:`Publisher.flush`. The buffer lock
is never held across a network call, so enqueue never waits on CloudWatch.

Delivery: a datum leaves the buffer only when CloudWatch acknowledged it, or
when it is dropped and counted (too old / too far in the future for
CloudWatch, invalid, buffer overflow, or rejected by CloudWatch with a
non-retryable 4xx). A rejected request is bisected until the datums CloudWatch
refuses are found: only those are dropped (counted, logged, listed in
``stats().rejections``), every other datum of the request is sent. An
ambiguous failure (a read timeout after CloudWatch processed the request) is
retried and may then be counted twice; CloudWatch has no idempotency token to
prevent that.

Counts of datums are counts of MetricData entries: a distribution with more
than 150 values is split on enqueue and counts once per part.
"""
from __future__ import annotations

import logging
import random
import threading
import time
from collections import deque
from collections.abc import Callable, Iterable, Sequence
from dataclasses import dataclass, field, replace
from typing import Any, Protocol

from alarms.aws_clients import make_cloudwatch_client  # noqa: F401 - re-exported: service.daemon imports it here
from alarms.metric_data import REQUEST_ENVELOPE_BYTES, estimate_entry_bytes, split_datum
from alarms.publish_errors import classify_error, describe_error
from alarms.publish_results import EnqueueResult, FlushResult, PublisherStats
from pipelines import cloudwatch_rules as rules
from pipelines.clock import Clock
from pipelines.datum import Datum

Entry = dict[str, Any]
log = logging.getLogger("rollguard.publisher")


class MetricsClient(Protocol):
    """The one CloudWatch call the publisher makes (a boto3 ``cloudwatch`` client satisfies it)."""

    def put_metric_data(self, *, Namespace: str, MetricData: list[Entry]) -> object:
        """Publish entries; raise on failure (botocore ``ClientError`` / ``BotoCoreError``)."""
        ...


@dataclass(slots=True)
class _Batch:
    batch_id: str
    items: deque[tuple[Datum, int]] = field(default_factory=deque)  # (datum, estimated bytes)


@dataclass(slots=True)
class _Counters:
    sent_requests: int = 0
    sent_datums: int = 0
    failures: int = 0
    retries: int = 0
    rejected: int = 0
    rejected_requests: int = 0
    dropped_too_old: int = 0
    dropped_too_new: int = 0
    dropped_invalid: int = 0
    dropped_overflow: int = 0
    last_success_ms: int | None = None
    last_error: str | None = None
    last_error_ms: int | None = None


# -- the publisher ------------------------------------------------------------------------


class Publisher:
    """A bounded FIFO of datum batches, flushed to CloudWatch in order.

    Thread model: :meth:`enqueue`, :meth:`pending`, :meth:`stats`
    may be called from any thread and never wait on the network; flushes are
    serialised among themselves (one flusher at a time).

    Retry policy per request: up to ``max_attempts`` calls; before attempt ``k+1``
    sleep ``rng() * min(max_delay_s, base_delay_s * 2**k)`` seconds ("full jitter").
    A flush gives up on a request when attempts run out, when the next sleep
    would pass ``deadline_ms``, or on a "hold" error; the request's datums go back
    to the front of the buffer and the flush returns, so order is kept.

    Timestamps: a datum is dropped (counted) when it is older than
    ``max_age_ms - age_margin_ms`` or more than ``max_future_ms`` ahead of
    ``clock.now_ms()``, checked on enqueue, at the start of every flush and right
    before each request. The margin absorbs the time a flush can spend retrying;
    ``max_future_ms`` (``cloudwatch_rules.MAX_FUTURE_MS``) is the parser's own
    limit, already clear of CloudWatch's by the clock skew SigV4 allows, and a
    datum only falls behind it as time passes: what the parser accepted is sent.

    Rejections: a request CloudWatch refuses for its data (a 4xx) is split in
    halves, recursively, until each refused datum is alone; those are dropped,
    the rest is sent (about ``2 log2(n)`` more requests per bad datum).
    """

    def __init__(
        self,
        client: MetricsClient,
        namespace: str,
        clock: Clock,
        *,
        sleep: Callable[[float], object] = time.sleep,
        rng: Callable[[], float] = random.random,
        max_attempts: int = 6,
        base_delay_s: float = 0.2,
        max_delay_s: float = 20.0,
        max_age_ms: int = rules.MAX_DATUM_AGE_MS,
        max_future_ms: int = rules.MAX_FUTURE_MS,
        age_margin_ms: int = 15 * rules.MINUTE_MS,
        max_buffered_datums: int = 250_000,
        max_metrics_per_request: int = rules.MAX_DATUMS_PER_REQUEST,
        max_request_bytes: int = rules.MAX_REQUEST_BYTES,
        max_rejections_kept: int = 100,
        on_sent: Callable[[list[str]], object] | None = None,
        on_refused: Callable[[Datum, str], object] | None = None,
    ) -> None:
        if not namespace or len(namespace) > rules.MAX_NAME:
            raise ValueError(f"namespace must be 1..{rules.MAX_NAME} chars, got {namespace!r}")
        if max_attempts < 1:
            raise ValueError(f"max_attempts must be >= 1, got {max_attempts}")
        if base_delay_s < 0 or max_delay_s < 0:
            raise ValueError(f"delays must be >= 0, got base_delay_s={base_delay_s}, max_delay_s={max_delay_s}")
        if max_buffered_datums < 1:
            raise ValueError(f"max_buffered_datums must be >= 1, got {max_buffered_datums}")
        if not 0 <= age_margin_ms < max_age_ms:
            raise ValueError(f"age_margin_ms must be in [0, max_age_ms), got {age_margin_ms}")
        if max_future_ms < 0:
            raise ValueError(f"max_future_ms must be >= 0, got {max_future_ms}")
        if max_metrics_per_request < 1 or max_request_bytes <= REQUEST_ENVELOPE_BYTES:
            raise ValueError(
                f"need max_metrics_per_request >= 1 and max_request_bytes > {REQUEST_ENVELOPE_BYTES}"
            )
        self._client = client
        # told the ids of batches whose every datum CloudWatch acknowledged (called from the
        # flushing thread, outside the lock), so a checkpoint ledger can record them at once
        self._on_sent = on_sent
        # told each datum CloudWatch refused for good, with why (same thread, outside the lock),
        # so the daemon can dead-letter it rather than only count it
        self._on_refused = on_refused
        self.namespace = namespace
        self._clock = clock
        self._sleep = sleep
        self._rng = rng
        self.max_attempts = max_attempts
        self.base_delay_s = base_delay_s
        self.max_delay_s = max_delay_s
        self.max_age_ms = max_age_ms
        self.max_future_ms = max_future_ms
        self.age_margin_ms = age_margin_ms
        self.max_buffered_datums = max_buffered_datums
        self.max_metrics_per_request = max_metrics_per_request
        self.max_request_bytes = max_request_bytes

        self._lock = threading.Lock()  # guards everything below; never held across I/O
        self._flush_lock = threading.Lock()  # one flusher at a time
        self._buffer: deque[_Batch] = deque()
        self._in_flight: list[_Batch] = []  # taken by the flusher, not yet acknowledged
        self._buffered = 0  # datums in _buffer + _in_flight
        self._counters = _Counters()
        self._rejections: deque[tuple[tuple[str, ...], str]] = deque(maxlen=max_rejections_kept)
        self._stop = threading.Event()
        self._wake = threading.Event()  # flush now, not at the next interval
        self._thread: threading.Thread | None = None

    # -- buffer ---------------------------------------------------------------------------

    def _age_limits(self, now_ms: int) -> tuple[int, int]:
        """Accepted ``[oldest, newest]`` timestamps at ``now_ms``."""
        return now_ms - self.max_age_ms + self.age_margin_ms, now_ms + self.max_future_ms

    def _prepare(self, batch_id: str, datums: Iterable[Datum]) -> tuple[_Batch, EnqueueResult, str | None]:
        """Validate, split and size outside the lock; the batch holds only sendable datums."""
        oldest, newest = self._age_limits(self._clock.now_ms())
        batch = _Batch(batch_id)
        too_old = too_new = invalid = 0
        first_problem: str | None = None
        for datum in datums:
            problem = rules.datum_problem(datum)
            if problem is not None:
                parts = split_datum(datum)
                invalid += len(parts)
                first_problem = first_problem or f"batch {batch_id}: dropped invalid datum {datum.name}: {problem}"
                continue
            for part in split_datum(datum):
                if part.timestamp_ms < oldest:
                    too_old += 1
                elif part.timestamp_ms > newest:
                    too_new += 1
                else:
                    batch.items.append((part, estimate_entry_bytes(part.to_cloudwatch())))
        result = EnqueueResult(len(batch.items), too_old, too_new, invalid)
        return batch, result, first_problem

    def enqueue(self, batch_id: str, datums: Iterable[Datum]) -> EnqueueResult:
        """Buffer ``datums`` as batch ``batch_id`` behind everything already buffered.

        Never blocks on the network. Invalid datums and timestamps CloudWatch
        would refuse are dropped and counted here; if the buffer then holds more
        than ``max_buffered_datums``, the oldest buffered datums are dropped
        (``dropped_overflow``). Datums a flush is sending are never dropped.
        """
        batch, result, problem = self._prepare(batch_id, datums)
        with self._lock:
            self._count_prepared(result, problem)
            if batch.items:
                self._buffer.append(batch)
                self._buffered += len(batch.items)
            overflow = self._enforce_cap()
        return replace(result, dropped_overflow=overflow) if overflow else result

    def _count_prepared(self, result: EnqueueResult, problem: str | None) -> None:
        c = self._counters
        c.dropped_too_old += result.dropped_too_old
        c.dropped_too_new += result.dropped_too_new
        c.dropped_invalid += result.dropped_invalid
        if problem is not None:
            self._record_error(problem)

    def _enforce_cap(self) -> int:
        """Drop the oldest buffered (not in-flight) datums until within the cap. Lock held."""
        dropped = 0
        while self._buffered > self.max_buffered_datums and self._buffer:
            head = self._buffer[0]
            head.items.popleft()
            self._buffered -= 1
            dropped += 1
            if not head.items:
                self._buffer.popleft()
        if dropped:
            self._counters.dropped_overflow += dropped
            self._record_error(f"buffer over {self.max_buffered_datums} datums: dropped the {dropped} oldest")
        return dropped

    def _prune_too_old(self, now_ms: int) -> int:
        """Drop buffered datums CloudWatch would refuse by now. Lock held."""
        oldest, newest = self._age_limits(now_ms)
        dropped = 0
        for batch in self._buffer:
            if any(not oldest <= d.timestamp_ms <= newest for d, _ in batch.items):
                keep = deque(item for item in batch.items if oldest <= item[0].timestamp_ms <= newest)
                dropped += len(batch.items) - len(keep)
                batch.items = keep
        if dropped:
            self._buffer = deque(b for b in self._buffer if b.items)
            self._buffered -= dropped
            # Only age can push a valid, once-accepted datum out of range while buffered.
            self._counters.dropped_too_old += dropped
        return dropped

    def _record_error(self, message: str) -> None:
        self._counters.last_error = message
        self._counters.last_error_ms = self._clock.now_ms()

    def pending(self) -> list[str]:
        """Ids of batches with unsent datums, oldest first (including any being sent)."""
        with self._lock:
            return self._pending_ids()

    def _pending_ids(self) -> list[str]:
        ids: list[str] = []
        for batch in (*self._in_flight, *self._buffer):
            # A batch split across a request boundary is one batch, not two.
            if not ids or ids[-1] != batch.batch_id:
                ids.append(batch.batch_id)
        return ids

    def discard(self, batch_ids: Iterable[str]) -> int:
        """Forget buffered batches (another instance now owns them); returns datums dropped.

        Datums a flush is sending right now are not recalled.
        """
        gone = set(batch_ids)
        with self._lock:
            kept: deque[_Batch] = deque()
            dropped = 0
            for batch in self._buffer:
                if batch.batch_id in gone:
                    dropped += len(batch.items)
                else:
                    kept.append(batch)
            self._buffer = kept
            self._buffered -= dropped
        return dropped

    def buffered_datums(self) -> int:
        """Datums not yet acknowledged by CloudWatch (buffered or being sent)."""
        with self._lock:
            return self._buffered

    def stats(self) -> PublisherStats:
        """A consistent copy of the counters."""
        with self._lock:
            c = self._counters
            return PublisherStats(
                sent_requests=c.sent_requests,
                sent_datums=c.sent_datums,
                failures=c.failures,
                retries=c.retries,
                rejected=c.rejected,
                rejected_requests=c.rejected_requests,
                dropped_too_old=c.dropped_too_old,
                dropped_too_new=c.dropped_too_new,
                dropped_invalid=c.dropped_invalid,
                dropped_overflow=c.dropped_overflow,
                buffered_datums=self._buffered,
                buffered_batches=len(self._pending_ids()),
                last_success_ms=c.last_success_ms,
                last_error=c.last_error,
                last_error_ms=c.last_error_ms,
                rejections=tuple(self._rejections),
            )

    # -- flushing -------------------------------------------------------------------------

    def _take_request(self) -> list[_Batch]:
        """Move the next request's worth of datums from the buffer to in-flight. Lock held."""
        oldest, newest = self._age_limits(self._clock.now_ms())
        budget = self.max_request_bytes - REQUEST_ENVELOPE_BYTES
        taken: list[_Batch] = []
        count = used = 0
        while self._buffer and count < self.max_metrics_per_request:
            head = self._buffer[0]
            segment = _Batch(head.batch_id)
            while head.items and count < self.max_metrics_per_request:
                datum, size = head.items[0]
                if count and used + size > budget:
                    break
                head.items.popleft()
                if not oldest <= datum.timestamp_ms <= newest:
                    # Aged out while buffered: never send what CloudWatch would refuse.
                    self._buffered -= 1
                    self._counters.dropped_too_old += 1
                    continue
                segment.items.append((datum, size))
                count += 1
                used += size
            if segment.items:
                taken.append(segment)
            if head.items:
                break  # the request is full
            self._buffer.popleft()
        self._in_flight = taken
        return taken

    def _put_back(self) -> None:
        """Return in-flight datums to the front of the buffer, merging a split batch. Lock held."""
        for segment in reversed(self._in_flight):
            if self._buffer and self._buffer[0].batch_id == segment.batch_id:
                self._buffer[0].items.extendleft(reversed(segment.items))
            else:
                self._buffer.appendleft(segment)
        self._in_flight = []

    def backoff_s(self, attempt: int) -> float:
        """Sleep before re-attempt ``attempt + 1`` (``attempt`` counts failed calls from 0): full jitter."""
        cap = min(self.max_delay_s, self.base_delay_s * 2.0**attempt)
        return self._rng() * cap

    def flush(self, deadline_ms: int | None = None) -> FlushResult:
        """Send buffered datums, oldest first, until the buffer is empty or this flush gives up.

        Blocks for network calls and backoff sleeps (never past ``deadline_ms``,
        in ``clock`` time, when given), never while holding the buffer lock.
        Whatever is not acknowledged stays buffered for the next flush.
        """
        return self._flush(deadline_ms, abort=None)

    def _flush(self, deadline_ms: int | None, abort: threading.Event | None) -> FlushResult:
        sent_requests = sent_datums = retries = failures = rejected = 0
        error: str | None = None
        with self._flush_lock:
            with self._lock:
                dropped_before = self._counters.dropped_too_old
                self._prune_too_old(self._clock.now_ms())
            while True:
                if deadline_ms is not None and self._clock.now_ms() >= deadline_ms:
                    error = error or "flush deadline reached"
                    break
                with self._lock:
                    segments = self._take_request()
                if not segments:
                    break
                entries = [d.to_cloudwatch() for s in segments for d, _ in s.items]
                batch_ids = tuple(dict.fromkeys(s.batch_id for s in segments))
                try:
                    outcome, n_failures, n_retries, exc = self._send(entries, deadline_ms, abort)
                except BaseException:
                    # An injected sleep or rng failed (or KeyboardInterrupt): the datums are unsent, not lost.
                    with self._lock:
                        self._put_back()
                    raise
                failures += n_failures
                retries += n_retries
                now = self._clock.now_ms()
                done: list[str] = []
                with self._lock:
                    c = self._counters
                    c.failures += n_failures
                    c.retries += n_retries
                    if outcome == "sent":
                        self._buffered -= len(entries)
                        self._in_flight = []
                        c.sent_requests += 1
                        c.sent_datums += len(entries)
                        c.last_success_ms = now
                        sent_requests += 1
                        sent_datums += len(entries)
                        still = set(self._pending_ids())
                        done = [b for b in batch_ids if b not in still]
                if outcome == "sent":
                    if done and self._on_sent is not None:
                        self._on_sent(done)
                    continue
                if outcome == "reject":
                    try:
                        iso = self._isolate(entries, deadline_ms, abort, exc)
                    except BaseException:
                        with self._lock:
                            self._put_back()
                        raise
                    failures += iso.failures
                    retries += iso.retries
                    with self._lock:
                        n_rejected, n_sent, done, refused = self._settle(segments, iso)
                    if self._on_refused is not None:
                        for datum, why in refused:
                            self._on_refused(datum, why)
                    rejected += n_rejected
                    sent_datums += n_sent
                    sent_requests += iso.sent_requests
                    if done and self._on_sent is not None:
                        self._on_sent(done)
                    if iso.stopped is None:
                        continue
                    outcome, exc = iso.stopped
                with self._lock:
                    message = describe_error(exc) if exc is not None else outcome
                    self._put_back()
                    error = f"gave up ({outcome}) on {_ids_text(batch_ids)}: {message}"
                    self._record_error(error)
                    break
            with self._lock:
                remaining = self._buffered
                dropped_too_old = self._counters.dropped_too_old - dropped_before
        return FlushResult(
            sent_requests=sent_requests,
            sent_datums=sent_datums,
            retries=retries,
            failures=failures,
            rejected=rejected,
            dropped_too_old=dropped_too_old,
            remaining=remaining,
            complete=remaining == 0,
            error=None if remaining == 0 else error,
        )

    def _isolate(
        self, entries: list[Entry], deadline_ms: int | None, abort: threading.Event | None, refusal: BaseException | None
    ) -> "_Isolation":
        """After CloudWatch refused ``entries`` (with ``refusal``) for their data: send halves,
        splitting each refused part again, until every refused entry is alone. In order, so a
        stop (a hold, the deadline, retries exhausted) leaves the unsent entries as one tail."""
        iso = _Isolation([None] * len(entries))
        if len(entries) == 1:
            iso.status[0] = describe_error(refusal) if refusal is not None else "reject"
            return iso
        mid = len(entries) // 2
        todo = [(mid, len(entries)), (0, mid)]  # a stack: the left half first
        while todo:
            lo, hi = todo.pop()
            outcome, n_failures, n_retries, exc = self._send(entries[lo:hi], deadline_ms, abort)
            iso.failures += n_failures
            iso.retries += n_retries
            if outcome == "sent":
                iso.status[lo:hi] = [True] * (hi - lo)
                iso.sent_requests += 1
            elif outcome == "reject" and hi - lo == 1:
                iso.status[lo] = describe_error(exc) if exc is not None else outcome
            elif outcome == "reject":
                mid = (lo + hi) // 2
                todo += [(mid, hi), (lo, mid)]
            else:
                iso.stopped = (outcome, exc)
                break
        return iso

    def _settle(self, segments: list[_Batch], iso: "_Isolation") -> tuple[int, int, list[str], list[tuple[Datum, str]]]:
        """Account for an isolated request: drop the refused datums (counted, logged, kept in
        the rejections), forget the sent ones, keep the rest in flight for a put-back. Lock held.
        Returns (rejected, sent, ids of batches now wholly done, the refused datums and why)."""
        c = self._counters
        now = self._clock.now_ms()
        i = n_rejected = n_sent = 0
        refused: list[tuple[Datum, str]] = []
        for segment in segments:
            kept: deque[tuple[Datum, int]] = deque()
            for item in segment.items:
                status = iso.status[i]
                i += 1
                if status is None:
                    kept.append(item)
                elif status is True:
                    n_sent += 1
                else:
                    n_rejected += 1
                    refused.append((item[0], str(status)))
                    what = f"batch {segment.batch_id}: CloudWatch refused {_describe_datum(item[0])}: {status}"
                    self._rejections.append(((segment.batch_id,), what))
                    self._record_error(what)
                    log.warning("%s; dropped it and sent the rest of its request", what)
            segment.items = kept
        self._in_flight = [s for s in segments if s.items]
        self._buffered -= n_sent + n_rejected
        c.failures += iso.failures
        c.retries += iso.retries
        c.rejected += n_rejected
        c.rejected_requests += 1
        c.sent_requests += iso.sent_requests
        c.sent_datums += n_sent
        if iso.sent_requests:
            c.last_success_ms = now
        still = set(self._pending_ids())
        done = [b for b in dict.fromkeys(s.batch_id for s in segments) if b not in still]
        return n_rejected, n_sent, done, refused

    def _send(
        self, entries: list[Entry], deadline_ms: int | None, abort: threading.Event | None
    ) -> tuple[str, int, int, BaseException | None]:
        """Call PutMetricData with retries. Returns (outcome, failures, retries, last error).

        Outcome is "sent", "reject", "hold" (a hold error), "exhausted" (attempts
        used up), "deadline" (the next sleep would pass it) or "aborted" (stop()).
        """
        failures = retries = 0
        for attempt in range(self.max_attempts):
            try:
                self._client.put_metric_data(Namespace=self.namespace, MetricData=entries)
                return "sent", failures, retries, None
            except Exception as exc:  # noqa: BLE001 - every failure is classified, none escapes
                failures += 1
                kind = classify_error(exc)
                if kind != "retry":
                    return kind, failures, retries, exc
                if attempt + 1 >= self.max_attempts:
                    return "exhausted", failures, retries, exc
                delay = self.backoff_s(attempt)
                if deadline_ms is not None and self._clock.now_ms() + delay * 1000.0 > deadline_ms:
                    return "deadline", failures, retries, exc
                if abort is not None and abort.is_set():
                    return "aborted", failures, retries, exc
                retries += 1
                self._sleep(delay)
        raise AssertionError("unreachable: the loop returns on its last attempt")

    # -- background -----------------------------------------------------------------------

    def wake(self) -> None:
        """Have the background thread flush now rather than at its next interval (the daemon
        calls it once a tick's checkpoint released datums, so they do not wait up to an interval)."""
        self._wake.set()

    def start_background(self, interval_s: float) -> None:
        """Flush every ``interval_s`` seconds in a daemon thread, and on :meth:`wake`; each flush
        ends by the next interval."""
        if interval_s <= 0:
            raise ValueError(f"interval_s must be > 0, got {interval_s}")
        if self._thread is not None and self._thread.is_alive():
            raise RuntimeError("the publisher's background thread is already running")
        self._stop.clear()
        self._wake.clear()
        self._thread = threading.Thread(
            target=self._run, args=(interval_s,), name="rollguard-publisher", daemon=True
        )
        self._thread.start()

    def _run(self, interval_s: float) -> None:
        while True:
            self._wake.wait(interval_s)
            self._wake.clear()
            if self._stop.is_set():
                return
            try:
                self._flush(self._clock.now_ms() + int(interval_s * 1000), abort=self._stop)
            except Exception as exc:  # noqa: BLE001 - the flusher thread must outlive any bug
                with self._lock:
                    self._record_error(f"background flush crashed: {describe_error(exc)}")

    def stop(self, timeout_s: float | None = 30.0) -> bool:
        """Stop the background thread; True when it has ended.

        A flush in progress stops retrying but finishes its current call or sleep
        (at most one request timeout or ``max_delay_s``). Buffered data stays:
        call :meth:`flush` for a final drain.
        """
        self._stop.set()
        self._wake.set()
        thread = self._thread
        if thread is None:
            return True
        thread.join(timeout_s)
        if thread.is_alive():
            return False
        self._thread = None
        return True


@dataclass(slots=True)
class _Isolation:
    """What bisecting a refused request did: per entry None (unsent), True (sent) or CloudWatch's refusal."""

    status: list[str | bool | None]
    failures: int = 0
    retries: int = 0
    sent_requests: int = 0
    stopped: tuple[str, BaseException | None] | None = None  # (outcome, error) that ended it early


def _describe_datum(datum: Datum) -> str:
    dims = ",".join(f"{k}={v}" for k, v in datum.dimensions)
    return f"{datum.name}{{{dims}}}@{datum.timestamp_ms}"[:300]


def _ids_text(batch_ids: Sequence[str]) -> str:
    if len(batch_ids) <= 3:
        return f"batch(es) {', '.join(batch_ids)}"
    return f"{len(batch_ids)} batches {batch_ids[0]} .. {batch_ids[-1]}"
