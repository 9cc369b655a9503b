"""The import's I/O edges behind small Protocols: S3 listing and reading, Kafka producing, and how they fail."""
from __future__ import annotations

from collections.abc import Callable, Iterable, Iterator
from dataclasses import dataclass
from typing import Any, Protocol

from service.checkpoint import CheckpointStore
from service.s3_import.layout import S3Prefix
from service.s3_import.ledger import ObjectInfo
from service.s3_import.records import Record
from service.settings import Settings


class ConfigError(ValueError):
    """The command cannot run as asked (bad prefix, missing bucket, unreachable Kafka); one line."""


class SourceError(RuntimeError):
    """Listing or reading S3 failed; the message is one line naming the bucket or object."""


class SinkError(RuntimeError):
    """Delivery to Kafka failed for a reason other than the record itself; retry the file later."""


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
