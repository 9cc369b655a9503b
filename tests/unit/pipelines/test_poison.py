"""Records that once crashed the daemon on every replay, and the name caps: the pure core's side."""
from __future__ import annotations

import json
from collections.abc import Hashable, Iterable, Sequence
from typing import Any

import pytest

from pipelines.parse import MAX_LATENCY_MS, parse_capture
from pipelines.processor import PROCESSING_FAILED, PartitionPipeline, PipelineConfig
from pipelines.records import BadRecord, Capture
from pipelines.series import NameCap

NOW = 1_790_000_000_000


def capture(**fields: Any) -> bytes:
    msg = {"inference_id": "id-1", "endpoint": "ep", "variant": "v", "timestamp": NOW - 1000, "prediction": 1}
    return json.dumps({**msg, **fields}).encode()


@pytest.mark.parametrize("latency", ["1.7976931348623157e308", "1e200", str(MAX_LATENCY_MS * 1.001)])
def test_latencies_beyond_a_day_are_bad_input(latency: str) -> None:
    raw = capture().replace(b'"prediction": 1', f'"prediction": 1, "latency_ms": {latency}'.encode())
    bad = parse_capture(raw, now_ms=NOW)
    assert isinstance(bad, BadRecord) and bad.reason == "invalid_value" and "latency_ms" in bad.detail


def test_latencies_under_a_microsecond_count_as_zero() -> None:
    cap = parse_capture(capture(latency_ms=1e-300), now_ms=NOW)
    assert isinstance(cap, Capture) and cap.latency_ms == 0.0


def test_every_quantised_latency_stays_in_cloudwatch_range() -> None:
    from pipelines.latency import quantise

    for ms in (0.001, 1.0, MAX_LATENCY_MS):
        assert 8.515920e-109 <= quantise(ms) <= 2**360


def test_timestamps_before_1970_are_bad_input() -> None:
    bad = parse_capture(capture(timestamp="0001-01-01T00:00:00Z"), now_ms=NOW)
    assert isinstance(bad, BadRecord) and bad.reason == "invalid_value"


class ExplodingWindow:
    """A later stage that fails on one record: what an unforeseen bug looks like."""

    def add_many(self, keys: Iterable[Hashable], event_ms: int, counts: Sequence[tuple[str, int]],
                 latency_ms: float | None = None) -> None:
        if any(name == "Errors" for name, _ in counts):
            raise OverflowError("math range error")


def test_an_exception_after_parsing_becomes_a_dead_letter_not_a_crash() -> None:
    p = PartitionPipeline(0, PipelineConfig(), window=ExplodingWindow())
    bad = p.submit("captures", capture(status=500), 7, NOW)
    assert isinstance(bad, BadRecord) and bad.reason == PROCESSING_FAILED and "OverflowError" in bad.detail
    assert bad.source is not None and bad.source.offset == 7
    assert p.offsets["captures"] == 8 and p.bad_records[PROCESSING_FAILED] == 1
    assert p.submit("captures", capture(inference_id="id-2"), 8, NOW) is None  # the partition moves on


def test_unique_endpoint_names_are_capped_and_dead_lettered() -> None:
    names = NameCap(max_endpoints=3, max_variants=2, max_model_versions=1)
    p = PartitionPipeline(0, PipelineConfig(), names=names)
    reasons = [getattr(p.submit("captures", capture(inference_id=f"i{i}", endpoint=f"ep{i}"), i, NOW), "reason", None)
               for i in range(10)]
    assert reasons == [None] * 3 + ["too_many_endpoints"] * 7
    assert p.submit("captures", capture(inference_id="x1", endpoint="ep0", variant="v2"), 10, NOW) is None
    over = p.submit("captures", capture(inference_id="x2", endpoint="ep0", variant="v3"), 11, NOW)
    assert over is not None and over.reason == "too_many_variants"
    assert p.submit("captures", capture(inference_id="x3", endpoint="ep0", model_version="m1"), 12, NOW) is None
    over = p.submit("captures", capture(inference_id="x4", endpoint="ep0", model_version="m2"), 13, NOW)
    assert over is not None and over.reason == "too_many_model_versions"
    label = json.dumps({"inference_id": "l", "endpoint": "ep-new", "label": 1, "timestamp": NOW - 1}).encode()
    over = p.submit("labels", label, 0, NOW)
    assert over is not None and over.reason == "too_many_endpoints"
    assert len({s[0] for s in p.join.registry.snapshot()}) == 3


