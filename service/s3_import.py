"""`rollguard import-s3`: produce SageMaker Data Capture files from S3 to the captures topic.

Data Capture writes `{prefix}/{endpoint}/{variant}/yyyy/mm/dd/hh/{name}.jsonl`, one JSON object a
line. Every object under the prefix that was not imported before (same key and ETag) is read once;
each non-blank line goes to the captures topic byte for byte, keyed by its inference id
(`eventMetadata.inferenceId`, else `eventId`), with Kafka headers `endpoint` and `variant` taken from
the key, which is where `pipelines.parse.parse_capture` looks for them. Lines that are not JSON are
produced too (unkeyed), so the daemon dead-letters them with a reason instead of them vanishing here.

What was imported is kept in a small ledger in the checkpoint store (ROLLGUARD_STATE_DIR), saved only
after the producer acknowledged every line of a file: a crash, or a failure in the middle of a file,
re-imports at most that one file.

The pure part (prefix and key parsing, line -> record, ledger diffing) is separate from the I/O
edges (S3 listing and reading, Kafka producing), which sit behind small Protocols.
"""
from __future__ import annotations

import argparse
import hashlib
import json
import re
import signal
import sys
import threading
from collections.abc import Callable, Iterable, Iterator, Mapping
from dataclasses import dataclass, field
from datetime import datetime
from types import FrameType
from typing import Any, Protocol
from urllib.parse import unquote

from service.checkpoint import CheckpointStore
from service.settings import Settings, SettingsError, load_settings

PROG = "rollguard import-s3"
LEDGER_VERSION = 1
MAX_NAME_CHARS = 255  # what the capture parser accepts for endpoint and variant names

_BUCKET = re.compile(r"[A-Za-z0-9][A-Za-z0-9._-]{2,254}")
_YEAR = re.compile(r"[0-9]{4}")
_TWO_DIGITS = re.compile(r"[0-9]{2}")
LAYOUT = "{endpoint}/{variant}/yyyy/mm/dd/hh/{file}.jsonl"


# ---------------------------------------------------------------- pure: prefixes and keys


class ConfigError(ValueError):
    """The command cannot run as asked (bad prefix, missing bucket, unreachable Kafka); one line."""


class SourceError(RuntimeError):
    """Listing or reading S3 failed; the message is one line naming the bucket or object."""


class SinkError(RuntimeError):
    """Delivery to Kafka failed for a reason other than the record itself; retry the file later."""


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


# ---------------------------------------------------------------- pure: lines and records


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


# ---------------------------------------------------------------- pure: the ledger


@dataclass(frozen=True, slots=True)
class ObjectInfo:
    key: str
    etag: str
    size: int = 0


@dataclass(frozen=True)
class Ledger:
    """What was imported from one prefix: object key -> ETag of the version read. Immutable."""

    prefix: str  # the prefix URI, so a ledger is never applied to another prefix
    objects: Mapping[str, str] = field(default_factory=dict)

    def imported(self, key: str, etag: str) -> bool:
        return self.objects.get(key) == etag

    def with_imported(self, key: str, etag: str) -> Ledger:
        return Ledger(self.prefix, {**self.objects, key: etag})

    def encode(self) -> bytes:
        body = {"version": LEDGER_VERSION, "prefix": self.prefix, "objects": dict(sorted(self.objects.items()))}
        return json.dumps(body, separators=(",", ":")).encode("utf-8")

    @classmethod
    def decode(cls, data: bytes, name: str) -> Ledger:
        """Raises ValueError naming the ledger when it is not one this version wrote."""
        try:
            body = json.loads(data)
        except ValueError:
            raise ValueError(f"ledger {name!r} is not JSON; delete it to import everything again") from None
        if (not isinstance(body, dict) or body.get("version") != LEDGER_VERSION
                or not isinstance(body.get("prefix"), str) or not isinstance(body.get("objects"), dict)
                or not all(isinstance(k, str) and isinstance(v, str) for k, v in body["objects"].items())):
            raise ValueError(f"ledger {name!r} is not an import-s3 ledger of version {LEDGER_VERSION}; "
                             "delete it to import everything again")
        return cls(body["prefix"], dict(body["objects"]))


