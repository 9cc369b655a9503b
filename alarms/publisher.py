"""CloudWatch publisher: a bounded buffer of Datums, batched PutMetricData, retries.

Side effects live here and nowhere else in the metric path. The consumer
thread calls :meth:`Publisher.enqueue`; a flusher (the run loop, or the
publisher's own daemon thread) calls :meth:`Publisher.flush`. The buffer lock
is never held across a network call, so enqueue never waits on CloudWatch.

Delivery: a datum leaves the buffer only when CloudWatch acknowledged it, or
when it is dropped and counted (too old / too far in the future for
CloudWatch, invalid, buffer overflow, or rejected by CloudWatch with a
non-retryable 4xx). An ambiguous failure (a read timeout after CloudWatch
processed the request) is retried and may then be counted twice; CloudWatch
has no idempotency token to prevent that.

Counts of datums are counts of MetricData entries: a distribution with more
than 150 values is split on enqueue and counts once per part.
"""
from __future__ import annotations

import json
import math
import random
import threading
import time
from collections import deque
from collections.abc import Callable, Iterable, Mapping, Sequence
from dataclasses import dataclass, field, replace
from typing import Any, Literal, Protocol

from botocore import exceptions as botocore_exceptions

from pipelines.clock import Clock
from pipelines.datum import Datum
from pipelines.latency import MAX_DISTRIBUTION_VALUES, split_distribution

MINUTE_MS = 60_000
HOUR_MS = 60 * MINUTE_MS
DAY_MS = 24 * HOUR_MS
#: CloudWatch accepts timestamps up to two weeks in the past and two hours in the future.
CLOUDWATCH_MAX_AGE_MS = 14 * DAY_MS
CLOUDWATCH_MAX_FUTURE_MS = 2 * HOUR_MS
#: PutMetricData limits (API reference): 1000 metrics and 1 MB per request.
MAX_METRICS_PER_REQUEST = 1000
MAX_REQUEST_BYTES = 1_000_000
#: Room for ``{"Namespace": "...", "MetricData": [...]}`` around the entries (namespace <= 255 chars).
REQUEST_ENVELOPE_BYTES = 1024
#: Longest JSON rendering of a double (e.g. ``-2.2250738585072014e-308``), also > 9 bytes of CBOR.
MAX_NUMBER_BYTES = 24
#: Documented range of a CloudWatch value.
MAX_ABS_VALUE = 2.0**360

STANDARD_UNITS = frozenset(
    {
        "Seconds", "Microseconds", "Milliseconds", "Bytes", "Kilobytes", "Megabytes", "Gigabytes",
        "Terabytes", "Bits", "Kilobits", "Megabits", "Gigabits", "Terabits", "Percent", "Count",
        "Bytes/Second", "Kilobytes/Second", "Megabytes/Second", "Gigabytes/Second", "Terabytes/Second",
        "Bits/Second", "Kilobits/Second", "Megabits/Second", "Gigabits/Second", "Terabits/Second",
        "Count/Second", "None",
    }
)

Entry = dict[str, Any]
ErrorKind = Literal["retry", "hold", "reject"]


class MetricsClient(Protocol):
    """The one CloudWatch call the publisher makes (a boto3 ``cloudwatch`` client satisfies it)."""

    def put_metric_data(self, *, Namespace: str, MetricData: list[Entry]) -> object:
        """Publish entries; raise on failure (botocore ``ClientError`` / ``BotoCoreError``)."""
        ...


def make_cloudwatch_client(
    endpoint_url: str | None = None,
    *,
    region_name: str | None = None,
    compress_requests: bool | None = None,
    connect_timeout_s: float = 5.0,
    read_timeout_s: float = 15.0,
) -> MetricsClient:
    """A boto3 CloudWatch client for production, pointed at ``endpoint_url`` when given.

    botocore's own retries are off (one attempt): the :class:`Publisher` retries
    with its own backoff and deadline, and nested retry loops would multiply.
    Gzip request compression defaults to on for AWS and off when an
    ``endpoint_url`` is given, because moto's server (5.2) decompresses the body
    twice and answers every compressed request (> 10 KiB) with a 500.
    """
    from alarms.aws_clients import client as aws_client

    if compress_requests is None:
        compress_requests = endpoint_url is None
    client: MetricsClient = aws_client(
        "cloudwatch", endpoint_url=endpoint_url, region=region_name,
        retries={"total_max_attempts": 1, "mode": "standard"},
        disable_request_compression=not compress_requests,
        connect_timeout=connect_timeout_s,
        read_timeout=read_timeout_s,
    )
    return client


