"""The daemon's bookkeeping with the disk store: checkpoints written in the background release
their datums only once written, a partition restores on another instance (and says so on
/readyz meanwhile), a state location that refuses writes holds the daemon until it takes them."""
from __future__ import annotations

import json
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest

from pipelines.clock import MockedClock
from service.checkpoint import decode
from service.daemon import Daemon
from service.settings import load_settings
from service.state.stores import DiskStores
from tests.unit.service.test_daemon import NOW, TP, DeadLetters, FakeConsumer, FakePublisher, Rec, Store, assign, capture

CKPT = "rollguard.captures.labels.p0.ckpt"


class Location(Store):
    """The fake checkpoint store, listing and deleting too, and able to fail or watch file reads."""

    def __init__(self) -> None:
        super().__init__()
        self.refuse: str | None = None
        self.on_read: Any = None

    def save(self, name: str, data: bytes) -> None:
        if self.refuse is not None:
            raise OSError(28, self.refuse)
        super().save(name, data)

    def load(self, name: str) -> bytes | None:
        if self.on_read is not None and ".store." in name:
            self.on_read(name)
        return super().load(name)

    def names(self, prefix: str) -> list[str]:
        return sorted(n for n in self.files if n.startswith(prefix))

    def delete(self, name: str) -> None:
        self.files.pop(name, None)


@pytest.fixture
def site(tmp_path: Path) -> Iterator[Any]:
    made: list[Daemon] = []

    def daemon(location: Location, publisher: FakePublisher | None = None) -> Daemon:
        pub = publisher or FakePublisher()
        stores = DiskStores(location, tmp_path / f"local{len(made)}", lambda p: f"rollguard.captures.labels.p{p}.ckpt", 8)
        d = Daemon(load_settings(max_buffered_datums=100), consumer=FakeConsumer(), dead_letters=DeadLetters(),  # type: ignore[arg-type]
                   publisher=pub, store=location, clock=MockedClock(NOW), state=stores)
        pub.on_sent = d.on_sent
        made.append(d)
        return d

    yield daemon
    for d in made:
        d.state.close()


def label(i: int, offset: int, value: int = 1) -> Rec:
    msg = {"inference_id": f"id{i}", "label": value, "timestamp": NOW - 500}
    return Rec(offset, json.dumps(msg).encode(), f"id{i}".encode(), [], NOW)


def test_datums_are_published_once_the_background_checkpoint_is_written(site: Any) -> None:
    location, pub = Location(), FakePublisher()
    d = site(location, pub)
    assign(d, [TP("captures", 0), TP("labels", 0)])
    d.process({TP("captures", 0): [capture(1, 0), capture(2, 1)]})
    d.tick()
    assert not pub.queue and pub.wakes == 1
    d._settle(wait=True)  # what the loop does once the background write is done
    state = decode(location.files[CKPT], "p0")
    assert list(state["unsent"]) == list(pub.queue) and pub.queue
    assert pub.wakes == 2  # released: the publisher is told to send now
    assert state["pipeline"]["join"]["captures"] == {}  # the pending joins are in the store's files
    assert state["store"].captures == 2 and all(f.object in location.files for f in state["store"].files)
    assert d.slots[0].checkpointed == {"captures": 2}
    pub.flush()
    assert json.loads(location.files[CKPT + ".sent"]) == list(state["unsent"])


def test_a_partition_moves_with_its_disk_store_and_readyz_says_it_restores(site: Any) -> None:
    location = Location()
    first = site(location)
    assign(first, [TP("captures", 0), TP("labels", 0)])
    first.process({TP("captures", 0): [capture(i, i) for i in range(50)]})
    first.tick()
    first.close()
    seen: list[tuple[bool, str]] = []
    second = site(location)
    location.on_read = lambda name: seen.append(second.readiness())
    assign(second, [TP("captures", 0), TP("labels", 0)])
    assert seen and not seen[0][0] and seen[0][1].startswith("restoring partition 0 (0.0 of ")
    assert second.readiness() == (True, "ready") and second.status()["state"]["restoring"] == {}
    assert second.slots[0].pipeline.join.pending_captures == 50
    second.process({TP("labels", 0): [label(i, i) for i in range(50)]})
    second.tick()
    second._settle(wait=True)
    datums = [d for batch in second.publisher.queue.values() for d in batch]  # type: ignore[attr-defined]
    assert sum(d.value for d in datums if d.name == "TruePositives" and len(d.dimensions) == 2) == 50


def test_a_state_location_that_refuses_holds_counts_and_offsets_until_it_takes_them(site: Any) -> None:
    location, pub = Location(), FakePublisher()
    d = site(location, pub)
    assign(d, [TP("captures", 0), TP("labels", 0)])
    d.process({TP("captures", 0): [capture(1, 0)]})
    d.tick()
    d._settle(wait=True)
    pub.flush()
    location.refuse = "No space left on device"
    d.process({TP("captures", 0): [capture(2, 1)]})
    d.tick()
    d._settle(wait=True)
    ready, why = d.readiness()
    assert not ready and "No space left on device" in why and not pub.queue
    assert d.slots[0].checkpointed == {"captures": 1} and d.stats.checkpoint_failures == 1
    location.refuse = None
    d.tick()
    d._settle(wait=True)
    assert d.readiness()[0] and d.slots[0].checkpointed == {"captures": 2}
    assert len(pub.queue) == 1  # the held tick's batch, exactly once (the retry tick had no counts)


def test_metrics_show_the_store_and_restores(site: Any) -> None:
    from service.http_api.prometheus import render_prometheus

    location = Location()
    d = site(location)
    assign(d, [TP("captures", 0)])
    d.process({TP("captures", 0): [capture(1, 0)]})
    d.tick()
    d._settle(wait=True)
    d.restoring[3] = (5_000_000, 20_000_000)
    assert d.readiness() == (False, "restoring partition 3 (5.0 of 20.0 MB)")
    text = render_prometheus(d.status())
    assert "rollguard_restoring_partitions 1.0" in text
    assert 'rollguard_restore_done_bytes{partition="3"} 5e+06' in text
    assert "rollguard_state_front_entries 0.0" in text and "rollguard_state_shipped_bytes" in text