def ledger_name(prefix: S3Prefix) -> str:
    """One ledger per prefix, named so that two prefixes never share one."""
    digest = hashlib.sha256(prefix.uri.encode("utf-8")).hexdigest()[:16]
    return f"import-s3.{digest}.json"


def load_ledger(store: CheckpointStore, prefix: S3Prefix) -> Ledger:
    """The prefix's ledger, empty if there is none; raises ValueError naming it if it cannot be used."""
    name = ledger_name(prefix)
    data = store.load(name)
    ledger = Ledger(prefix.uri) if data is None else Ledger.decode(data, name)
    if ledger.prefix != prefix.uri:
        raise ValueError(f"ledger {name!r} belongs to {ledger.prefix}, not {prefix.uri}")
    return ledger


@dataclass(frozen=True, slots=True)
class Plan:
    todo: tuple[tuple[ObjectInfo, CaptureKey], ...]  # oldest capture hour first
    skipped: tuple[SkippedKey, ...]
    already: int  # listed objects imported before
    ledger: Ledger  # the old ledger without objects that are no longer listed


def plan(listing: Iterable[ObjectInfo], ledger: Ledger) -> Plan:
    """Diff a listing against the ledger: what to import, what to skip, what to forget.

    Entries for keys no longer listed are dropped (S3 lifecycle rules then bound the ledger). Files
    are ordered by capture hour across endpoints and variants, so production and shadow captures of
    the same hour reach the daemon close together during a backfill.
    """
    todo: list[tuple[ObjectInfo, CaptureKey]] = []
    skipped: list[SkippedKey] = []
    kept: dict[str, str] = {}
    already = 0
    for info in listing:
        if info.key in ledger.objects:
            kept[info.key] = ledger.objects[info.key]
        parsed = parse_key(info.key)
        if isinstance(parsed, SkippedKey):
            skipped.append(parsed)
        elif ledger.imported(info.key, info.etag):
            already += 1
        else:
            todo.append((info, parsed))
    todo.sort(key=lambda item: (item[1].hour, item[1].name, item[1].key))
    return Plan(tuple(todo), tuple(skipped), already, Ledger(ledger.prefix, kept))


# ---------------------------------------------------------------- I/O edges


@dataclass(frozen=True, slots=True)
class OpenedObject:
    etag: str  # of the version being read, which may be newer than the listed one
    chunks: Iterable[bytes]


class ObjectStore(Protocol):
    def check(self, prefix: S3Prefix) -> None:
        """Raise ConfigError (one line) if the prefix's bucket cannot be listed at all."""
        ...

    def list(self, prefix: S3Prefix) -> Iterator[ObjectInfo]:
        """Every object under the prefix; raises SourceError."""
        ...

    def open(self, bucket: str, key: str) -> OpenedObject | None:
        """The object's content, or None if it no longer exists; raises SourceError, also while iterating."""
        ...


class RecordSink(Protocol):
    def send(self, record: Record) -> None:
        """Queue a record; may block while the producer's buffer is full."""
        ...

    def flush(self) -> list[tuple[int, str]]:
        """Block until every record sent since the last flush is acknowledged.

        Returns (index since the last flush, reason) for records refused for their own sake, which
        no retry can deliver (e.g. larger than the producer allows); raises SinkError when delivery
        failed for any other reason.
        """
        ...

    def close(self) -> None: ...


def _client_error(ex: Exception, what: str) -> str:
    code = getattr(ex, "response", {}).get("Error", {}).get("Code", "")
    if code in ("NoSuchBucket", "404"):
        return f"{what}: the bucket does not exist"
    if code in ("AccessDenied", "403", "AllAccessDisabled", "InvalidAccessKeyId", "SignatureDoesNotMatch"):
        return f"{what}: access denied ({code})"
    return f"{what}: {type(ex).__name__}: {ex}".splitlines()[0]