# -- datums to requests -------------------------------------------------------------------


def validate_datum(datum: Datum) -> str | None:
    """Why CloudWatch would reject ``datum`` (timestamps aside), or ``None`` if it is fine.

    Checked up front so one bad datum cannot get a whole 1000-entry request rejected.
    """
    if not 1 <= len(datum.name) <= 255:
        return f"metric name must be 1..255 chars, got {len(datum.name)}"
    if len(datum.dimensions) > 30:
        return f"at most 30 dimensions, got {len(datum.dimensions)}"
    for key, value in datum.dimensions:
        if not 1 <= len(key) <= 255 or not 1 <= len(value) <= 1024:
            return f"dimension {key!r}={value!r}: name must be 1..255 chars and value 1..1024"
    if datum.unit not in STANDARD_UNITS:
        return f"unit {datum.unit!r} is not a CloudWatch StandardUnit"
    if len(datum.values) != len(datum.counts):
        return f"values and counts differ in length ({len(datum.values)} vs {len(datum.counts)})"
    if datum.values:
        for v in datum.values:
            if not (math.isfinite(v) and abs(v) <= MAX_ABS_VALUE):
                return f"distribution value {v!r} is not a finite number within ±2^360"
        for c in datum.counts:
            if not (math.isfinite(c) and 0 <= c <= MAX_ABS_VALUE):
                return f"distribution count {c!r} is not a finite number >= 0"
    elif datum.value is not None and not (math.isfinite(datum.value) and abs(datum.value) <= MAX_ABS_VALUE):
        return f"value {datum.value!r} is not a finite number within ±2^360"
    return None


def split_datum(datum: Datum, max_values: int = MAX_DISTRIBUTION_VALUES) -> list[Datum]:
    """``datum`` as datums of at most ``max_values`` distinct values each (same name, dimensions, time).

    CloudWatch aggregates datums with equal name, dimensions and timestamp, so the split is exact.
    """
    if len(datum.values) <= max_values:
        return [datum]
    return [replace(datum, values=v, counts=c) for v, c in split_distribution(datum.values, datum.counts, max_values)]


def estimate_entry_bytes(entry: Mapping[str, Any]) -> int:
    """An upper bound on the bytes ``entry`` adds to a PutMetricData body.

    Its JSON size (botocore's separators) plus ``MAX_NUMBER_BYTES`` per number, so it holds
    however the SDK renders doubles (botocore sends CloudWatch awsJson1.0 today;
    rpcv2-CBOR is smaller still), plus the separator between entries.
    """
    numbers = len(entry.get("Values", ())) + len(entry.get("Counts", ())) + 1  # + Timestamp
    if "Value" in entry:
        numbers += 1
    return len(json.dumps(entry)) + MAX_NUMBER_BYTES * numbers + 2


def _pack(
    sizes: Sequence[int], max_metrics: int, max_bytes: int
) -> list[tuple[int, int]]:
    """Greedy ``[start, end)`` index ranges whose entry count and byte sum stay within limits."""
    budget = max_bytes - REQUEST_ENVELOPE_BYTES
    ranges: list[tuple[int, int]] = []
    start, used = 0, 0
    for i, size in enumerate(sizes):
        # An entry bigger than the whole budget still goes out, alone: CloudWatch
        # then rejects just that one instead of the publisher looping forever.
        if i > start and (i - start >= max_metrics or used + size > budget):
            ranges.append((start, i))
            start, used = i, 0
        used += size
    if start < len(sizes):
        ranges.append((start, len(sizes)))
    return ranges


def batch_datums(
    datums: Sequence[Datum], max_metrics: int = MAX_METRICS_PER_REQUEST, max_bytes: int = MAX_REQUEST_BYTES
) -> list[list[Entry]]:
    """PutMetricData ``MetricData`` lists, in input order, each within the request limits.

    At most ``max_metrics`` entries and (by :func:`estimate_entry_bytes`, with
    ``REQUEST_ENVELOPE_BYTES`` reserved) ``max_bytes`` per list; distributions with
    more than 150 values become several entries. No validation: see :func:`validate_datum`.
    """
    if max_metrics < 1 or max_bytes <= REQUEST_ENVELOPE_BYTES:
        raise ValueError(
            f"need max_metrics >= 1 and max_bytes > {REQUEST_ENVELOPE_BYTES}, got {max_metrics} and {max_bytes}"
        )
    entries = [part.to_cloudwatch() for d in datums for part in split_datum(d)]
    ranges = _pack([estimate_entry_bytes(e) for e in entries], max_metrics, max_bytes)
    return [entries[a:b] for a, b in ranges]


