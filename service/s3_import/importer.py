"""One import pass over a prefix: list, produce each new file, record it in the ledger."""
from __future__ import annotations

import threading
from dataclasses import dataclass, field

from service.checkpoint import CheckpointStore
from service.s3_import.edges import ObjectStore, RecordSink, SinkError, SourceError
from service.s3_import.layout import CaptureKey, S3Prefix, SkippedKey
from service.s3_import.ledger import Ledger, ledger_name, load_ledger, plan
from service.s3_import.records import VariantTags, iter_lines, to_record


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
