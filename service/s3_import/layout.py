"""Data Capture's S3 layout: prefixes, and what an object key says (endpoint, variant, hour). Pure."""
from __future__ import annotations

import re
from dataclasses import dataclass
from datetime import datetime
from urllib.parse import unquote

MAX_NAME_CHARS = 255  # what the capture parser accepts for endpoint and variant names

_BUCKET = re.compile(r"[A-Za-z0-9][A-Za-z0-9._-]{2,254}")
_YEAR = re.compile(r"[0-9]{4}")
_TWO_DIGITS = re.compile(r"[0-9]{2}")
LAYOUT = "{endpoint}/{variant}/yyyy/mm/dd/hh/{file}.jsonl"


@dataclass(frozen=True, slots=True)
class S3Prefix:
    bucket: str
    prefix: str  # "" (whole bucket) or ending with "/"

    @property
    def uri(self) -> str:
        return f"s3://{self.bucket}/{self.prefix}"

    def object_uri(self, key: str) -> str:
        return f"s3://{self.bucket}/{key}"


def parse_prefix(uri: str) -> S3Prefix:
    """`s3://bucket[/prefix[/]]` -> S3Prefix; raises ValueError naming the input and what was expected.

    A missing trailing slash is added: Data Capture prefixes are directories, and `dc` must not
    also match `dc-old/...`.
    """
    expected = "expected s3://bucket/prefix/"
    if not uri.startswith("s3://"):
        raise ValueError(f"--prefix {uri!r}: {expected}")
    bucket, _, prefix = uri[len("s3://"):].partition("/")
    if not bucket:
        raise ValueError(f"--prefix {uri!r}: no bucket name; {expected}")
    if not _BUCKET.fullmatch(bucket):
        raise ValueError(f"--prefix {uri!r}: {bucket!r} is not a bucket name (3-255 of letters, digits, '.', '-', '_')")
    if prefix and not prefix.endswith("/"):
        prefix += "/"
    return S3Prefix(bucket, prefix)


@dataclass(frozen=True, slots=True)
class CaptureKey:
    """An object key in the Data Capture layout, with the parts rollguard needs."""

    key: str  # the key as stored (never decoded), for GetObject and the ledger
    endpoint: str
    variant: str
    hour: str  # "yyyy/mm/dd/hh", the capture hour in UTC
    name: str  # file name


@dataclass(frozen=True, slots=True)
class SkippedKey:
    """A key under the prefix that is not a Data Capture file: errors as data, reported, not imported."""

    key: str
    reason: str


def _name(raw: str, what: str, key: str) -> str | SkippedKey:
    # SageMaker endpoint and variant names are [a-zA-Z0-9-] only, so a '%' can only come from a
    # writer that URL-encoded the key; decoding gives the only name that can exist.
    name = unquote(raw) if "%" in raw else raw
    if not name:
        return SkippedKey(key, f"empty {what} name; expected {LAYOUT}")
    if len(name) > MAX_NAME_CHARS:
        return SkippedKey(key, f"{what} name is {len(name)} characters, the limit is {MAX_NAME_CHARS}")
    return name


def parse_key(key: str) -> CaptureKey | SkippedKey:
    """Read endpoint, variant and hour from the last seven parts of `key`; never raises.

    Parsing from the right makes any prefix depth work: the DestinationS3Uri may be nested, and
    --prefix may name it, a parent of it, or a directory inside it.
    """
    parts = key.split("/")
    if len(parts) < 7:
        return SkippedKey(key, f"expected {LAYOUT} at the end of the key")
    endpoint_raw, variant_raw, year, month, day, hour, name = parts[-7:]
    if not name.endswith(".jsonl") or name == ".jsonl":
        return SkippedKey(key, "not a .jsonl file")
    if not (_YEAR.fullmatch(year) and all(_TWO_DIGITS.fullmatch(p) for p in (month, day, hour))):
        return SkippedKey(key, f"{year}/{month}/{day}/{hour} is not yyyy/mm/dd/hh; expected {LAYOUT}")
    try:
        datetime(int(year), int(month), int(day), int(hour))
    except ValueError:
        return SkippedKey(key, f"{year}/{month}/{day}/{hour} is not a valid date and hour")
    endpoint = _name(endpoint_raw, "endpoint", key)
    if isinstance(endpoint, SkippedKey):
        return endpoint
    variant = _name(variant_raw, "variant", key)
    if isinstance(variant, SkippedKey):
        return variant
    return CaptureKey(key, endpoint, variant, f"{year}/{month}/{day}/{hour}", name)