class S3Objects:
    """ObjectStore over a boto3 S3 client."""

    def __init__(self, s3: Any, chunk_bytes: int = 1 << 20) -> None:
        self.s3, self.chunk_bytes = s3, chunk_bytes

    def check(self, prefix: S3Prefix) -> None:
        from botocore.exceptions import BotoCoreError, ClientError

        try:
            self.s3.list_objects_v2(Bucket=prefix.bucket, Prefix=prefix.prefix, MaxKeys=1)
        except ClientError as ex:
            raise ConfigError(_client_error(ex, f"cannot list {prefix.uri}")) from None
        except BotoCoreError as ex:
            raise ConfigError(f"cannot list {prefix.uri}: {ex}".splitlines()[0]) from None

    def list(self, prefix: S3Prefix) -> Iterator[ObjectInfo]:
        from botocore.exceptions import BotoCoreError, ClientError

        try:
            pages = self.s3.get_paginator("list_objects_v2").paginate(Bucket=prefix.bucket, Prefix=prefix.prefix)
            for page in pages:
                for obj in page.get("Contents", ()):
                    yield ObjectInfo(obj["Key"], obj.get("ETag", ""), int(obj.get("Size", 0)))
        except ClientError as ex:
            raise SourceError(_client_error(ex, f"cannot list {prefix.uri}")) from None
        except BotoCoreError as ex:
            raise SourceError(f"cannot list {prefix.uri}: {ex}".splitlines()[0]) from None

    def open(self, bucket: str, key: str) -> OpenedObject | None:
        from botocore.exceptions import ClientError

        try:
            response = self.s3.get_object(Bucket=bucket, Key=key)
        except ClientError as ex:
            if ex.response.get("Error", {}).get("Code") in ("NoSuchKey", "404"):
                return None  # deleted since the listing: the next listing will not show it either
            raise SourceError(_client_error(ex, f"cannot read s3://{bucket}/{key}")) from None
        return OpenedObject(response.get("ETag", ""), self._chunks(response["Body"], f"s3://{bucket}/{key}"))

    def _chunks(self, body: Any, uri: str) -> Iterator[bytes]:
        from botocore.exceptions import BotoCoreError

        try:
            yield from body.iter_chunks(self.chunk_bytes)
        except (BotoCoreError, OSError) as ex:
            raise SourceError(f"reading {uri} failed: {ex}".splitlines()[0]) from None
        finally:
            body.close()


class KafkaSink:
    """RecordSink over a kafka-python producer, checking every send's future at flush."""

    def __init__(self, producer: Any, topic: str, flush_timeout_s: float = 120.0) -> None:
        self.producer, self.topic, self.flush_timeout_s = producer, topic, flush_timeout_s
        self._futures: list[tuple[int, Any]] = []
        self._refused: list[tuple[int, str]] = []
        self._sent = 0

    def send(self, record: Record) -> None:
        from kafka.errors import KafkaError, MessageSizeTooLargeError

        index, self._sent = self._sent, self._sent + 1
        try:
            future = self.producer.send(self.topic, value=record.value, key=record.key, headers=list(record.headers))
        except MessageSizeTooLargeError as ex:
            # Raised before anything is queued, and the same record will always be too large.
            self._refused.append((index, f"{type(ex).__name__}: {ex}"))
            return
        except KafkaError as ex:
            self._futures, self._refused, self._sent = [], [], 0  # the file is abandoned
            raise SinkError(f"producing to {self.topic!r} failed: {type(ex).__name__}: {ex}") from ex
        self._futures.append((index, future))

    def flush(self) -> list[tuple[int, str]]:
        from kafka.errors import KafkaError

        futures, refused = self._futures, self._refused
        self._futures, self._refused, self._sent = [], [], 0
        try:
            self.producer.flush(timeout=self.flush_timeout_s)
        except KafkaError as ex:
            raise SinkError(f"producing to {self.topic!r} failed: {type(ex).__name__}: {ex}") from ex
        for _, future in futures:
            # Broker-side errors (authorisation, a broker limit below ours, ...) are the cluster's,
            # not the line's: fail the file so it is tried again once that is fixed.
            if not future.is_done:
                raise SinkError(f"producing to {self.topic!r}: not acknowledged within {self.flush_timeout_s:g} s")
            if future.failed():
                failure = future.exception
                raise SinkError(f"producing to {self.topic!r} failed: {type(failure).__name__}: {failure}")
        return refused

    def close(self) -> None:
        self.producer.close(timeout=10)


