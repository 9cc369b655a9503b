"""The import ledger: what was imported from a prefix (key -> ETag), and the diff of a listing against it."""
from __future__ import annotations

import hashlib
import json
from collections.abc import Iterable, Mapping
from dataclasses import dataclass, field

from service.checkpoint import CheckpointStore
from service.s3_import.layout import CaptureKey, S3Prefix, SkippedKey, parse_key

LEDGER_VERSION = 1


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
