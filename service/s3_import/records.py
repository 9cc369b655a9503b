"""Data Capture lines as Kafka records for the captures topic: key, value and headers. Pure."""
from __future__ import annotations

import json
from collections.abc import Iterable, Iterator, Mapping
from dataclasses import dataclass, field

from service.s3_import.layout import CaptureKey


@dataclass(frozen=True, slots=True)
class Record:
    """One Kafka record for the captures topic."""

    key: bytes | None
    value: bytes
    headers: tuple[tuple[str, bytes], ...]


@dataclass(frozen=True, slots=True)
class VariantTags:
    """Headers the S3 layout cannot tell: which variants are shadows, and their model versions."""

    shadow_variants: frozenset[str] = frozenset()
    model_versions: Mapping[str, str] = field(default_factory=dict)  # variant -> model version

    def headers(self, variant: str) -> tuple[tuple[str, bytes], ...]:
        out: list[tuple[str, bytes]] = []
        if variant in self.shadow_variants:
            out.append(("shadow", b"true"))
        if variant in self.model_versions:
            out.append(("model_version", self.model_versions[variant].encode("utf-8")))
        return tuple(out)


def iter_lines(chunks: Iterable[bytes]) -> Iterator[bytes]:
    """Split a byte stream on b"\\n" (a trailing b"\\r" is dropped); the last line may lack a newline.

    Blank lines are yielded too, so a caller's line numbers match the file's.
    """
    pending = b""
    for chunk in chunks:
        if not chunk:
            continue
        pending += chunk
        *lines, pending = pending.split(b"\n")
        for line in lines:
            yield line[:-1] if line.endswith(b"\r") else line
    if pending:
        yield pending[:-1] if pending.endswith(b"\r") else pending


def inference_id(line: bytes) -> str | None:
    """`eventMetadata.inferenceId`, else `eventMetadata.eventId` (rollguard's own `inference_id` for
    lines in rollguard's form); None when the line is not a JSON object or carries no usable id."""
    try:
        obj = json.loads(line)
    except ValueError:  # JSONDecodeError and UnicodeDecodeError alike
        return None
    if not isinstance(obj, dict):
        return None
    meta = obj.get("eventMetadata")
    if isinstance(meta, dict):
        for name in ("inferenceId", "eventId"):
            value = meta.get(name)
            if isinstance(value, str) and value:
                return value
        return None
    value = obj.get("inference_id")
    return value if isinstance(value, str) and value else None


def to_record(line: bytes, key: CaptureKey, tags: VariantTags = VariantTags()) -> Record | None:
    """The record for one line, or None for a blank line.

    The value is the line exactly as stored (BASE64, CSV and JSON payloads untouched); a line
    without an inference id is produced unkeyed, and the daemon dead-letters it with a reason.
    """
    if not line.strip():
        return None
    iid = inference_id(line)
    headers = (("endpoint", key.endpoint.encode("utf-8")), ("variant", key.variant.encode("utf-8")))
    return Record(
        key=None if iid is None else iid.encode("utf-8", "surrogatepass"),
        value=line,
        headers=headers + tags.headers(key.variant),
    )