# ---------------------------------------------------------------- one import pass


@dataclass
class PassResult:
    """What one pass over the prefix did."""

    files: int = 0
    lines: int = 0
    without_id: int = 0  # produced unkeyed; the daemon dead-letters them
    already: int = 0  # files imported by an earlier pass
    skipped: list[SkippedKey] = field(default_factory=list)
    refused: list[tuple[str, int, str]] = field(default_factory=list)  # (key, line number, reason)
    error: str | None = None  # why the pass stopped before the end; the rest waits for the next pass
    interrupted: bool = False

    @property
    def ok(self) -> bool:
        return self.error is None and not self.refused and not self.interrupted

    def summary(self, prefix: S3Prefix) -> str:
        text = f"{prefix.uri}: {self.files} files, {self.lines} lines, {len(self.skipped)} skipped"
        if self.already:
            text += f", {self.already} imported before"
        if self.without_id:
            text += f"; {self.without_id} lines without an inference id (dead-lettered by the daemon)"
        if self.refused:
            text += f"; {len(self.refused)} lines refused by the producer"
        if self.interrupted:
            text += "; interrupted"
        if self.error:
            text += f"; stopped early: {self.error}"
        return text


class Importer:
    """Imports new Data Capture files under one prefix; the ledger makes passes idempotent."""

    def __init__(self, prefix: S3Prefix, *, objects: ObjectStore, sink: RecordSink, store: CheckpointStore,
                 tags: VariantTags = VariantTags(), ledger: Ledger | None = None) -> None:
        """`ledger` defaults to the one in `store` (see load_ledger, which raises ValueError)."""
        self.prefix, self.objects, self.sink, self.store, self.tags = prefix, objects, sink, store, tags
        self.name = ledger_name(prefix)
        self.ledger = load_ledger(store, prefix) if ledger is None else ledger

    def run_once(self, stop: threading.Event | None = None) -> PassResult:
        """List, then import each new file: produce its lines, flush, record it in the ledger.

        Raises SourceError if the listing fails. A failure while importing a file stops the pass
        with `error` set and leaves that file out of the ledger, so the next pass imports it whole.
        `stop` is checked between files, so a file is never left half-imported by a shutdown.
        """
        listed = plan(self.objects.list(self.prefix), self.ledger)
        result = PassResult(already=listed.already, skipped=list(listed.skipped))
        if listed.ledger != self.ledger:
            self._save(listed.ledger)
        for info, key in listed.todo:
            if stop is not None and stop.is_set():
                result.interrupted = True
                break
            try:
                imported = self._import(key, result)
            except SinkError as ex:
                result.error = str(ex)
                break
            except SourceError as ex:
                result.error = str(ex)
                try:
                    self.sink.flush()  # start the next file from a clean sink; this one is retried whole
                except SinkError:
                    pass
                break
            if imported is not None:
                self._save(self.ledger.with_imported(info.key, imported))
        return result

    def _import(self, key: CaptureKey, result: PassResult) -> str | None:
        """Produce one file; returns the ETag read, or None if the object vanished."""
        opened = self.objects.open(self.prefix.bucket, key.key)
        if opened is None:
            return None
        line_numbers: list[int] = []  # sink index -> line number, to name refused lines
        lines = without_id = 0
        for number, line in enumerate(iter_lines(opened.chunks), start=1):
            record = to_record(line, key, self.tags)
            if record is None:
                continue
            self.sink.send(record)
            line_numbers.append(number)
            lines += 1
            without_id += record.key is None
        refused = self.sink.flush()
        # Counted only now: a file that failed is imported again and counted then.
        result.files += 1
        result.lines += lines - len(refused)
        result.without_id += without_id
        result.refused += [(key.key, line_numbers[index], reason) for index, reason in refused]
        return opened.etag

    def _save(self, ledger: Ledger) -> None:
        self.store.save(self.name, ledger.encode())
        self.ledger = ledger


