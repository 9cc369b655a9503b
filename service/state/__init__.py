"""Where a partition's pending joins live: `memory` (in the checkpoint itself) or `disk`
(RocksDB per partition on local disk, shipped incrementally to the state location).

`StateStores` is what the daemon asks for a partition's store: a new one, or one restored from
a checkpoint's `store` section. service/state/stores.py has the disk implementation.
"""
from __future__ import annotations

from collections.abc import Callable
from typing import Any, Protocol

from pipelines.join import memory_store
from pipelines.pending import PendingStore
from service.state.manifest import StoreSection

Progress = Callable[[int], None]


class StateStores(Protocol):
    kind: str

    def new(self, partition: int) -> PendingStore: ...

    def restore(self, partition: int, section: StoreSection | None, progress: Progress | None = None) -> PendingStore:
        """The store a checkpoint describes (`section` None: its entries, if any, are inline)."""
        ...

    def drop(self, store: PendingStore) -> None:
        """The partition left this instance: free what its store holds locally."""
        ...

    def close(self) -> None: ...


class MemoryStores:
    """`ROLLGUARD_STATE_STORE=memory`: pending joins in memory, written whole in each checkpoint."""

    kind = "memory"

    def new(self, partition: int) -> PendingStore:
        return memory_store()

    def restore(self, partition: int, section: StoreSection | None, progress: Progress | None = None) -> PendingStore:
        if section is not None:
            raise ValueError(f"partition {partition}: its checkpoint keeps the pending joins in a disk store "
                             f"({len(section.files)} files); run with ROLLGUARD_STATE_STORE=disk")
        return memory_store()

    def drop(self, store: PendingStore) -> None:
        pass

    def close(self) -> None:
        pass


def checkpoint_name(group_id: str, captures_topic: str, labels_topic: str, partition: int) -> str:
    return f"{group_id}.{captures_topic}.{labels_topic}.p{partition}.ckpt"


def open_state_stores(settings: Any, location: Any) -> StateStores:
    """The stores `ROLLGUARD_STATE_STORE` names, shipping to `location` (the checkpoint store)."""
    if settings.state_store == "memory":
        return MemoryStores()
    from service.state.stores import DiskStores

    s = settings
    return DiskStores(location, s.local_state_dir,
                      lambda p: checkpoint_name(s.group_id, s.captures_topic, s.labels_topic, p), s.state_cache_mb)