def test_an_endpoint_allow_list_admits_the_same_names_everywhere() -> None:
    p = PartitionPipeline(0, PipelineConfig(), names=NameCap(allowed_endpoints=("fraud-ep",)))
    assert p.submit("captures", capture(endpoint="fraud-ep"), 0, NOW) is None
    bad = p.submit("captures", capture(inference_id="2", endpoint="other"), 1, NOW)
    assert bad is not None and bad.reason == "endpoint_not_allowed"


def test_admitted_names_survive_a_restore() -> None:
    names = NameCap(max_endpoints=1)
    p = PartitionPipeline(0, PipelineConfig(), names=names)
    p.submit("captures", capture(endpoint="first"), 0, NOW)
    again = PartitionPipeline.restore(p.snapshot(), PipelineConfig(), names=NameCap(max_endpoints=1))
    assert again.submit("captures", capture(inference_id="2", endpoint="first"), 1, NOW) is None
    bad = again.submit("captures", capture(inference_id="3", endpoint="second"), 2, NOW)
    assert bad is not None and bad.reason == "too_many_endpoints"


@pytest.mark.parametrize("field,value", [("endpoint", "fraud-ép"), ("variant", "v\x07"), ("endpoint", "   "),
                                         ("model_version", "v6\n")])
def test_names_cloudwatch_would_refuse_are_bad_input(field: str, value: str) -> None:
    bad = parse_capture(capture(**{field: value}), now_ms=NOW)
    assert isinstance(bad, BadRecord) and bad.reason == "invalid_dimension" and field in bad.detail


def test_data_capture_header_names_are_checked_too() -> None:
    line = json.dumps({"captureData": {"endpointOutput": {"data": "0.9", "encoding": "CSV"}},
                       "eventMetadata": {"eventId": "e1", "inferenceTime": "2026-09-21T12:00:00Z"}}).encode()
    bad = parse_capture(line, now_ms=NOW, headers={"endpoint": "ép".encode(), "variant": b"v"})
    assert isinstance(bad, BadRecord) and bad.reason == "invalid_dimension"


def test_label_endpoints_are_checked_too() -> None:
    from pipelines.parse import parse_label

    raw = json.dumps({"inference_id": "i", "endpoint": "ép", "label": 1, "timestamp": NOW - 1}).encode()
    bad = parse_label(raw, now_ms=NOW)
    assert isinstance(bad, BadRecord) and bad.reason == "invalid_dimension"


@pytest.mark.parametrize("raw,published", [("5411", "5411"), ("café", "caf%C3%A9"), ("100%", "100%25"),
                                           ("", "__blank__"), ("  ", "__blank__"), ("a\tb", "a%09b"),
                                           ("é" * 200, "__other__")])
def test_segment_values_become_valid_dimension_values_losslessly(raw: str, published: str) -> None:
    from pipelines.series import SegmentCap, dimension_value

    assert dimension_value(raw) == published
    assert SegmentCap(("merchant",), 50).map((("merchant", raw),)) == (("merchant", published),)


def test_a_poll_batch_through_submit_many_is_submit_of_each_record() -> None:
    """Parsing a batch before applying it (for the join's read-ahead) changes nothing: the same
    dead letters at the same offsets, the same counts, the same offsets."""
    rows = [capture(inference_id="a"), b"{not json", capture(inference_id="b", status=500),
            capture(inference_id="a"), json.dumps({"inference_id": "c"}).encode(), capture(inference_id="d")]
    one, many = (PartitionPipeline(0, PipelineConfig(), window=ExplodingWindow()) for _ in range(2))
    singly = [(i, one.submit("captures", raw, 40 + i, NOW)) for i, raw in enumerate(rows)]
    expected = [(i, bad) for i, bad in singly if bad is not None]
    got = many.submit_many("captures", [(raw, 40 + i, None, None) for i, raw in enumerate(rows)], NOW)
    assert [(i, b.reason, b.detail, b.source) for i, b in got] == [(i, b.reason, b.detail, b.source) for i, b in expected]
    assert [i for i, _ in got] == [1, 2, 4] and got[1][1].reason == PROCESSING_FAILED
    assert many.offsets == one.offsets == {"captures": 46} and many.bad_records == one.bad_records
    assert many.tick(NOW) == one.tick(NOW) and many.join.stats == one.join.stats
    with pytest.raises(ValueError):
        many.submit_many("elsewhere", [(b"{}", 0, None, None)], NOW)
