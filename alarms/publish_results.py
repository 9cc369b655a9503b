"""What the publisher reports: one enqueue, one flush, and its counters since start."""
from __future__ import annotations

from dataclasses import dataclass


@dataclass(frozen=True, slots=True)
class EnqueueResult:
    """What :meth:`alarms.publisher.Publisher.enqueue` did with one batch (datums counted as MetricData entries)."""

    accepted: int
    dropped_too_old: int = 0
    dropped_too_new: int = 0
    dropped_invalid: int = 0
    dropped_overflow: int = 0


@dataclass(frozen=True, slots=True)
class FlushResult:
    """What one :meth:`alarms.publisher.Publisher.flush` did.

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
    ``retries`` counts re-attempts after a retryable failure; ``rejected`` counts the
    datums CloudWatch refused for good, each found by bisecting the request it came in
    (``rejected_requests`` those requests; the other datums in them were sent), and
    ``rejections`` lists the latest of them: ((batch id,), the datum and CloudWatch's reason).
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
