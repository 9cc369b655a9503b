"""The join and counts, case by case and as a property against a pandas batch join."""
from __future__ import annotations

import json
import random
from collections import Counter
from typing import Any

from hypothesis import given, settings
from hypothesis import strategies as st

from pipelines.datum import Datum
from pipelines.join import JoinPolicy
from pipelines.processor import PartitionPipeline, PipelineConfig
from tests.reference import as_dict, batch_counts

T0 = 1_790_000_000_000  # event times in the past of NOW
NOW = T0 + 3_600_000


def capture(i: str, variant: str = "prod", pred: int | None = 1, **extra: Any) -> dict[str, Any]:
    msg: dict[str, Any] = {"inference_id": i, "endpoint": "ep", "variant": variant, "timestamp": T0}
    if pred is not None:
        msg["prediction"] = pred
    msg.update(extra)
    return msg


def label(i: str, value: int, ts: int = T0 + 1000, **extra: Any) -> dict[str, Any]:
    return {"inference_id": i, "label": value, "timestamp": ts, **extra}


class Run:
    """Feeds messages through one PartitionPipeline and sums what it publishes."""

    def __init__(self, policy: JoinPolicy = JoinPolicy(), tick_ms: int = 60_000) -> None:
        self.pipeline = PartitionPipeline(0, PipelineConfig(tick_ms=tick_ms, join=policy))
        self.now = NOW
        self.datums: list[Datum] = []
        self.offset = 0

    def send(self, topic: str, msg: dict[str, Any] | bytes) -> None:
        raw = msg if isinstance(msg, bytes) else json.dumps(msg).encode()
        bad = self.pipeline.submit(topic, raw, self.offset, self.now)
        assert bad is None, bad
        self.offset += 1

    def send_many(self, topic: str, msgs: list[dict[str, Any]]) -> None:
        """One poll batch of one topic (`PartitionPipeline.submit_many`)."""
        rows = [(json.dumps(m).encode(), self.offset + i, None, None) for i, m in enumerate(msgs)]
        bad = self.pipeline.submit_many(topic, rows, self.now)
        assert not bad, bad
        self.offset += len(msgs)

    def cap(self, msg: dict[str, Any]) -> None:
        self.send("captures", msg)

    def lab(self, msg: dict[str, Any]) -> None:
        self.send("labels", msg)

    def totals(self) -> dict[tuple[str, str, str], int]:
        self.datums += self.pipeline.tick(self.now)
        out: Counter[tuple[str, str, str]] = Counter()
        for d in self.datums:
            dims = dict(d.dimensions)
            if d.value is not None and set(dims) == {"EndpointName", "VariantName"}:
                out[(dims["EndpointName"], dims["VariantName"], d.name)] += int(d.value)
        return {k: v for k, v in out.items() if v}

    def endpoint_totals(self, name: str) -> int:
        return sum(int(d.value or 0) for d in self.datums if d.name == name)


def test_label_after_capture() -> None:
    r = Run()
    r.cap(capture("a", pred=1))
    r.cap(capture("b", pred=0))
    r.lab(label("a", 1))
    r.lab(label("b", 1))
    t = r.totals()
    assert t[("ep", "prod", "TruePositives")] == 1
    assert t[("ep", "prod", "FalseNegatives")] == 1
    assert t[("ep", "prod", "Labeled")] == 2
    assert t[("ep", "prod", "Invocations")] == 2


def test_label_before_capture_is_kept() -> None:
    r = Run()
    r.lab(label("a", 0))
    assert r.pipeline.join.pending_labels == 1
    r.cap(capture("a", pred=1))
    assert r.totals()[("ep", "prod", "FalsePositives")] == 1
    assert r.pipeline.join.pending_labels == 0


def test_one_label_judges_production_and_shadow() -> None:
    r = Run()
    r.cap(capture("a", "prod", pred=1))
    r.cap(capture("a", "shadow", pred=0, shadow=True))
    r.lab(label("a", 1))
    r.cap(capture("a", "shadow2", pred=1, shadow=True))  # a late shadow still gets the label
    t = r.totals()
    assert t[("ep", "prod", "TruePositives")] == 1
    assert t[("ep", "shadow", "FalseNegatives")] == 1
    assert t[("ep", "shadow2", "TruePositives")] == 1
    assert t[("ep", "shadow", "ShadowComparisons")] == 1 and ("ep", "shadow", "ShadowAgreements") not in t
    assert t[("ep", "shadow2", "ShadowAgreements")] == 1


def test_shadow_before_production_is_compared() -> None:
    r = Run()
    r.cap(capture("a", "shadow", pred=1, shadow=True))
    r.cap(capture("a", "prod", pred=1))
    t = r.totals()
    assert t[("ep", "shadow", "ShadowAgreements")] == 1 and t[("ep", "shadow", "ShadowComparisons")] == 1


