"""Plain, validated records that flow through the pure core."""
from __future__ import annotations

from dataclasses import dataclass, field


@dataclass(frozen=True, slots=True)
class Source:
    """Where a record came from; enough to find the original bytes again."""

    topic: str
    partition: int
    offset: int


@dataclass(frozen=True, slots=True)
class Capture:
    """One inference, as served (production) or logged (shadow)."""

    inference_id: str
    endpoint: str
    variant: str
    timestamp_ms: int
    model_version: str | None = None
    shadow: bool = False
    latency_ms: float | None = None
    is_error: bool = False
    prediction: int | None = None  # 0/1; None only for an error capture
    attributes: tuple[tuple[str, str], ...] = ()


@dataclass(frozen=True, slots=True)
class Label:
    """Ground truth for one inference id, possibly late, repeated or corrected."""

    inference_id: str
    label: int  # 0/1
    timestamp_ms: int
    endpoint: str | None = None
    source: str | None = None


@dataclass(frozen=True, slots=True)
class BadRecord:
    """A record that failed parsing or validation: errors as data, bound for the dead-letter topic."""

    reason: str  # short stable code, e.g. "not_json"; counted per code
    detail: str  # one line for people
    raw: bytes = field(repr=False, default=b"")
    source: Source | None = None
