"""Incremental snapshots of a disk store in the state location, and restores from them.

A snapshot is a RocksDB checkpoint (hard links, taken once the tick's changes are written and
flushed): its SST files are immutable, so each is uploaded once and named by the store's lineage
and file number, and later snapshots only list it again; the small MANIFEST is uploaded every
time. The cost of a snapshot therefore follows the bytes RocksDB wrote since the last one (the
tick's writes and flushes, plus compaction output), not the size of the state. Once the
checkpoint that names a snapshot is written, objects no snapshot names any more are deleted.

Objects: `{base}.store.{lineage}.{NNNNNN}.sst` and `{base}.store.{lineage}.{sequence}.MANIFEST-N`,
where base is the checkpoint's name without `.ckpt`. Every file is checked against the size and
SHA-256 its checkpoint lists before RocksDB opens it.
"""
from __future__ import annotations

import hashlib
import logging
import os
import re
import shutil
from collections.abc import Callable, Iterable
from pathlib import Path
from typing import Any

from rocksdict import Checkpoint, Rdict

from service.state.manifest import StoredFile, StoreSection

log = logging.getLogger("rollguard")

_SST = re.compile(r"[0-9]{6,12}\.sst")
_CHUNK = 8 << 20

Progress = Callable[[int], None]  # bytes done so far of the current restore


def store_prefix(checkpoint_name: str) -> str:
    base = checkpoint_name[:-len(".ckpt")] if checkpoint_name.endswith(".ckpt") else checkpoint_name
    return f"{base}.store."


def _sha256(path: Path, progress: Callable[[int], None] | None = None) -> str:
    h = hashlib.sha256()
    with open(path, "rb") as f:
        while chunk := f.read(_CHUNK):
            h.update(chunk)
            if progress is not None:
                progress(len(chunk))
    return h.hexdigest()


def put_file(location: Any, name: str, path: Path) -> None:
    """Upload a file: the location's own way (hard link, multipart) when it has one."""
    save_file = getattr(location, "save_file", None)
    if save_file is not None:
        save_file(name, path)
    else:
        location.save(name, path.read_bytes())


def get_file(location: Any, name: str, path: Path) -> None:
    load_file = getattr(location, "load_file", None)
    if load_file is not None:
        load_file(name, path)
        return
    data = location.load(name)
    if data is None:
        raise FileNotFoundError(name)
    path.write_bytes(data)


class LocationShipper:
    """Ships one disk store's snapshots under `prefix` in `location` (service.checkpoint stores)."""

    def __init__(self, location: Any, prefix: str, lineage: str, work_dir: Path,
                 restored: StoreSection | None = None) -> None:
        self.location, self.prefix, self.lineage, self.work_dir = location, prefix, lineage, work_dir
        # local SST name -> its object, for files already in the location (restored or uploaded)
        self.uploaded: dict[str, StoredFile] = {f.name: f for f in restored.files if _SST.fullmatch(f.name)} if restored else {}
        self.owned: set[str] = {f.object for f in restored.files} if restored else set()  # objects we may delete
        self.shipped_bytes = 0  # uploaded by this process, for /metrics
        self._manifests = 0

    def ship(self, db: Rdict) -> tuple[str, tuple[StoredFile, ...]]:
        snap = self.work_dir / f".snapshot-{self.lineage}"
        shutil.rmtree(snap, ignore_errors=True)
        # the flush first, on its own: while rocksdict's checkpoint waited for the flush it starts,
        # the daemon's loop waited for the GIL (0.65 s after a 1.2 M-event tick, bench/README.md);
        # Rdict.flush lets it run. Nothing writes to `db` between the two (a store's jobs run one
        # at a time, and none is handed over while one is in flight): the checkpoint flushes nothing
        db.flush()
        Checkpoint(db).create_checkpoint(str(snap))  # hard-links the SSTs
        try:
            current = (snap / "CURRENT").read_text().strip()
            files: list[StoredFile] = []
            for name in sorted(os.listdir(snap)):
                if _SST.fullmatch(name):
                    known = self.uploaded.get(name)
                    if known is None:
                        known = self.uploaded[name] = self._upload(snap / name, f"{self.prefix}{self.lineage}.{name}", name)
                    files.append(known)
            # the manifest changes at every flush and compaction: a new object every time
            self._manifests += 1
            obj = f"{self.prefix}{self.lineage}.{self._manifests:08d}.{current}"
            files.append(self._upload(snap / current, obj, current))
        finally:
            shutil.rmtree(snap, ignore_errors=True)
        return current, tuple(files)

    def _upload(self, path: Path, obj: str, name: str) -> StoredFile:
        size = path.stat().st_size
        digest = _sha256(path)
        put_file(self.location, obj, path)
        self.owned.add(obj)
        self.shipped_bytes += size
        return StoredFile(name, obj, size, digest)

    def shipped(self, section: StoreSection) -> None:
        keep = {f.object for f in section.files}
        gone = self.owned - keep
        self.owned = set(keep)
        live = {f.name for f in section.files}
        self.uploaded = {n: f for n, f in self.uploaded.items() if n in live}
        delete(self.location, gone)


def delete(location: Any, names: Iterable[str]) -> None:
    remove = getattr(location, "delete", None)
    if remove is None:
        return
    for name in sorted(names):
        try:
            remove(name)
        except Exception as ex:  # noqa: BLE001 - a leftover object costs space, never correctness
            log.warning("could not delete %s from the state location: %s", name, ex)


def sweep(location: Any, prefix: str, keep: StoreSection | None) -> None:
    """Delete objects under `prefix` that `keep` does not name: left by a crash between an
    upload and its checkpoint, or by an owner that has since lost the partition."""
    wanted = {f.object for f in keep.files} if keep is not None else set()
    try:
        names = location.names(prefix)
    except Exception as ex:  # noqa: BLE001
        log.warning("could not list %s* in the state location: %s", prefix, ex)
        return
    delete(location, [n for n in names if n not in wanted])


def restore(location: Any, prefix: str, section: StoreSection, directory: Path,
            progress: Progress | None = None) -> None:
    """Fetch a snapshot's files into `directory` (new, empty) and check each; raises ValueError
    naming the file when one is missing, of another size or checksum."""
    directory.mkdir(parents=True)
    done = 0

    def advance(n: int) -> None:
        nonlocal done
        done += n
        if progress is not None:
            progress(done)

    for f in section.files:
        if not f.object.startswith(prefix):
            raise ValueError(f"store file {f.object!r} is not under {prefix!r}")
        path = directory / f.name
        try:
            get_file(location, f.object, path)
        except FileNotFoundError:
            raise ValueError(f"store file {f.object!r} named by the checkpoint is missing from the state location") from None
        size = path.stat().st_size
        if size != f.size:
            raise ValueError(f"store file {f.object!r}: {size} bytes, the checkpoint says {f.size}")
        if _sha256(path, advance) != f.sha256:
            raise ValueError(f"store file {f.object!r}: checksum mismatch")
    (directory / "CURRENT").write_text(section.current + "\n")
