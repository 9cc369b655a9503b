"""The fast path of pipelines.parse gives exactly what the full pydantic path gives, record for record."""
from __future__ import annotations

import json
from typing import Any

from hypothesis import given, settings, strategies as st

from pipelines.parse import ParseLimits, parse_capture, parse_label
from pipelines.records import Capture

NOW = 1_790_000_000_000

ids = st.one_of(st.uuids().map(str), st.text(min_size=0, max_size=3), st.just("x" * 256), st.just("x" * 257))
names = st.one_of(st.sampled_from(["fraud-ep", "v5", "v6-shadow", "m1", " ", "", "é", "a\x07", "x" * 255, "x" * 256]),
                  st.text(max_size=4))
numbers = st.one_of(st.integers(-2, 2), st.integers(), st.floats(), st.sampled_from([0.0, -0.0, 1.0, 0.5, 1e-300, 1e300]))
scalars = st.one_of(st.none(), st.booleans(), numbers, st.text(max_size=4), st.sampled_from(["0", "1", "true", "False", " 1.0 "]))
anything = st.one_of(scalars, st.lists(scalars, max_size=2), st.dictionaries(st.text(max_size=2), scalars, max_size=2))
timestamps = st.one_of(st.integers(NOW - 10**9, NOW + 10**9), st.floats(NOW - 10**9, NOW + 10**9), numbers,
                       st.sampled_from(["2026-09-21T12:00:00Z", "2026-09-21T12:00:00", "0001-01-01T00:00:00Z", "x", ""]))
attributes = st.one_of(anything, st.dictionaries(st.sampled_from(["merchant_category", "region", "é"]), scalars, max_size=3))

capture_fields = {
    "inference_id": ids, "endpoint": names, "variant": names, "model_version": st.one_of(st.none(), names),
    "shadow": st.one_of(st.booleans(), scalars), "timestamp": timestamps, "latency_ms": st.one_of(numbers, scalars),
    "status": st.one_of(st.sampled_from([200, 404, 500, 999, 1000, -1]), scalars), "error": st.one_of(st.text(max_size=3), scalars),
    "prediction": scalars, "score": st.one_of(numbers, scalars), "attributes": attributes,
    "extra": anything, "captureData": anything,
}
label_fields = {
    "inference_id": ids, "endpoint": st.one_of(st.none(), names), "label": st.one_of(scalars, anything),
    "timestamp": st.one_of(st.none(), timestamps), "source": st.one_of(st.text(max_size=3), scalars), "extra": anything,
}
# well-formed values, so that most drawn records get past validation and the built records are compared
good_capture = st.fixed_dictionaries(
    {"inference_id": st.uuids().map(str), "endpoint": st.sampled_from(["fraud-ep", "ep"]),
     "variant": st.sampled_from(["v5", "v6-shadow"]), "timestamp": timestamps},
    optional={"model_version": st.sampled_from(["fraud-v5", None]), "shadow": st.booleans(),
              "latency_ms": st.one_of(st.integers(0, 10), st.floats(0, 100), st.just(1e-9)),
              "status": st.sampled_from([200, 399, 400, 500, None]), "error": st.sampled_from([None, "boom"]),
              "prediction": st.sampled_from([0, 1, True, False, None]), "score": st.one_of(st.floats(0, 1), st.sampled_from([0, 1])),
              "attributes": st.dictionaries(st.sampled_from(["merchant_category", "region"]),
                                            st.one_of(st.sampled_from(["5411", "eu"]), st.integers(0, 9), st.booleans(),
                                                      st.floats(0, 2)), max_size=2)})
good_label = st.fixed_dictionaries(
    {"inference_id": st.uuids().map(str), "label": st.sampled_from([0, 1, True, "1", "false", 1.0, 0.0])},
    optional={"endpoint": st.sampled_from(["fraud-ep", None]), "timestamp": timestamps,
              "source": st.sampled_from(["disputes", None])})


def record(base: dict[str, Any], drop: list[str], changes: dict[str, Any]) -> bytes:
    obj = {k: v for k, v in {**base, **changes}.items() if k not in drop}
    return json.dumps(obj).encode()  # NaN and Infinity as json writes them


def same(a: Any, b: Any) -> bool:
    return a == b and type(a) is type(b) and repr(a) == repr(b)


def one_or_two(fields: dict[str, st.SearchStrategy[Any]]) -> st.SearchStrategy[dict[str, Any]]:
    return st.dictionaries(st.sampled_from(sorted(fields)), st.none(), max_size=2).flatmap(
        lambda keys: st.fixed_dictionaries({k: fields[k] for k in keys}))


@settings(max_examples=1500, deadline=None)
@given(base=good_capture, drop=st.lists(st.sampled_from(sorted(capture_fields)), max_size=2),
       changes=st.one_of(st.just({}), one_or_two(capture_fields)))
