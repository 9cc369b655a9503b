"""Where the join keeps what waits: captures for their label, labels for their capture.

`pipelines.join.JoinState` reads and writes its pending entries only through `PendingTable`,
one table for captures and one for labels, each keyed by (endpoint, inference key) and ordered
by arrival so expiry takes the oldest without a scan. Two stores implement it:

- `MemoryStore` here: a dict per endpoint (dicts keep insertion order, which is arrival
  order); the checkpoint then holds every pending entry (`inline`).
- `service.state.DiskStore`: RocksDB on local disk with an in-memory front for the latest
  changes (written into RocksDB as the tick runs), shipped incrementally to the state location
  at each checkpoint (not `inline`).

Values are the join's packed ints (a capture entry may be a tuple of them); a table learns an
entry's arrival second from the `arrival` function it is given, never from its own layout.
"""
from __future__ import annotations

from collections.abc import Callable, Iterable, Iterator
from typing import Generic, Protocol, TypeVar

Key = str | bytes
Endpoint = str | None
V = TypeVar("V")


class PendingTable(Protocol[V]):
    """Pending entries by (endpoint, key), oldest arrival first per endpoint."""

    def __len__(self) -> int: ...

    def endpoints(self) -> list[Endpoint]:
        """Endpoints that hold (or held) entries, in first-seen order."""
        ...

    def get(self, endpoint: Endpoint, key: Key) -> V | None: ...

    def add(self, endpoint: Endpoint, key: Key, value: V) -> None:
        """A new key (not held yet), arriving now: it goes to the back of its endpoint's order."""
        ...

    def replace(self, endpoint: Endpoint, key: Key, value: V) -> None:
        """A held key's new value; its place in the arrival order does not change."""
        ...

    def remove(self, endpoint: Endpoint, key: Key) -> V | None:
        """Take a key out; its value, or None if it was not held."""
        ...

    def pop_oldest(self, endpoint: Endpoint, upto_s: int | None, limit: int = -1) -> list[tuple[Key, V]]:
        """Take out the oldest entries of `endpoint` whose arrival is <= `upto_s` (any when None),
        at most `limit` of them (all when negative), oldest first."""
        ...

    def scan(self, endpoint: Endpoint, after_s: int, upto_s: int) -> list[tuple[Key, V]]:
        """The entries of `endpoint` that arrived in (after_s, upto_s], oldest first; kept."""
        ...

    def oldest_s(self, endpoint: Endpoint) -> int | None:
        """Arrival second of the endpoint's oldest entry, None when it holds none."""
        ...

    def rewrite(self, endpoint: Endpoint, fn: Callable[[V], V]) -> None:
        """Replace every value of `endpoint` by fn(value) (rare: at restore)."""
        ...


class PendingStore(Protocol):
    """The two tables of one partition's join."""

    @property
    def captures(self) -> PendingTable[int | tuple[int, ...]]: ...

    @property
    def labels(self) -> PendingTable[int]: ...

    @property
    def inline(self) -> bool:
        """True when the partition's checkpoint must hold the pending entries itself."""
        ...

    def prefetch(self, captures: Iterable[tuple[Endpoint, Key]], labels: Iterable[tuple[Endpoint, Key]]) -> None:
        """A hint: these keys of each table are about to be read (a store on disk reads them in
        one go). Changes nothing a read returns."""
        ...


class MemoryTable(Generic[V]):
    """A dict per endpoint in arrival order (Python dicts keep insertion order)."""

    def __init__(self, arrival: Callable[[V], int]) -> None:
        self.arrival = arrival
        self.by_endpoint: dict[Endpoint, dict[Key, V]] = {}
        self._n = 0

    def __len__(self) -> int:
        return self._n

    def endpoints(self) -> list[Endpoint]:
        return list(self.by_endpoint)

    def get(self, endpoint: Endpoint, key: Key) -> V | None:
        d = self.by_endpoint.get(endpoint)
        return d.get(key) if d else None

    def add(self, endpoint: Endpoint, key: Key, value: V) -> None:
        self.by_endpoint.setdefault(endpoint, {})[key] = value
        self._n += 1

    def replace(self, endpoint: Endpoint, key: Key, value: V) -> None:
        self.by_endpoint[endpoint][key] = value

    def remove(self, endpoint: Endpoint, key: Key) -> V | None:
        d = self.by_endpoint.get(endpoint)
        value = d.pop(key, None) if d else None
        if value is not None:
            self._n -= 1
        return value

    def pop_oldest(self, endpoint: Endpoint, upto_s: int | None, limit: int = -1) -> list[tuple[Key, V]]:
        d = self.by_endpoint.get(endpoint)
        if not d:
            return []
        # one pass from the front, then the deletions: popping the front repeatedly would
        # rescan the deleted slots each time
        gone: list[tuple[Key, V]] = []
        arrival = self.arrival
        for key, value in d.items():
            if len(gone) == limit or (upto_s is not None and arrival(value) > upto_s):
                break
            gone.append((key, value))
        for key, _ in gone:
            del d[key]
        self._n -= len(gone)
        return gone

    def scan(self, endpoint: Endpoint, after_s: int, upto_s: int) -> list[tuple[Key, V]]:
        # linear from the front: fine for the capped memory store; the disk store seeks its index
        out: list[tuple[Key, V]] = []
        arrival = self.arrival
        for key, value in (self.by_endpoint.get(endpoint) or {}).items():
            s = arrival(value)
            if s > upto_s:
                break
            if s > after_s:
                out.append((key, value))
        return out

    def oldest_s(self, endpoint: Endpoint) -> int | None:
        d = self.by_endpoint.get(endpoint)
        return self.arrival(next(iter(d.values()))) if d else None

    def rewrite(self, endpoint: Endpoint, fn: Callable[[V], V]) -> None:
        d = self.by_endpoint.get(endpoint)
        if d:
            for key, value in d.items():
                d[key] = fn(value)

    def load(self, by_endpoint: dict[Endpoint, dict[Key, V]]) -> None:
        """Take over restored dicts (arrival order kept)."""
        self.by_endpoint = {ep: dict(d) for ep, d in by_endpoint.items()}
        self._n = sum(len(d) for d in self.by_endpoint.values())

    def iter_all(self) -> Iterator[tuple[Endpoint, Key, V]]:
        for ep, d in self.by_endpoint.items():
            for key, value in d.items():
                yield ep, key, value


class MemoryStore:
    """Both tables in memory; the checkpoint holds them (`inline`)."""

    inline = True

    def __init__(self, capture_arrival: Callable[[int | tuple[int, ...]], int], label_arrival: Callable[[int], int]) -> None:
        self.captures: MemoryTable[int | tuple[int, ...]] = MemoryTable(capture_arrival)
        self.labels: MemoryTable[int] = MemoryTable(label_arrival)

    def prefetch(self, captures: Iterable[tuple[Endpoint, Key]], labels: Iterable[tuple[Endpoint, Key]]) -> None:
        """Nothing to read ahead in memory."""