def test_identical_repeat_label_is_a_noop() -> None:
    r = Run()
    r.cap(capture("a", pred=1))
    r.lab(label("a", 1))
    r.lab(label("a", 1))
    assert r.totals()[("ep", "prod", "Labeled")] == 1
    assert r.pipeline.join.stats.repeated_labels == 1


def test_correction_moves_counts() -> None:
    r = Run()
    r.cap(capture("a", pred=1))
    r.lab(label("a", 0, ts=T0 + 1000))
    first = r.totals()
    assert first[("ep", "prod", "FalsePositives")] == 1
    r.lab(label("a", 1, ts=T0 + 2000))
    t = r.totals()
    assert t[("ep", "prod", "TruePositives")] == 1
    assert ("ep", "prod", "FalsePositives") not in t
    assert t[("ep", "prod", "Labeled")] == 1


def test_stale_label_is_ignored() -> None:
    r = Run()
    r.cap(capture("a", pred=1))
    r.lab(label("a", 1, ts=T0 + 2000))
    r.lab(label("a", 0, ts=T0 + 1000))
    assert r.totals()[("ep", "prod", "TruePositives")] == 1
    assert r.pipeline.join.stats.stale_labels == 1


def test_correction_before_capture_keeps_latest() -> None:
    r = Run()
    r.lab(label("a", 0, ts=T0 + 1000))
    r.lab(label("a", 1, ts=T0 + 3000))
    r.lab(label("a", 0, ts=T0 + 2000))  # stale
    r.cap(capture("a", pred=1))
    assert r.totals()[("ep", "prod", "TruePositives")] == 1


def test_duplicate_capture_ignored_and_counted() -> None:
    r = Run()
    r.cap(capture("a", pred=1))
    r.cap(capture("a", pred=1))
    r.lab(label("a", 1))
    t = r.totals()
    assert t[("ep", "prod", "Invocations")] == 1 and t[("ep", "prod", "TruePositives")] == 1
    assert r.pipeline.join.stats.duplicate_captures == 1


def test_error_capture_counts_error_not_outcome() -> None:
    r = Run()
    r.cap(capture("a", pred=None, status=503, latency_ms=3.0))
    r.cap(capture("b", pred=1, error="timeout"))
    r.lab(label("a", 1))
    t = r.totals()
    assert t[("ep", "prod", "Errors")] == 2 and t[("ep", "prod", "Invocations")] == 2
    assert t.get(("ep", "prod", "Labeled"), 0) == 0
    assert r.pipeline.join.pending_labels == 0  # the label found its capture: not an orphan


def test_expired_and_orphans() -> None:
    policy = JoinPolicy(label_ttl_ms=10_000, label_wait_ms=5_000)
    r = Run(policy)
    r.cap(capture("a", pred=1))
    r.cap(capture("b", pred=1))
    r.lab(label("b", 1))
    r.lab(label("z", 1, endpoint="ep"))
    r.now += 6_000
    r.totals()
    assert r.endpoint_totals("OrphanLabels") == 1 and r.endpoint_totals("Expired") == 0
    r.now += 5_000
    r.totals()
    assert r.endpoint_totals("Expired") == 1  # only the unlabelled one
    assert r.pipeline.join.pending_captures == 0


def test_memory_cap_evicts_and_counts() -> None:
    r = Run(JoinPolicy(max_pending=100))
    for i in range(150):
        r.cap(capture(f"id{i}", pred=1))
        r.now += 1000
    assert r.pipeline.join.pending_captures <= 100
    r.totals()
    assert r.endpoint_totals("Evicted") == r.pipeline.join.stats.evicted_captures >= 50
    assert r.endpoint_totals("Evicted") + r.pipeline.join.pending_captures == 150


def test_snapshot_restore_continues_exactly() -> None:
    r = Run()
    r.cap(capture("a", pred=1))
    r.cap(capture("b", pred=0, score=0.1))
    r.lab(label("b", 0))
    snap = r.pipeline.snapshot()
    r.pipeline = PartitionPipeline.restore(snap, r.pipeline.config)
    r.lab(label("a", 1))
    r.lab(label("b", 1, ts=T0 + 5000))
    t = r.totals()
    assert t[("ep", "prod", "TruePositives")] == 1 and t[("ep", "prod", "FalseNegatives")] == 1
    assert t[("ep", "prod", "Labeled")] == 2
    assert r.pipeline.offsets == {"captures": 2, "labels": 5}  # next offset to read