def test_captures_parse_the_same_on_both_paths(base: dict[str, Any], drop: list[str], changes: dict[str, Any]) -> None:
    raw = record(base, drop, changes)
    limits = ParseLimits()
    fast = parse_capture(raw, now_ms=NOW, limits=limits, threshold=lambda ep: 0.6)
    full = parse_capture(raw, now_ms=NOW, limits=limits, threshold=lambda ep: 0.6, fast=False)
    assert same(fast, full), (raw, fast, full)


@settings(max_examples=1000, deadline=None)
@given(base=good_label, drop=st.lists(st.sampled_from(sorted(label_fields)), max_size=2),
       changes=st.one_of(st.just({}), one_or_two(label_fields)), record_ts=st.one_of(st.none(), st.just(NOW - 5)))
def test_labels_parse_the_same_on_both_paths(base: dict[str, Any], drop: list[str], changes: dict[str, Any],
                                             record_ts: int | None) -> None:
    raw = record(base, drop, changes)
    fast = parse_label(raw, now_ms=NOW, record_ts_ms=record_ts)
    full = parse_label(raw, now_ms=NOW, record_ts_ms=record_ts, fast=False)
    assert same(fast, full), (raw, fast, full)


COMMON_CAPTURE = {"inference_id": "3b0c5e2a-0000-4000-8000-000000000001", "endpoint": "fraud-ep", "variant": "v5",
                  "timestamp": NOW - 1000, "score": 0.7}
COMMON_LABEL = {"inference_id": "3b0c5e2a-0000-4000-8000-000000000001", "endpoint": "fraud-ep", "label": 1,
                "timestamp": NOW - 1000}


def test_raw_forms_the_json_module_reads_differently_take_the_full_path() -> None:
    base = json.dumps(COMMON_CAPTURE).encode()
    for raw in (base.replace(b'"v5"', b'"\\ud800"'), base.replace(b'0.7', b'NaN'), base.replace(b'0.7', b'1e400'),
                base.replace(b'"v5"', b'"v\xff"'), b'\xef\xbb\xbf' + base, base + b" x", base.replace(b'0.7', b'10' * 20),
                base[:-1] + b', "attributes": {"a": 123456789012345678901234567890}}',
                base[:-1] + b', "capture\\u0044ata": 1}', base[:-1] + b', "score": 0.1}', b'1', b'null', b'[1]', b'"inference_id"', b'{}'):
        fast = parse_capture(raw, now_ms=NOW)
        full = parse_capture(raw, now_ms=NOW, fast=False)
        assert same(fast, full), (raw, fast, full)
    both = dict(COMMON_LABEL, groundTruthData={"data": "0", "encoding": "CSV"}, eventMetadata={"eventId": "e1"})
    raw = json.dumps(both).encode()
    assert same(parse_label(raw, now_ms=NOW, record_ts_ms=NOW), parse_label(raw, now_ms=NOW, record_ts_ms=NOW, fast=False))
    too_small = ParseLimits(max_bytes=len(base) - 1)
    assert same(parse_capture(base, now_ms=NOW, limits=too_small), parse_capture(base, now_ms=NOW, limits=too_small, fast=False))


EDGES: list[Any] = [None, True, False, 0, 1, -1, 2, 399, 400, 1000, 0.0, -0.0, 0.5, 1.0, 1e300, float("nan"), float("inf"), "", "x",
                    "1", "true", " ", "é", "x" * 256, "2026-09-21T12:00:00Z", [], [1], {}, {"a": "b"}, {"a": 1}, {"a": None}]


def test_every_field_with_every_edge_value_parses_the_same_on_both_paths() -> None:
    base = dict(COMMON_CAPTURE, model_version="m1", latency_ms=3.5, status=200, attributes={"merchant_category": "5411"})
    label = dict(COMMON_LABEL, source="disputes")
    for field in [*capture_fields, "timestamp"]:
        for value in EDGES:
            raw = record(base, [], {field: value})
            assert same(parse_capture(raw, now_ms=NOW), parse_capture(raw, now_ms=NOW, fast=False)), raw
            raw = record(base, [], {"attributes": {field: value}})
            assert same(parse_capture(raw, now_ms=NOW), parse_capture(raw, now_ms=NOW, fast=False)), raw
    for field in label_fields:
        for value in EDGES:
            for record_ts in (None, NOW - 5):
                raw = record(label, [], {field: value})
                assert same(parse_label(raw, now_ms=NOW, record_ts_ms=record_ts),
                            parse_label(raw, now_ms=NOW, record_ts_ms=record_ts, fast=False)), raw


def test_equal_attribute_values_of_other_types_keep_their_own_text() -> None:
    for value in (1, True, 1.0, "1", 1, 1.0, True):
        cap = parse_capture(record(COMMON_CAPTURE, [], {"attributes": {"a": value}}), now_ms=NOW)
        assert isinstance(cap, Capture) and cap.attributes == (("a", str(value).lower() if value is True else str(value)),)