# -- errors -------------------------------------------------------------------------------

_RETRY_CODES = frozenset(
    {
        "Throttling", "ThrottlingException", "ThrottledException", "RequestThrottled",
        "RequestThrottledException", "TooManyRequestsException", "RequestLimitExceeded",
        "SlowDown", "PriorRequestNotComplete", "RequestTimeout", "RequestTimeoutException",
        "InternalFailure", "InternalError", "InternalServiceError", "InternalServiceFault",
        "ServiceUnavailable", "ServiceUnavailableException",
    }
)
# Not about the data: dropping it would not help and waiting a few seconds neither.
_HOLD_CODES = frozenset(
    {
        "AccessDenied", "AccessDeniedException", "AuthFailure", "ExpiredToken", "ExpiredTokenException",
        "IncompleteSignature", "InvalidClientTokenId", "InvalidSignatureException",
        "MissingAuthenticationToken", "OptInRequired", "RequestExpired", "RequestTimeTooSkewed",
        "SignatureDoesNotMatch", "UnrecognizedClientException",
    }
)


def classify_error(exc: BaseException) -> ErrorKind:
    """What a failed PutMetricData means for the data it carried.

    - ``"retry"``: transient (throttling, HTTP 429, 5xx, connection errors): back off and retry.
    - ``"hold"``: not about the data and not quickly transient (credentials,
      permissions, clock skew, unknown errors): stop this flush, keep the data.
    - ``"reject"``: CloudWatch refused this request's data (e.g. ``InvalidParameterValue``,
      other 4xx): retrying can never succeed, so the request is dropped and counted.
    """
    if isinstance(exc, botocore_exceptions.ClientError):
        error = exc.response.get("Error", {})
        code = str(error.get("Code", ""))
        status = int(exc.response.get("ResponseMetadata", {}).get("HTTPStatusCode", 0) or 0)
        if code in _RETRY_CODES or status == 429 or status >= 500:
            return "retry"
        if code in _HOLD_CODES or status in (401, 403):
            return "hold"
        if 400 <= status < 500:
            return "reject"
        return "hold"
    if isinstance(exc, (botocore_exceptions.HTTPClientError, botocore_exceptions.ConnectionError)):
        return "retry"
    if isinstance(exc, botocore_exceptions.ParamValidationError):
        return "reject"  # client-side validation of this very request
    if isinstance(exc, (ConnectionError, TimeoutError)):
        return "retry"
    return "hold"


def describe_error(exc: BaseException) -> str:
    """One line for people: the error code and message."""
    return f"{type(exc).__name__}: {exc}".replace("\n", " ")[:500]


# -- results ------------------------------------------------------------------------------


@dataclass(frozen=True, slots=True)
class EnqueueResult:
    """What :meth:`Publisher.enqueue` did with one batch (datums counted as MetricData entries)."""

    accepted: int
    dropped_too_old: int = 0
    dropped_too_new: int = 0
    dropped_invalid: int = 0
    dropped_overflow: int = 0


@dataclass(frozen=True, slots=True)
class FlushResult:
    """What one :meth:`Publisher.flush` did.

    ``complete`` means the buffer was empty when it returned; otherwise
    ``error`` says why it stopped (gave up after retries, a held error, or the deadline).
    """

    sent_requests: int = 0
    sent_datums: int = 0
    retries: int = 0
    failures: int = 0
    rejected: int = 0
    dropped_too_old: int = 0
    remaining: int = 0
    complete: bool = True
    error: str | None = None


