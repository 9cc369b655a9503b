"""`ROLLGUARD_STATE_STORE=disk`: one RocksDB per partition under this instance's own local
directory, restored from and shipped to the state location (service/state/ship.py).

Each process takes a directory of its own under ROLLGUARD_LOCAL_STATE_DIR (locked while it runs),
so two instances on one machine never share a database; directories of processes that are gone
are removed at start-up. Local files are a cache: a partition is always restored from its last
checkpoint in the state location, so a crash can leave nothing behind that is trusted.
"""
from __future__ import annotations

import fcntl
import logging
import os
import shutil
import time
import uuid
from collections.abc import Callable
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path
from typing import Any

from rocksdict import Cache

from pipelines.join import capture_arrival, label_arrival
from pipelines.pending import PendingStore
from service.state import Progress
from service.state.manifest import StoreSection
from service.state.rocks import DiskStore
from service.state.ship import LocationShipper, restore, store_prefix, sweep

log = logging.getLogger("rollguard")
LOCK = ".lock"


def _claim(root: Path) -> tuple[Path, int]:
    """A new locked directory for this process under `root`; others' unlocked ones are removed."""
    root.mkdir(parents=True, exist_ok=True)
    for other in root.iterdir():
        if not other.is_dir():
            continue
        try:
            fd = os.open(other / LOCK, os.O_RDWR)
        except OSError:
            fd = -1
        try:
            if fd >= 0:
                fcntl.flock(fd, fcntl.LOCK_EX | fcntl.LOCK_NB)
            shutil.rmtree(other, ignore_errors=True)  # its process is gone
        except OSError:
            pass  # locked: a live process owns it
        finally:
            if fd >= 0:
                os.close(fd)
    mine = root / f"{os.getpid()}-{uuid.uuid4().hex[:8]}"
    mine.mkdir()
    fd = os.open(mine / LOCK, os.O_RDWR | os.O_CREAT, 0o600)
    fcntl.flock(fd, fcntl.LOCK_EX | fcntl.LOCK_NB)
    return mine, fd


class DiskStores:
    def __init__(self, location: Any, local_root: str | Path, checkpoint_name: Callable[[int], str],
                 cache_mb: int = 256) -> None:
        self.location, self.checkpoint_name = location, checkpoint_name
        self.directory, self._lock_fd = _claim(Path(local_root))
        self.cache = Cache(cache_mb << 20)
        self.executor = ThreadPoolExecutor(1, thread_name_prefix="rollguard-state")
        self.stores: dict[int, DiskStore] = {}
        self.last_restore: dict[str, float] = {}  # partition, bytes, seconds of the last restore

    kind = "disk"

    def _open(self, partition: int, lineage: str, section: StoreSection | None, path: Path) -> DiskStore:
        prefix = store_prefix(self.checkpoint_name(partition))
        shipper = LocationShipper(self.location, prefix, lineage, self.directory, section)
        store = DiskStore(path, lineage=lineage, section=section, cache=self.cache, executor=self.executor,
                          capture_arrival=capture_arrival, label_arrival=label_arrival, shipper=shipper)
        self.stores[partition] = store
        return store

    def _fresh_path(self, partition: int, lineage: str) -> Path:
        old = self.stores.pop(partition, None)
        if old is not None:
            self.drop(old)
        return self.directory / f"p{partition}-{lineage}"

    def new(self, partition: int) -> PendingStore:
        lineage = uuid.uuid4().hex[:12]
        sweep(self.location, store_prefix(self.checkpoint_name(partition)), None)
        return self._open(partition, lineage, None, self._fresh_path(partition, lineage))

    def restore(self, partition: int, section: StoreSection | None, progress: Progress | None = None) -> PendingStore:
        if section is None:
            return self.new(partition)
        lineage = uuid.uuid4().hex[:12]
        path = self._fresh_path(partition, lineage)
        prefix = store_prefix(self.checkpoint_name(partition))
        started = time.monotonic()
        try:
            restore(self.location, prefix, section, path, progress)
        except BaseException:
            shutil.rmtree(path, ignore_errors=True)
            raise
        sweep(self.location, prefix, section)
        self.last_restore = {"partition": partition, "bytes": section.total_bytes(),
                             "seconds": round(time.monotonic() - started, 3)}
        return self._open(partition, lineage, section, path)

    def drop(self, store: PendingStore) -> None:
        if isinstance(store, DiskStore):
            for p, s in list(self.stores.items()):
                if s is store:
                    del self.stores[p]
            store.close()
            shutil.rmtree(store.path, ignore_errors=True)

    def shipped_bytes(self) -> int:
        return sum(s.shipper.shipped_bytes for s in self.stores.values())  # type: ignore[attr-defined]

    def close(self) -> None:
        """Close every store and remove this process's directory (idempotent)."""
        for store in list(self.stores.values()):
            self.drop(store)
        self.executor.shutdown(wait=True)
        if self._lock_fd >= 0:
            shutil.rmtree(self.directory, ignore_errors=True)
            os.close(self._lock_fd)
            self._lock_fd = -1
