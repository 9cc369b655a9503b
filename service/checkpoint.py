"""Checkpoints: one file per partition, in a local directory or under an S3 prefix.

A checkpoint holds a partition's join state, unpublished counts, unsent datums and the next
offsets of both topics, written atomically, so state and offsets always match. The bytes are
data only (service/checkpoint_format.py, docs/checkpoint-format.md): a file someone else wrote
to the state directory or S3 prefix may be refused or hold wrong numbers, but never runs code.
"""
from __future__ import annotations

import os
import shutil
import tempfile
from glob import escape as glob_escape
from pathlib import Path
from typing import Any, Callable, Protocol

from service import checkpoint_format


class CheckpointStore(Protocol):
    def load(self, name: str) -> bytes | None:
        """The stored bytes, or None if there is no checkpoint of that name."""
        ...

    def save(self, name: str, data: bytes) -> None:
        """Store atomically: a reader sees the old bytes or the new, never a mix."""
        ...

    def names(self, prefix: str) -> list[str]:
        """The stored names that start with `prefix`, sorted."""
        ...


class LocalDirStore:
    def __init__(self, directory: str | Path) -> None:
        self.directory = Path(directory)
        self.directory.mkdir(parents=True, exist_ok=True)

    def load(self, name: str) -> bytes | None:
        try:
            return (self.directory / name).read_bytes()
        except FileNotFoundError:
            return None

    def save(self, name: str, data: bytes) -> None:
        fd, tmp = tempfile.mkstemp(dir=self.directory, prefix=f".{name}.")
        try:
            with os.fdopen(fd, "wb") as f:
                f.write(data)
                f.flush()
                os.fsync(f.fileno())
            os.replace(tmp, self.directory / name)
        except BaseException:
            Path(tmp).unlink(missing_ok=True)
            raise

    def names(self, prefix: str) -> list[str]:
        return sorted(p.name for p in self.directory.glob(f"{glob_escape(prefix)}*") if p.is_file())

    # whole files (service/state/ship.py): a hard link when both sides share a filesystem
    def save_file(self, name: str, path: Path) -> None:
        tmp = self.directory / f".{name}.{os.getpid()}.tmp"
        tmp.unlink(missing_ok=True)
        try:
            try:
                os.link(path, tmp)  # the store's files are immutable: sharing the inode is safe
            except OSError:
                shutil.copyfile(path, tmp)
                with open(tmp, "rb+") as f:
                    os.fsync(f.fileno())
            os.replace(tmp, self.directory / name)
        except BaseException:
            tmp.unlink(missing_ok=True)
            raise

    def load_file(self, name: str, path: Path) -> None:
        src = self.directory / name
        if not src.is_file():
            raise FileNotFoundError(name)
        try:
            os.link(src, path)
        except OSError:
            shutil.copyfile(src, path)

    def delete(self, name: str) -> None:
        (self.directory / name).unlink(missing_ok=True)


class S3Store:
    """Checkpoints under s3://bucket/prefix/, for several instances sharing partitions."""

    def __init__(self, bucket: str, prefix: str, s3: Any) -> None:
        self.bucket, self.prefix, self.s3 = bucket, prefix.strip("/"), s3

    def _key(self, name: str) -> str:
        return f"{self.prefix}/{name}" if self.prefix else name

    def load(self, name: str) -> bytes | None:
        try:
            return bytes(self.s3.get_object(Bucket=self.bucket, Key=self._key(name))["Body"].read())
        except self.s3.exceptions.NoSuchKey:
            return None

    def save(self, name: str, data: bytes) -> None:
        # a single PutObject is atomic for readers
        self.s3.put_object(Bucket=self.bucket, Key=self._key(name), Body=data)

    def save_file(self, name: str, path: Path) -> None:
        self.s3.upload_file(str(path), self.bucket, self._key(name))  # multipart for large files

    def load_file(self, name: str, path: Path) -> None:
        try:
            body = self.s3.get_object(Bucket=self.bucket, Key=self._key(name))["Body"]
        except self.s3.exceptions.NoSuchKey:
            raise FileNotFoundError(name) from None
        with open(path, "wb") as f:
            for chunk in body.iter_chunks(8 << 20):
                f.write(chunk)

    def delete(self, name: str) -> None:
        self.s3.delete_object(Bucket=self.bucket, Key=self._key(name))

    def names(self, prefix: str) -> list[str]:
        base = self._key("")
        out: list[str] = []
        for page in self.s3.get_paginator("list_objects_v2").paginate(Bucket=self.bucket, Prefix=self._key(prefix)):
            out += [obj["Key"][len(base):] for obj in page.get("Contents", [])]
        return sorted(name for name in out if "/" not in name)


def open_store(location: str, s3_factory: Callable[[], Any]) -> CheckpointStore:
    """`s3://bucket/prefix` or a local directory path."""
    if location.startswith("s3://"):
        bucket, _, prefix = location[len("s3://"):].partition("/")
        if not bucket:
            raise ValueError(f"ROLLGUARD_STATE_DIR={location!r}: expected s3://bucket/prefix")
        return S3Store(bucket, prefix, s3_factory())
    return LocalDirStore(location)


def check_writable(location: str) -> None:
    """Create a local checkpoint directory and write and remove a probe file in it; raise OSError
    if that fails, so an unusable path stops start-up, not the first tick. S3 is not probed."""
    if location.startswith("s3://"):
        return
    directory = Path(location)
    directory.mkdir(parents=True, exist_ok=True)
    fd, probe = tempfile.mkstemp(dir=directory, prefix=".write-check.")
    os.close(fd)
    os.unlink(probe)


def encode(state: dict[str, Any]) -> bytes:
    """`{"pipeline": PartitionPipeline.snapshot(), "unsent": {batch_id: [Datum, ...]}}` as bytes."""
    return checkpoint_format.encode(state)


def prepare(state: dict[str, Any]) -> str:
    """The body of `encode(state)` before its `store` section is known (a disk store ships its
    files first); cheap: the pending joins are not in it. `seal` completes it."""
    return checkpoint_format.prepare(state)


def seal(prepared: str, store: Any) -> bytes:
    return checkpoint_format.seal(prepared, store)


def decode(data: bytes, name: str) -> dict[str, Any]:
    """The state `encode` was given; raises ValueError naming checkpoint `name`, in one line, for
    anything else: foreign bytes, an old pickle checkpoint, another version, corruption."""
    return checkpoint_format.decode(data, name)