@dataclass(frozen=True, slots=True)
class PublisherStats:
    """Cumulative counters since construction (datums are MetricData entries).

    ``failures`` counts PutMetricData calls that raised (every attempt);
    ``retries`` counts re-attempts after a retryable failure; ``rejected`` counts
    datums in requests CloudWatch refused for good (``rejected_requests`` the requests).
    """

    sent_requests: int
    sent_datums: int
    failures: int
    retries: int
    rejected: int
    rejected_requests: int
    dropped_too_old: int
    dropped_too_new: int
    dropped_invalid: int
    dropped_overflow: int
    buffered_datums: int
    buffered_batches: int
    last_success_ms: int | None
    last_error: str | None
    last_error_ms: int | None
    rejections: tuple[tuple[tuple[str, ...], str], ...]


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

    Thread model: :meth:`enqueue`, :meth:`pending`, :meth:`snapshot`, :meth:`stats`
    may be called from any thread and never wait on the network; flushes are
    serialised among themselves (one flusher at a time).

    Retry policy per request: up to ``max_attempts`` calls; before attempt ``k+1``
    sleep ``rng() * min(max_delay_s, base_delay_s * 2**k)`` seconds ("full jitter").
    A flush gives up on a request when attempts run out, when the next sleep
    would pass ``deadline_ms``, or on a "hold" error; the request's datums go back
    to the front of the buffer and the flush returns, so order is kept.

    Timestamps: a datum is dropped (counted) when it is older than
    ``max_age_ms - age_margin_ms`` or more than ``max_future_ms - age_margin_ms``
    ahead of ``clock.now_ms()``, checked on enqueue, at the start of every flush
    and right before each request. The margin absorbs clock skew and the time a
    flush can spend retrying.
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
        max_age_ms: int = CLOUDWATCH_MAX_AGE_MS,
        max_future_ms: int = CLOUDWATCH_MAX_FUTURE_MS,
        age_margin_ms: int = 15 * MINUTE_MS,
        max_buffered_datums: int = 250_000,
        max_metrics_per_request: int = MAX_METRICS_PER_REQUEST,
        max_request_bytes: int = MAX_REQUEST_BYTES,
        max_rejections_kept: int = 100,
        on_sent: Callable[[list[str]], object] | None = None,
    ) -> None:
        if not namespace or len(namespace) > 255:
            raise ValueError(f"namespace must be 1..255 chars, got {namespace!r}")
        if max_attempts < 1:
            raise ValueError(f"max_attempts must be >= 1, got {max_attempts}")
        if base_delay_s < 0 or max_delay_s < 0:
            raise ValueError(f"delays must be >= 0, got base_delay_s={base_delay_s}, max_delay_s={max_delay_s}")
        if max_buffered_datums < 1:
            raise ValueError(f"max_buffered_datums must be >= 1, got {max_buffered_datums}")
        if not 0 <= age_margin_ms < min(max_age_ms, max_future_ms):
            raise ValueError(
                f"age_margin_ms must be in [0, min(max_age_ms, max_future_ms)), got {age_margin_ms}"
            )
        if max_metrics_per_request < 1 or max_request_bytes <= REQUEST_ENVELOPE_BYTES:
            raise ValueError(
                f"need max_metrics_per_request >= 1 and max_request_bytes > {REQUEST_ENVELOPE_BYTES}"
            )
        self._client = client
        # told the ids of batches whose every datum CloudWatch acknowledged (called from the
        # flushing thread, outside the lock), so a checkpoint ledger can record them at once
        self._on_sent = on_sent
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
        self._thread: threading.Thread | None = None

    # -- buffer ---------------------------------------------------------------------------

    def _age_limits(self, now_ms: int) -> tuple[int, int]:
        """Accepted ``[oldest, newest]`` timestamps at ``now_ms``."""
        return (
            now_ms - self.max_age_ms + self.age_margin_ms,
            now_ms + self.max_future_ms - self.age_margin_ms,
        )

    def _prepare(self, batch_id: str, datums: Iterable[Datum]) -> tuple[_Batch, EnqueueResult, str | None]:
        """Validate, split and size outside the lock; the batch holds only sendable datums."""
        oldest, newest = self._age_limits(self._clock.now_ms())
        batch = _Batch(batch_id)
        too_old = too_new = invalid = 0
        first_problem: str | None = None
        for datum in datums:
            problem = validate_datum(datum)
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

    def snapshot(self) -> list[dict[str, Any]]:
        """The unsent datums as plain data (JSON-able), oldest first, for a checkpoint.

        Includes datums a flush is sending right now: if that send succeeds and the
        process dies before the next checkpoint, they are sent again (the one
        duplicated tick the spec allows).
        """
        with self._lock:
            segments = [(b.batch_id, [d for d, _ in b.items]) for b in (*self._in_flight, *self._buffer)]
        out: list[dict[str, Any]] = []
        for batch_id, datums in segments:
            plain = [datum_to_plain(d) for d in datums]
            if out and out[-1]["batch_id"] == batch_id:
                out[-1]["datums"].extend(plain)
            else:
                out.append({"batch_id": batch_id, "datums": plain})
        return out

    def restore(self, data: Iterable[Mapping[str, Any]]) -> EnqueueResult:
        """Put :meth:`snapshot` output back, ahead of anything buffered since.

        The same checks as :meth:`enqueue` apply (too-old datums are dropped and
        counted), then the cap. Returns the totals over all restored batches.
        Meant for start-up, before the first flush.
        """
        prepared = [
            self._prepare(str(b["batch_id"]), [datum_from_plain(d) for d in b["datums"]]) for b in data
        ]
        totals = EnqueueResult(
            accepted=sum(r.accepted for _, r, _ in prepared),
            dropped_too_old=sum(r.dropped_too_old for _, r, _ in prepared),
            dropped_too_new=sum(r.dropped_too_new for _, r, _ in prepared),
            dropped_invalid=sum(r.dropped_invalid for _, r, _ in prepared),
        )
        with self._lock:
            for _, result, problem in prepared:
                self._count_prepared(result, problem)
            restored = [batch for batch, _, _ in prepared if batch.items]
            self._buffer.extendleft(reversed(restored))
            self._buffered += sum(len(b.items) for b in restored)
            overflow = self._enforce_cap()
        return replace(totals, dropped_overflow=overflow)

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
                with self._lock:
                    c = self._counters
                    message = describe_error(exc) if exc is not None else outcome
                    if outcome == "reject":
                        self._buffered -= len(entries)
                        self._in_flight = []
                        c.rejected += len(entries)
                        c.rejected_requests += 1
                        rejected += len(entries)
                        self._rejections.append((batch_ids, message))
                        self._record_error(f"rejected {_ids_text(batch_ids)}: {message}")
                        continue
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

    def start_background(self, interval_s: float) -> None:
        """Flush every ``interval_s`` seconds in a daemon thread; each flush ends by the next tick."""
        if interval_s <= 0:
            raise ValueError(f"interval_s must be > 0, got {interval_s}")
        if self._thread is not None and self._thread.is_alive():
            raise RuntimeError("the publisher's background thread is already running")
        self._stop.clear()
        self._thread = threading.Thread(
            target=self._run, args=(interval_s,), name="rollguard-publisher", daemon=True
        )
        self._thread.start()

    def _run(self, interval_s: float) -> None:
        while not self._stop.wait(interval_s):
            try:
                self._flush(self._clock.now_ms() + int(interval_s * 1000), abort=self._stop)
            except Exception as exc:  # noqa: BLE001 - the flusher thread must outlive any bug
                with self._lock:
                    self._record_error(f"background flush crashed: {describe_error(exc)}")

    def stop(self, timeout_s: float | None = 30.0) -> bool:
        """Stop the background thread; True when it has ended.

        A flush in progress stops retrying but finishes its current call or sleep
        (at most one request timeout or ``max_delay_s``). Buffered data stays:
        call :meth:`flush` for a final drain, :meth:`snapshot` to checkpoint it.
        """
        self._stop.set()
        thread = self._thread
        if thread is None:
            return True
        thread.join(timeout_s)
        if thread.is_alive():
            return False
        self._thread = None
        return True


def _ids_text(batch_ids: Sequence[str]) -> str:
    if len(batch_ids) <= 3:
        return f"batch(es) {', '.join(batch_ids)}"
    return f"{len(batch_ids)} batches {batch_ids[0]} .. {batch_ids[-1]}"


# -- plain data ---------------------------------------------------------------------------


def datum_to_plain(datum: Datum) -> dict[str, Any]:
    """A Datum as JSON-able data."""
    return {
        "name": datum.name,
        "dimensions": [[k, v] for k, v in datum.dimensions],
        "timestamp_ms": datum.timestamp_ms,
        "unit": datum.unit,
        "value": datum.value,
        "values": list(datum.values),
        "counts": list(datum.counts),
    }


def datum_from_plain(data: Mapping[str, Any]) -> Datum:
    """Inverse of :func:`datum_to_plain`."""
    return Datum(
        name=str(data["name"]),
        dimensions=tuple((str(k), str(v)) for k, v in data["dimensions"]),
        timestamp_ms=int(data["timestamp_ms"]),
        unit=str(data.get("unit", "Count")),
        value=None if data.get("value") is None else float(data["value"]),
        values=tuple(float(v) for v in data.get("values", ())),
        counts=tuple(float(c) for c in data.get("counts", ())),
    )
