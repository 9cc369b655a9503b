"""The daemon judges comparisons from every partition's counts in the state location: the same
Verdict whether one instance owns all partitions or each of two owns one."""
from __future__ import annotations

import json
import random
from typing import Any

from pipelines import metrics
from pipelines.clock import MockedClock
from pipelines.datum import Datum
from pipelines.comparison.config import Arm, Comparison, MetricSpec
from service import verdicts
from service.checkpoint import LocalDirStore
from service.daemon import Daemon
from service.settings import load_settings
from tests.unit.service.test_daemon import NOW, TP, DeadLetters, FakeConsumer, FakePublisher, Rec, assign

COMPARISON = Comparison("v6-vs-v5", "ep", Arm(variant="v5"), Arm(variant="v6-shadow"),
                        (MetricSpec("recall", 0.02), MetricSpec("error_rate", 0.01)), segments=("cat",))


def _daemon(store: LocalDirStore, clock: MockedClock, pub: FakePublisher) -> Daemon:
    settings = load_settings(segment_attributes="cat", segment_values="cat=a|b", max_buffered_datums=10_000)
    d = Daemon(settings, consumer=FakeConsumer(), dead_letters=DeadLetters(),  # type: ignore[arg-type]
               publisher=pub, store=store, clock=clock, comparisons=(COMPARISON,))
    pub.on_sent = d.on_sent
    return d


def _records(n: int, seed: int) -> dict[int, list[tuple[str, Rec]]]:
    """Shadow traffic over two partitions; the shadow model misses half the positives of cat=a."""
    rng = random.Random(seed)
    out: dict[int, list[tuple[str, Rec]]] = {0: [], 1: []}
    offsets = {(t, p): 0 for t in ("captures", "labels") for p in (0, 1)}
    for i in range(n):
        p, cat, y = i % 2, rng.choice("ab"), int(rng.random() < 0.5)
        for variant, shadow in (("v5", False), ("v6-shadow", True)):
            pred = y if not (shadow and cat == "a" and y == 1 and rng.random() < 0.5) else 0
            msg = {"inference_id": f"id{i}", "endpoint": "ep", "variant": variant, "shadow": shadow,
                   "timestamp": NOW + i * 100, "prediction": pred, "attributes": {"cat": cat}}
            out[p].append(("captures", Rec(offsets[("captures", p)], json.dumps(msg).encode(), None, [], NOW)))
            offsets[("captures", p)] += 1
        label = {"inference_id": f"id{i}", "endpoint": "ep", "label": y, "timestamp": NOW + i * 100 + 50}
        out[p].append(("labels", Rec(offsets[("labels", p)], json.dumps(label).encode(), None, [], NOW)))
        offsets[("labels", p)] += 1
    return out


def _feed(d: Daemon, clock: MockedClock, records: list[tuple[str, Rec]], partition: int) -> None:
    for topic, rec in records:
        clock.advance(10)
        d.process({TP(topic, partition): [rec]})


def _verdicts(pub: FakePublisher) -> list[Datum]:
    return [d for batch, datums in pub.queue.items() if batch.startswith("verdicts-") for d in datums]


def test_one_instance_or_two_give_the_same_verdict(tmp_path: Any) -> None:
    records = _records(1200, seed=3)
    # one instance owning both partitions
    clock, pub = MockedClock(NOW), FakePublisher()
    one = _daemon(LocalDirStore(tmp_path / "one"), clock, pub)
    assign(one, [TP(t, p) for t in ("captures", "labels") for p in (0, 1)])
    one.ready.set()
    for p in (0, 1):
        _feed(one, clock, records[p], p)
    one.tick()
    alone = _verdicts(pub)[-1]
    # two instances, one partition each, sharing the state location
    clock2, shared = MockedClock(NOW), LocalDirStore(tmp_path / "two")
    pubs = [FakePublisher(), FakePublisher()]
    two = [_daemon(shared, clock2, pubs[p]) for p in (0, 1)]
    for p, d in enumerate(two):
        assign(d, [TP("captures", p), TP("labels", p)])
        d.ready.set()
        _feed(d, clock2, records[p], p)
    for d in two:
        d.tick()
    two[0].tick()  # the first one now also reads the second one's counts
    assert alone.name == metrics.VERDICT and alone.value == 2.0  # FAIL
    assert dict(alone.dimensions) == {"EndpointName": "ep", "Comparison": "v6-vs-v5"}
    assert _verdicts(pubs[0])[-1].value == _verdicts(pubs[1])[-1].value == alone.value
    evidence = verdicts.gather(shared, two[0]._verdict_prefix, [COMPARISON])
    assert evidence.partitions == 2
    both = verdicts.gather(LocalDirStore(tmp_path / "one"), one._verdict_prefix, [COMPARISON])
    assert evidence.tally(COMPARISON).cells == both.tally(COMPARISON).cells
    status = one.status()["comparisons"][0]
    assert status["state"] == "FAIL"
    assert status["deciding"]["metric"] == "recall"


def test_no_verdict_while_not_ready_and_a_restart_resumes_the_counts(tmp_path: Any) -> None:
    records = _records(400, seed=4)
    store, clock, pub = LocalDirStore(tmp_path), MockedClock(NOW), FakePublisher()
    d = _daemon(store, clock, pub)
    assign(d, [TP("captures", 0), TP("labels", 0)])
    d.ready.clear()
    _feed(d, clock, records[0], 0)
    d.tick()
    assert _verdicts(pub) == []  # not ready: the fail-safe alarm reads the silence
    before = verdicts.gather(store, d._verdict_prefix, [COMPARISON]).tally(COMPARISON).cells
    again = _daemon(store, clock, FakePublisher())
    assign(again, [TP("captures", 0), TP("labels", 0)])
    again.tick()
    assert verdicts.gather(store, again._verdict_prefix, [COMPARISON]).tally(COMPARISON).cells == before
    assert before  # something was counted
