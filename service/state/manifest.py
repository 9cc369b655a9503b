"""The `store` section of a checkpoint (format 4): which files hold a partition's pending joins.

Pure: no I/O. A disk-store checkpoint (`service/state/ship.py`) lists the RocksDB files of one
consistent snapshot of the partition's store, each an object in the state location with its
size and SHA-256, plus the endpoint ids its keys use (`service/state/keys.py`). The checkpoint
file that carries this section is written only after every file it lists, so a reader that
sees it can fetch them all. docs/checkpoint-format.md is the reference.
"""
from __future__ import annotations

import re
from collections.abc import Mapping
from dataclasses import dataclass
from typing import Any

KIND = "rocksdb"
_LINEAGE = re.compile(r"[0-9a-f]{12}")
_FILE = re.compile(r"[0-9]{6,12}\.sst|MANIFEST-[0-9]{6,12}")
_OBJECT = re.compile(r"[A-Za-z0-9_][A-Za-z0-9._-]{0,900}")
_SHA256 = re.compile(r"[0-9a-f]{64}")
_KEYS = frozenset({"kind", "lineage", "sequence", "endpoints", "captures", "labels", "current", "files"})
_FILE_KEYS = frozenset({"name", "object", "size", "sha256"})
MAX_ENDPOINTS = 0xFFFF  # endpoint ids are two bytes; 0xFFFF stands for "no endpoint"


@dataclass(frozen=True)
class StoredFile:
    name: str  # the file's name in the RocksDB directory
    object: str  # its name in the state location
    size: int
    sha256: str


@dataclass(frozen=True)
class StoreSection:
    lineage: str  # which store instance wrote the files (new at every open or restore)
    sequence: int  # checkpoints of that lineage, counting from 1
    endpoints: tuple[str, ...]
    captures: int
    labels: int
    current: str  # the MANIFEST named by RocksDB's CURRENT file
    files: tuple[StoredFile, ...]

    def total_bytes(self) -> int:
        return sum(f.size for f in self.files)


def store_out(section: StoreSection) -> dict[str, Any]:
    return {"kind": KIND, "lineage": section.lineage, "sequence": section.sequence,
            "endpoints": list(section.endpoints), "captures": section.captures, "labels": section.labels,
            "current": section.current,
            "files": [{"name": f.name, "object": f.object, "size": f.size, "sha256": f.sha256} for f in section.files]}


def _fail(path: str, expected: str, got: Any) -> ValueError:
    shown = repr(got) if isinstance(got, (int, str)) and not isinstance(got, bool) else type(got).__name__
    return ValueError(f"{path}: expected {expected}, got {shown[:60]}")


def _count(value: Any, path: str) -> int:
    if value.__class__ is not int or value < 0:
        raise _fail(path, "an integer >= 0", value)
    return value


def store_in(value: Any) -> StoreSection:
    """The section as written by store_out; ValueError naming the field otherwise."""
    if not isinstance(value, Mapping) or set(value) != _KEYS:
        raise _fail("store", f"an object with exactly {sorted(_KEYS)}", value)
    if value["kind"] != KIND:
        raise _fail("store.kind", repr(KIND), value["kind"])
    if not isinstance(value["lineage"], str) or not _LINEAGE.fullmatch(value["lineage"]):
        raise _fail("store.lineage", "12 lowercase hex digits", value["lineage"])
    sequence = _count(value["sequence"], "store.sequence")
    endpoints = value["endpoints"]
    if not isinstance(endpoints, list) or len(endpoints) > MAX_ENDPOINTS or not all(isinstance(e, str) for e in endpoints) \
            or len(set(endpoints)) != len(endpoints):
        raise _fail("store.endpoints", f"an array of at most {MAX_ENDPOINTS} distinct strings", endpoints)
    files: list[StoredFile] = []
    if not isinstance(value["files"], list):
        raise _fail("store.files", "an array", value["files"])
    for i, f in enumerate(value["files"]):
        path = f"store.files[{i}]"
        if not isinstance(f, Mapping) or set(f) != _FILE_KEYS:
            raise _fail(path, f"an object with exactly {sorted(_FILE_KEYS)}", f)
        if not isinstance(f["name"], str) or not _FILE.fullmatch(f["name"]):
            raise _fail(f"{path}.name", "a RocksDB file name NNNNNN.sst or MANIFEST-NNNNNN", f["name"])
        if not isinstance(f["object"], str) or not _OBJECT.fullmatch(f["object"]) or ".." in f["object"]:
            raise _fail(f"{path}.object", "an object name of letters, digits, '.', '_', '-'", f["object"])
        if not isinstance(f["sha256"], str) or not _SHA256.fullmatch(f["sha256"]):
            raise _fail(f"{path}.sha256", "64 lowercase hex digits", f["sha256"])
        files.append(StoredFile(f["name"], f["object"], _count(f["size"], f"{path}.size"), f["sha256"]))
    names = [f.name for f in files]
    if len(set(names)) != len(names):
        raise ValueError("store.files: a file name appears twice")
    manifests = [n for n in names if n.startswith("MANIFEST-")]
    if manifests != [value["current"]]:
        raise _fail("store.current", "the one MANIFEST the files list", value["current"])
    return StoreSection(value["lineage"], sequence, tuple(endpoints), _count(value["captures"], "store.captures"),
                        _count(value["labels"], "store.labels"), value["current"], tuple(files))
