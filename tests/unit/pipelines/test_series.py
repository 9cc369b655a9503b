"""Series: the dimension sets counts are published under, and the segment mapping."""
from __future__ import annotations

import json

from pipelines.processor import PartitionPipeline, PipelineConfig
from pipelines.series import OTHER, SegmentCap, dimension_sets

NOW = 1_790_000_000_000
MCC = "merchant_category"


def mapped(cap: SegmentCap, *values: str) -> list[str]:
    return [cap.map(((MCC, v),))[0][1] for v in values]


def test_an_allow_list_maps_values_the_same_on_every_instance_whatever_the_order() -> None:
    """Issue 10, item 3: first come per instance made 5411 a segment on one and __other__ on another."""
    allowed = {MCC: ("5411", "5812", "café")}
    one = SegmentCap((MCC,), cap=2, allowed=allowed)
    two = SegmentCap((MCC,), cap=2, allowed=allowed)
    assert mapped(one, "7995", "1234", "5411", "5812") == [OTHER, OTHER, "5411", "5812"]
    assert mapped(two, "5812", "5411", "9999", "7995") == ["5812", "5411", OTHER, OTHER]
    assert mapped(SegmentCap((MCC,), cap=2, allowed=allowed), "café") == ["caf%C3%A9"]  # listed as written
    assert one.overflowed == 2 and one.snapshot() == {}  # nothing to remember: the settings say it all


def test_first_come_restore_keeps_exactly_the_admitted_set() -> None:
    """A restored value keeps its own series, even when the instance admitted another value meanwhile."""
    before = SegmentCap((MCC,), cap=2)
    assert mapped(before, "5411", "5812", "7995") == ["5411", "5812", OTHER]
    snapshot = json.loads(json.dumps(before.snapshot()))
    after = SegmentCap((MCC,), cap=2)
    assert mapped(after, "1234") == ["1234"]  # another partition's traffic came first
    after.restore(snapshot)
    assert mapped(after, "5411", "5812", "1234", "7995") == ["5411", "5812", "1234", OTHER]
    again = SegmentCap((MCC,), cap=2)
    again.restore(snapshot)
    again.restore(snapshot)  # every partition's checkpoint lists the same set
    assert again.snapshot() == {MCC: ["5411", "5812"]}
    assert mapped(again, "7995") == [OTHER]


def test_the_first_come_mapping_survives_a_restart_through_the_checkpoint() -> None:
    def capture(i: int, mcc: str) -> bytes:
        return json.dumps({"inference_id": f"i{i}", "endpoint": "ep", "variant": "v", "timestamp": NOW - 1000,
                           "prediction": 1, "attributes": {MCC: mcc}}).encode()

    config = PipelineConfig()
    p = PartitionPipeline(0, config, SegmentCap((MCC,), cap=1))
    p.submit("captures", capture(0, "7995"), 0, NOW)
    restored = PartitionPipeline.restore(p.snapshot(), config, SegmentCap((MCC,), cap=1))
    restored.submit("captures", capture(1, "5411"), 1, NOW)
    restored.submit("captures", capture(2, "7995"), 2, NOW)
    segments = {d.dimensions[-1][1]: d.value for d in restored.tick(NOW) if d.name == "Invocations"
                and d.dimensions[-1][0] == MCC}
    assert segments == {"7995": 2.0, OTHER: 1.0}


def test_segment_copies_are_published_under_one_dimension_set() -> None:
    """Issue 10, item 11: with and without ModelVersion doubled the segment metrics."""
    ev = (("EndpointName", "ep"), ("VariantName", "v"))
    mv = ev + (("ModelVersion", "m"),)
    segs = ((MCC, "5411"), ("country", "de"))
    assert dimension_sets(("ep", "v", "m", segs)) == [ev, mv, mv + (segs[0],), mv + (segs[1],)]
    assert dimension_sets(("ep", "v", None, segs)) == [ev, ev + (segs[0],), ev + (segs[1],)]
    assert dimension_sets(("ep", "v", "m", segs), segments=False) == [ev, mv]


def test_segment_gauges_are_off_unless_asked_for() -> None:
    from pipelines.window import SlidingWindow, gauge_datums

    msg = {"inference_id": "i", "endpoint": "ep", "variant": "v", "timestamp": NOW - 1000, "prediction": 1,
           "latency_ms": 3.0, "attributes": {MCC: "5411"}}
    gauge_dims = {}
    for on in (False, True):
        window = SlidingWindow(900_000, 60_000, 1)
        p = PartitionPipeline(0, PipelineConfig(segment_gauges=on), SegmentCap((MCC,), allowed={MCC: ("5411",)}), window)
        p.submit("captures", json.dumps(msg).encode(), 0, NOW)
        assert any(len(d.dimensions) == 3 for d in p.tick(NOW) if d.name == "Invocations")  # counts: always
        gauge_dims[on] = {d.dimensions for d in gauge_datums(window, NOW, 60_000)}
    ev = (("EndpointName", "ep"), ("VariantName", "v"))
    assert gauge_dims == {False: {ev}, True: {ev, ev + ((MCC, "5411"),)}}


def test_join_health_counts_are_published_per_variant_not_per_segment() -> None:
    from pipelines.join import JoinPolicy

    config = PipelineConfig(join=JoinPolicy(label_ttl_ms=60_000))
    p = PartitionPipeline(0, config, SegmentCap((MCC,), allowed={MCC: ("5411",)}))
    msg = {"inference_id": "i", "endpoint": "ep", "variant": "v", "timestamp": NOW - 1000, "prediction": 1,
           "attributes": {MCC: "5411"}}
    p.submit("captures", json.dumps(msg).encode(), 0, NOW)
    datums = p.tick(NOW) + p.tick(NOW + 120_000)
    assert {(d.name, len(d.dimensions)) for d in datums} == {("Invocations", 2), ("Invocations", 3), ("Expired", 2)}