def test_score_only_capture_uses_threshold() -> None:
    pipeline = PartitionPipeline(0, PipelineConfig(score_thresholds={"ep": 0.9}))
    pipeline.submit("captures", json.dumps(capture("a", pred=None, score=0.8)).encode(), 0, NOW)
    pipeline.submit("labels", json.dumps(label("a", 1)).encode(), 0, NOW)
    names = {d.name: d.value for d in pipeline.tick(NOW) if len(d.dimensions) == 2}
    assert names["FalseNegatives"] == 1


def test_segments_and_model_version_dimensions() -> None:
    from pipelines.series import SegmentCap

    pipeline = PartitionPipeline(0, PipelineConfig(), SegmentCap(("mcc",), cap=1))
    for i, mcc in enumerate(["5411", "5411", "7995"]):
        msg = capture(f"i{i}", model_version="v6", attributes={"mcc": mcc, "ignored": "x"})
        pipeline.submit("captures", json.dumps(msg).encode(), i, NOW)
    dims = {(d.dimensions, d.value) for d in pipeline.tick(NOW) if d.name == "Invocations"}
    base = (("EndpointName", "ep"), ("VariantName", "prod"), ("ModelVersion", "v6"))
    ev = base[:2]
    # segment copies under one dimension set, the one with ModelVersion (issue 10, item 11)
    assert dims == {
        (ev, 3.0), (base, 3.0), (base + (("mcc", "5411"),), 2.0), (base + (("mcc", "__other__"),), 1.0),
    }


# -- property: any order, delays, duplicates and corrections give the batch join's counts --

@st.composite
def message_sets(draw: st.DrawFn) -> tuple[list[dict[str, Any]], list[dict[str, Any]], int]:
    n = draw(st.integers(1, 40))
    captures: list[dict[str, Any]] = []
    labels: list[dict[str, Any]] = []
    for i in range(n):
        iid = f"id{i}"
        captures.append(capture(iid, "prod", pred=draw(st.sampled_from([0, 1, None])), status=draw(st.sampled_from([200, 500]))))
        if draw(st.booleans()):
            captures.append(capture(iid, "shadow", pred=None, score=draw(st.floats(0, 1)), shadow=True))
        if draw(st.booleans()):
            captures.append(dict(captures[-1]))  # duplicate capture
        for k in range(draw(st.integers(0, 3))):  # none, one, repeats and corrections
            labels.append(label(iid, draw(st.integers(0, 1)), ts=T0 + 1000 * draw(st.integers(0, 4)) + k))
        if labels and draw(st.booleans()):
            labels.append(dict(labels[-1]))  # identical repeat
    # prediction-less captures need a status >= 400 to be valid
    for c in captures:
        if "prediction" not in c and "score" not in c:
            c["status"] = 500
    return captures, labels, draw(st.integers(0, 2**32))


def interleaved(captures: list[dict[str, Any]], labels: list[dict[str, Any]],
                seed: int) -> tuple[list[tuple[str, dict[str, Any]]], list[dict[str, Any]]]:
    """(one shuffled stream of both topics, the captures the batch join counts)."""
    rng = random.Random(seed)
    stream = [("captures", c) for c in captures] + [("labels", lab) for lab in labels]
    rng.shuffle(stream)
    # labels of one id keep their relative order (one partition), so ties resolve the same way
    label_order = iter(labels)
    stream = [(t, next(label_order) if t == "labels" else m) for t, m in stream]
    # the same capture duplicated: whichever copy comes first is the one counted
    seen: set[tuple[str, str]] = set()
    ordered_caps = []
    for t, m in stream:
        if t == "captures" and (m["inference_id"], m["variant"]) not in seen:
            seen.add((m["inference_id"], m["variant"]))
            ordered_caps.append(m)
    return stream, ordered_caps


@settings(max_examples=200, deadline=None)
@given(message_sets())
def test_any_interleaving_equals_batch_join(data: tuple[list[dict[str, Any]], list[dict[str, Any]], int]) -> None:
    captures, labels, seed = data
    stream, ordered_caps = interleaved(captures, labels, seed)
    r = Run()
    for i, (topic, msg) in enumerate(stream):
        r.send(topic, msg)
        if i % 7 == 0:  # publish ticks in between must not change the totals
            r.datums += r.pipeline.tick(r.now)
    assert r.totals() == as_dict(batch_counts(ordered_caps, labels))


# -- implicit labels (ROLLGUARD_EXPIRY_LABELS): no dispute within the window means class 0 --

def _implicit_run(after_ms: int | None, comparisons: bool = False) -> Run:
    from pipelines.join import ImplicitLabel

    policy = JoinPolicy(label_ttl_ms=100_000, expiry_labels={"ep": ImplicitLabel(0, after_ms)})
    r = Run(policy)
    if comparisons:
        from pipelines.comparison.config import Arm, Comparison, MetricSpec

        c = Comparison("c", "ep", Arm(variant="prod"), Arm(variant="shadow"), (MetricSpec("recall", 0.02),
                       MetricSpec("precision", 0.02)))
        r.pipeline = PartitionPipeline(0, PipelineConfig(join=policy, comparisons=(c,)))
    return r


