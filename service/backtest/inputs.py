"""Backtest input: JSON-lines files (local or S3) and what each line's location says about it."""
from __future__ import annotations

import re
from collections.abc import Callable, Iterable, Iterator
from dataclasses import dataclass
from datetime import datetime, timezone
from pathlib import Path
from typing import Literal, Protocol

from service.s3_import.edges import ConfigError, ObjectStore, S3Objects, SourceError
from service.s3_import.layout import CaptureKey, S3Prefix, parse_key, parse_prefix
from service.s3_import.records import VariantTags, iter_lines
from service.settings import Settings

HOUR_MS = 3_600_000
INPUT_SUFFIXES = (".jsonl", ".json", ".ndjson")

Kind = Literal["capture", "label"]


class InputError(ValueError):
    """An input location that cannot be read: one line naming it."""


@dataclass(frozen=True, slots=True)
class InputFile:
    """One file to read: ``key`` is its path ('/'-separated) used for the layout, ``uri`` names it."""

    uri: str
    key: str
    read: Callable[[], Iterable[bytes]]


@dataclass(frozen=True, slots=True)
class Line:
    """One non-blank input line, with what its location says about it."""

    kind: Kind
    raw: bytes
    uri: str
    number: int  # 1-based line number in its file
    headers: tuple[tuple[str, bytes], ...] = ()
    record_ts_ms: int | None = None  # stands in for the Kafka record timestamp


def hour_of(key: str) -> int | None:
    """Epoch ms of the hour in ``.../yyyy/mm/dd/hh/file`` (UTC), or None when the key has no such hour."""
    parts = key.split("/")
    if len(parts) < 5:
        return None
    year, month, day, hour = parts[-5:-1]
    if not (re.fullmatch(r"[0-9]{4}", year) and all(re.fullmatch(r"[0-9]{2}", p) for p in (month, day, hour))):
        return None
    try:
        moment = datetime(int(year), int(month), int(day), int(hour), tzinfo=timezone.utc)
    except ValueError:
        return None
    return int(moment.timestamp()) * 1000


def file_lines(kind: Kind, key: str, uri: str, chunks: Iterable[bytes], tags: VariantTags = VariantTags()) -> list[Line]:
    """The non-blank lines of one file, with headers and record timestamps from its key (see module doc).

    Captures in the Data Capture layout get the ``endpoint``/``variant`` headers (plus what
    ``tags`` says about the variant); every line of a file under a ``yyyy/mm/dd/hh`` directory
    gets ``hour + i * 3600 s / n`` as its record timestamp.
    """
    numbered = [(n, line) for n, line in enumerate(iter_lines(chunks), start=1) if line.strip()]
    headers: tuple[tuple[str, bytes], ...] = ()
    if kind == "capture":
        parsed = parse_key(key)
        if isinstance(parsed, CaptureKey):
            headers = (("endpoint", parsed.endpoint.encode("utf-8")), ("variant", parsed.variant.encode("utf-8")))
            headers += tags.headers(parsed.variant)
    hour = hour_of(key)
    total = len(numbered)
    return [
        Line(kind, raw, uri, number, headers, None if hour is None else hour + i * HOUR_MS // total)
        for i, (number, raw) in enumerate(numbered)
    ]


class InputSource(Protocol):
    def files(self, location: str) -> list[InputFile]:
        """The input files at ``location`` ordered by key; raises InputError (one line) if it cannot be read."""
        ...


def _wanted(key: str) -> bool:
    name = key.rsplit("/", 1)[-1]
    return not name.startswith(".") and name.lower().endswith(INPUT_SUFFIXES)


class LocalFiles:
    """InputSource over the local file system: a file, or a directory searched recursively."""

    def files(self, location: str) -> list[InputFile]:
        path = Path(location)
        if path.is_file():
            return [self._file(path)]
        if path.is_dir():
            found = sorted(p for p in path.rglob("*") if p.is_file() and _wanted(p.as_posix()))
            return [self._file(p) for p in found]
        raise InputError(f"{location}: no such file or directory")

    @staticmethod
    def _file(path: Path) -> InputFile:
        def read() -> Iterator[bytes]:
            try:
                with path.open("rb") as fh:
                    while chunk := fh.read(1 << 20):
                        yield chunk
            except OSError as ex:
                raise InputError(f"{path}: cannot read: {ex.strerror or ex}") from None

        return InputFile(str(path), path.as_posix(), read)


class S3Files:
    """InputSource over an ObjectStore (:class:`service.s3_import.edges.S3Objects` in production)."""

    def __init__(self, objects: ObjectStore) -> None:
        self.objects = objects

    def files(self, location: str) -> list[InputFile]:
        try:
            parsed = parse_prefix(location)
        except ValueError as ex:
            raise InputError(str(ex).replace("--prefix ", "", 1)) from None
        # parse_prefix makes a directory of it; keep the text as given so one object can be named too
        raw = location[len("s3://") + len(parsed.bucket):].lstrip("/")
        listing = S3Prefix(parsed.bucket, raw)
        try:
            self.objects.check(listing)
            keys = sorted(
                info.key for info in self.objects.list(listing)
                if info.key == raw or ((not raw or raw.endswith("/") or info.key.startswith(raw + "/")) and _wanted(info.key))
            )
        except (ConfigError, SourceError) as ex:
            raise InputError(str(ex)) from None
        return [InputFile(listing.object_uri(key), key, self._reader(parsed.bucket, key)) for key in keys]

    def _reader(self, bucket: str, key: str) -> Callable[[], Iterable[bytes]]:
        def read() -> Iterator[bytes]:
            try:
                opened = self.objects.open(bucket, key)
                if opened is not None:  # deleted since the listing: nothing to read
                    yield from opened.chunks
            except SourceError as ex:
                raise InputError(str(ex)) from None

        return read


class Inputs:
    """Local paths and ``s3://`` prefixes; the S3 side is built on first use only."""

    def __init__(self, local: InputSource, s3: Callable[[], InputSource]) -> None:
        self.local, self._s3_factory = local, s3
        self._s3: InputSource | None = None

    def files(self, location: str) -> list[InputFile]:
        if location.startswith("s3://"):
            if self._s3 is None:
                self._s3 = self._s3_factory()
            return self._s3.files(location)
        return self.local.files(location)


def default_inputs(settings: Settings) -> InputSource:
    """Production inputs: the local file system, and S3 through boto3 (ROLLGUARD_AWS_ENDPOINT_URL)."""

    def s3() -> InputSource:
        from service import aws

        return S3Files(S3Objects(aws.client("s3", settings)))

    return Inputs(LocalFiles(), s3)


def read_lines(source: InputSource, location: str, kind: Kind, tags: VariantTags = VariantTags()) -> list[Line]:
    """Every non-blank line at ``location``; raises InputError when there is no input file there."""
    files = source.files(location)
    if not files:
        raise InputError(f"{location}: no input files ({', '.join('*' + s for s in INPUT_SUFFIXES)})")
    lines: list[Line] = []
    for f in files:
        lines += file_lines(kind, f.key, f.uri, f.read(), tags)
    return lines
