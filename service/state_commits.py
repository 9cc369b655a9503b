"""The daemon's view of disk-store checkpoints: one written in the background (`Commit`), the
restore of a partition (progress for /readyz and /metrics), and the `state` status section."""
from __future__ import annotations

from collections.abc import Iterable, Iterator
from concurrent.futures import Future
from contextlib import contextmanager
from dataclasses import dataclass
from typing import Any


@dataclass
class Commit:
    """A checkpoint in the background, and what is released once it is written."""

    job: Future[Any]
    batches: list[str]  # held datums the checkpoint lists: published once it is written
    offsets: dict[str, int]  # the offsets it holds: committed once it is written
    unsent: set[str]  # the batches it lists as unsent (the sent-ledger keeps only those)

    def error(self) -> str | None:
        """None once written; else why not, in one line."""
        try:
            self.job.result()
        except Exception as ex:  # noqa: BLE001 - the daemon holds and retries
            return f"{type(ex).__name__}: {ex}".splitlines()[0]
        return None


@contextmanager
def restore_progress(restoring: dict[int, tuple[int, int]], partition: int, section: Any) -> Iterator[None]:
    """While the block runs, `restoring[partition]` is (bytes done, bytes in all)."""
    if section is None:
        yield
        return
    restoring[partition] = (0, section.total_bytes())
    try:
        yield
    finally:
        restoring.pop(partition, None)


def state_status(state: Any, restoring: dict[int, tuple[int, int]], stores: Iterable[Any]) -> dict[str, Any]:
    """The `state` section of /v1/status: which store, restores in progress, shipping."""
    stores = list(stores)
    return {
        "store": getattr(state, "kind", "memory"),
        "restoring": {str(p): {"done_bytes": d, "total_bytes": t} for p, (d, t) in sorted(restoring.items())},
        "last_restore": dict(getattr(state, "last_restore", {}) or {}),
        "shipped_bytes": sum(getattr(getattr(s, "shipper", None), "shipped_bytes", 0) for s in stores),
        "front_entries": sum(len(getattr(s, "front", ())) for s in stores),
        "last_commit_seconds": max((getattr(s, "last_commit_s", 0.0) for s in stores), default=0.0),
    }