# ---------------------------------------------------------------- the command


@dataclass
class Edges:
    """The command's I/O, built from settings; tests pass their own."""

    objects: ObjectStore
    store: CheckpointStore
    check_topic: Callable[[], None]  # raises ConfigError if the captures topic cannot be used
    open_sink: Callable[[], RecordSink]  # raises ConfigError if Kafka cannot be reached


def _kafka_error(settings: Settings, ex: Exception) -> str:
    text, name = str(ex), type(ex).__name__
    # kafka-python's errors already start with their class name
    detail = (text if text.startswith(name) else f"{name}: {text}".rstrip(": ")).splitlines()[0]
    return f"cannot reach Kafka at {settings.kafka_bootstrap_servers} (ROLLGUARD_KAFKA_BOOTSTRAP_SERVERS): {detail}"


def production_edges(settings: Settings) -> Edges:
    """boto3 S3 through `service.aws`, the checkpoint store of ROLLGUARD_STATE_DIR, kafka-python."""
    from service import aws, checkpoint

    s3 = aws.client("s3", settings)

    def check_topic() -> None:
        from kafka.errors import KafkaError

        from service.topics import MissingTopicError, partition_counts

        try:
            partition_counts(settings, [settings.captures_topic])
        except MissingTopicError as ex:
            raise ConfigError(f"{ex} (ROLLGUARD_CAPTURES_TOPIC); create it as the daemon's captures topic first") from None
        except KafkaError as ex:
            raise ConfigError(_kafka_error(settings, ex)) from None

    def open_sink() -> RecordSink:
        from kafka.errors import KafkaError

        from service.kafka_clients import make_producer

        try:
            producer = make_producer(settings, acks="all", linger_ms=20, client_id="rollguard-import-s3")
        except KafkaError as ex:
            raise ConfigError(_kafka_error(settings, ex)) from None
        return KafkaSink(producer, settings.captures_topic)

    return Edges(
        objects=S3Objects(s3), store=checkpoint.open_store(settings.state_dir, lambda: s3),
        check_topic=check_topic, open_sink=open_sink,
    )


def _positive(text: str) -> float:
    try:
        value = float(text)
    except ValueError:
        raise argparse.ArgumentTypeError(f"{text!r} is not a number of seconds") from None
    if not 0 < value < 86400 * 365:
        raise argparse.ArgumentTypeError(f"{text!r} must be > 0 seconds and less than a year")
    return value


def _version(text: str) -> tuple[str, str]:
    variant, sep, version = text.partition("=")
    if not sep or not variant or not version:
        raise argparse.ArgumentTypeError(f"{text!r} is not VARIANT=MODEL_VERSION")
    return variant, version


def _parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(
        prog=PROG, description="Produce SageMaker Data Capture files from S3 to the captures topic, each once.",
    )
    parser.add_argument("--prefix", required=True, metavar="s3://BUCKET/PREFIX/",
                        help=f"Data Capture destination (or a parent of it); keys end in {LAYOUT}")
    parser.add_argument("--once", action="store_true", help="import what is there now, print a summary, exit")
    parser.add_argument("--interval", type=_positive, default=60.0, metavar="S",
                        help="seconds between passes when polling (default 60)")
    parser.add_argument("--shadow-variant", action="append", default=[], metavar="VARIANT",
                        help="mark captures of this variant as shadow (header shadow=true); repeatable")
    parser.add_argument("--model-version", action="append", default=[], type=_version, metavar="VARIANT=VERSION",
                        help="header model_version for this variant's captures; repeatable")
    return parser