def test_an_implicit_label_at_label_ttl_counts_the_class_instead_of_expired() -> None:
    r = _implicit_run(None)
    r.cap(capture("a", pred=1))
    r.cap(capture("b", pred=0))
    r.cap(capture("c", pred=1))
    r.lab(label("c", 1))
    r.now += 101_000
    t = r.totals()
    assert t[("ep", "prod", "FalsePositives")] == 1 and t[("ep", "prod", "TrueNegatives")] == 1
    assert t[("ep", "prod", "Labeled")] == 3 and r.endpoint_totals("Expired") == 0
    stamps = {d.timestamp_ms for d in r.datums if d.name == "FalsePositives"}
    assert stamps == {r.now // 60_000 * 60_000}  # stamped at expiry time
    assert r.pipeline.join.stats.implicit_labels == 2 and r.pipeline.join.pending_captures == 0


def test_a_real_label_corrects_a_delayed_implicit_one_until_label_ttl() -> None:
    r = _implicit_run(30_000)
    r.cap(capture("a", pred=1))
    r.cap(capture("b", pred=1))
    r.cap(capture("d", pred=1))
    r.now += 31_000
    first = r.totals()
    assert first[("ep", "prod", "FalsePositives")] == 3 and first[("ep", "prod", "Labeled")] == 3
    r.cap(capture("a", "shadow", pred=0, shadow=True))  # a late shadow capture gets the implicit label too
    assert r.totals()[("ep", "shadow", "TrueNegatives")] == 1
    r.lab(label("a", 1, ts=T0))  # the dispute: older than the implicit stamp, and still it wins
    r.lab(label("b", 0, ts=T0))  # a real negative confirms: nothing moves
    t = r.totals()
    assert t[("ep", "prod", "TruePositives")] == 1 and t[("ep", "prod", "FalsePositives")] == 2
    assert t[("ep", "shadow", "FalseNegatives")] == 1 and ("ep", "shadow", "TrueNegatives") not in t
    assert t[("ep", "prod", "Labeled")] == 3
    stats = r.pipeline.join.stats
    assert (stats.implicit_labels, stats.implicit_corrections, stats.stale_labels) == (3, 1, 0)
    r.lab(label("a", 0, ts=T0 - 1))  # now a real label holds: an older one is stale again
    assert r.pipeline.join.stats.stale_labels == 1
    r.now += 70_000
    r.totals()
    assert r.endpoint_totals("Expired") == 0 and r.pipeline.join.pending_captures == 0


def test_implicit_labels_move_the_comparison_counts_and_survive_a_checkpoint() -> None:
    from service import checkpoint_format

    with_implicit, real_only = _implicit_run(30_000, comparisons=True), _implicit_run(None, comparisons=True)
    for r in (with_implicit, real_only):
        for i in range(20):
            r.cap(capture(f"i{i}", pred=i % 2))
            r.cap(capture(f"i{i}", "shadow", pred=(i // 2) % 2, shadow=True))
    with_implicit.now += 31_000
    with_implicit.totals()
    assert with_implicit.pipeline.join.stats.implicit_labels == 20
    snap = checkpoint_format.decode(checkpoint_format.encode({"pipeline": with_implicit.pipeline.snapshot(), "unsent": {}}), "x")
    with_implicit.pipeline = PartitionPipeline.restore(snap["pipeline"], with_implicit.pipeline.config)
    assert with_implicit.pipeline.join.implicit_upto == {"ep": (NOW + 31_000 - 30_000) // 1000}
    for r in (with_implicit, real_only):
        for i in range(0, 20, 3):
            r.lab(label(f"i{i}", 1))  # disputes: every other id stays implicitly 0 (or unlabelled)
    for i in range(20):
        if i % 3:
            real_only.lab(label(f"i{i}", 0))
    assert with_implicit.totals() == real_only.totals()
    assert with_implicit.pipeline.comparison_tallies()["c"].to_plain() == real_only.pipeline.comparison_tallies()["c"].to_plain()


def test_ids_that_look_like_uuids_with_spaces_are_not_one_id() -> None:
    """`bytes.fromhex` skips spaces: two such ids once shared the 15 bytes it made of them."""
    a, b = "ab cd ef-0123-4567-89ab-cdef01234567", "abcd  ef-0123-4567-89ab-cdef01234567"
    r = Run()
    r.cap(capture(a, pred=1))
    r.lab(label(b, 1))  # no capture of its own: it waits, and joins nothing
    t = r.totals()
    assert t[("ep", "prod", "Invocations")] == 1 and ("ep", "prod", "TruePositives") not in t
    assert r.pipeline.join.pending_labels == 1