def _err(message: str) -> None:
    print(f"rollguard import-s3: {message}", file=sys.stderr, flush=True)


def main(
    argv: list[str], *, load: Callable[[], Settings] = load_settings,
    edges: Callable[[Settings], Edges] = production_edges, stop: threading.Event | None = None,
) -> int:
    """Exit codes: 0 done (or stopped by SIGTERM/SIGINT while polling); 1 a --once pass that did not
    import everything; 2 a usage or configuration error (bad prefix, missing bucket, unreachable Kafka)."""
    try:
        args = _parser().parse_args(argv)
    except SystemExit as ex:  # argparse has printed usage and the error
        return int(ex.code or 0)
    try:
        settings = load()
    except SettingsError as ex:
        _err(str(ex))
        return 2
    try:
        prefix = parse_prefix(args.prefix)
    except ValueError as ex:
        _err(str(ex))
        return 2
    tags = VariantTags(frozenset(args.shadow_variant), dict(args.model_version))
    try:
        io = edges(settings)
        io.objects.check(prefix)
        ledger = load_ledger(io.store, prefix)  # a bad ledger is reported before Kafka is touched
        io.check_topic()
        sink = io.open_sink()
    except (ConfigError, ValueError, OSError) as ex:
        _err(str(ex).splitlines()[0] if str(ex) else type(ex).__name__)
        return 2
    stop = stop if stop is not None else threading.Event()
    restore = _install_signals(stop)
    try:
        importer = Importer(prefix, objects=io.objects, sink=sink, store=io.store, tags=tags, ledger=ledger)
        return _loop(importer, prefix, once=args.once, interval=args.interval, stop=stop)
    finally:
        restore()
        sink.close()


def _loop(importer: Importer, prefix: S3Prefix, *, once: bool, interval: float, stop: threading.Event) -> int:
    reported: set[str] = set()
    while True:
        result: PassResult | None = None
        try:
            result = importer.run_once(stop)
        except SourceError as err:
            if once:
                _err(str(err))
                return 2
            _err(f"{err}; trying again in {interval:g} s")
        except Exception as err:  # e.g. the ledger could not be saved: a daemon keeps going
            if once:
                raise
            _err(f"pass failed: {type(err).__name__}: {err}".splitlines()[0] + f"; trying again in {interval:g} s")
        if result is not None:
            new_skips = [s for s in result.skipped if s.key not in reported]
            for skip in new_skips:
                # Once per key per process: a stray key must not repeat every poll.
                _err(f"skipped {prefix.object_uri(skip.key)}: {skip.reason}")
                reported.add(skip.key)
            for key, number, reason in result.refused:
                _err(f"{prefix.object_uri(key)} line {number} not produced: {reason}")
            if result.error:
                _err(result.error)
            if once or result.files or new_skips or not result.ok:
                print(result.summary(prefix), flush=True)
            if once:
                return 0 if result.ok else 1
        if stop.wait(interval):
            return 0


def _install_signals(stop: threading.Event) -> Callable[[], None]:
    """SIGTERM/SIGINT set `stop` (the current file is finished first); returns a restorer."""
    if threading.current_thread() is not threading.main_thread():
        return lambda: None

    def handler(signum: int, frame: FrameType | None) -> None:
        stop.set()

    previous = {sig: signal.signal(sig, handler) for sig in (signal.SIGTERM, signal.SIGINT)}

    def restore() -> None:
        for sig, old in previous.items():
            signal.signal(sig, old)

    return restore
