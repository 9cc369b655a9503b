"""Every parser branch: both capture forms, both label forms, and each kind of bad input."""
from __future__ import annotations

import base64
import json
from typing import Any

import pytest

from pipelines import parse as p
from pipelines.cloudwatch_rules import MAX_FUTURE_MS
from pipelines.parse import ParseLimits, parse_capture, parse_label
from pipelines.records import BadRecord, Capture, Label, Source

NOW = 1_790_000_000_000
HEADERS = {"endpoint": b"fraud-ep", "variant": b"v5"}


def cap(**fields: Any) -> dict[str, Any]:
    base: dict[str, Any] = {"inference_id": "7f3a", "endpoint": "fraud-ep", "variant": "v6-shadow",
                            "timestamp": "2026-09-21T09:05:00.123Z", "prediction": 1}
    base.update(fields)
    return {k: v for k, v in base.items() if v is not ...}


def parse(obj: dict[str, Any] | bytes, **kw: Any) -> Capture | BadRecord:
    raw = obj if isinstance(obj, bytes) else json.dumps(obj).encode()
    return parse_capture(raw, now_ms=NOW, **kw)


def reason(result: object) -> str:
    assert isinstance(result, BadRecord), result
    assert "\n" not in result.detail
    return result.reason


def test_full_rollguard_capture() -> None:
    c = parse(cap(model_version="fraud-v6", shadow=True, latency_ms=12.5, status=200, error=None, score=0.87,
                  attributes={"merchant_category": "5411", "card_present": True, "amount_band": 3}))
    assert isinstance(c, Capture)
    assert (c.inference_id, c.endpoint, c.variant, c.model_version, c.shadow) == ("7f3a", "fraud-ep", "v6-shadow", "fraud-v6", True)
    assert c.timestamp_ms == 1_789_981_500_123  # 2026-09-21T09:05:00.123Z
    assert (c.latency_ms, c.is_error, c.prediction) == (12.5, False, 1)
    assert c.attributes == (("amount_band", "3"), ("card_present", "true"), ("merchant_category", "5411"))


@pytest.mark.parametrize(("prediction", "expected"), [(1, 1), (0, 0), (True, 1), (False, 0)])
def test_prediction_forms(prediction: Any, expected: int) -> None:
    c = parse(cap(prediction=prediction))
    assert isinstance(c, Capture) and c.prediction == expected


@pytest.mark.parametrize(("score", "threshold", "expected"), [(0.87, 0.5, 1), (0.5, 0.5, 1), (0.49, 0.5, 0), (0.8, 0.9, 0)])
def test_score_only_uses_threshold(score: float, threshold: float, expected: int) -> None:
    c = parse(cap(prediction=..., score=score), threshold=lambda endpoint: threshold)
    assert isinstance(c, Capture) and c.prediction == expected


def test_epoch_ms_and_naive_iso_timestamps() -> None:
    c1 = parse(cap(timestamp=1_790_000_000_123))
    c2 = parse(cap(timestamp="2026-09-21T09:05:00"))
    assert isinstance(c1, Capture) and c1.timestamp_ms == 1_790_000_000_123
    assert isinstance(c2, Capture) and c2.timestamp_ms % 1000 == 0


@pytest.mark.parametrize(("fields", "is_error"), [({"status": 503}, True), ({"status": 404}, True), ({"status": 200}, False),
                                                   ({"error": "timeout"}, True)])
def test_errors(fields: dict[str, Any], is_error: bool) -> None:
    c = parse(cap(**fields))
    assert isinstance(c, Capture) and c.is_error is is_error


def test_error_capture_needs_no_prediction() -> None:
    c = parse(cap(prediction=..., status=500))
    assert isinstance(c, Capture) and c.prediction is None and c.is_error


@pytest.mark.parametrize(
    ("raw", "code"),
    [
        (b"{not json", p.NOT_JSON),
        (b'{"inference_id": "\xff"}', p.NOT_UTF8),
        (b"[1, 2]", p.NOT_OBJECT),
        (b'"a string"', p.NOT_OBJECT),
        (json.dumps(cap(inference_id=...)).encode(), p.MISSING_FIELD),
        (json.dumps(cap(endpoint=...)).encode(), p.MISSING_FIELD),
        (json.dumps(cap(timestamp=...)).encode(), p.MISSING_FIELD),
        (json.dumps(cap(inference_id=17)).encode(), p.WRONG_TYPE),
        (json.dumps(cap(latency_ms="12")).encode(), p.WRONG_TYPE),
        (json.dumps(cap(attributes=["x"])).encode(), p.WRONG_TYPE),
        (json.dumps(cap(shadow="yes")).encode(), p.WRONG_TYPE),
        (json.dumps(cap(inference_id="")).encode(), p.INVALID_ID),
        (json.dumps(cap(inference_id="x" * 257)).encode(), p.INVALID_ID),
        (b'{"inference_id": "a", "endpoint": "e", "variant": "v", "timestamp": 1, "score": NaN}', p.NON_FINITE),
        (b'{"inference_id": "a", "endpoint": "e", "variant": "v", "timestamp": 1, "score": Infinity}', p.NON_FINITE),
        (b'{"inference_id": "a", "endpoint": "e", "variant": "v", "timestamp": 1, "latency_ms": 1e999, "prediction": 1}', p.NON_FINITE),
        (json.dumps(cap(latency_ms=-0.5)).encode(), p.INVALID_VALUE),
        (json.dumps(cap(score=1.5, prediction=...)).encode(), p.INVALID_VALUE),
        (json.dumps(cap(prediction=2)).encode(), p.INVALID_VALUE),
        (json.dumps(cap(timestamp="yesterday")).encode(), p.INVALID_VALUE),
        (json.dumps(cap(timestamp=-5)).encode(), p.INVALID_VALUE),
        (json.dumps(cap(timestamp=NOW + MAX_FUTURE_MS + 1)).encode(), p.FUTURE_TIMESTAMP),
        (json.dumps(cap(prediction=...)).encode(), p.MISSING_PREDICTION),
    ],
)
def test_bad_captures(raw: bytes, code: str) -> None:
    src = Source("captures", 3, 42)
    bad = parse_capture(raw, now_ms=NOW, source=src)
    assert reason(bad) == code
    assert isinstance(bad, BadRecord) and bad.raw == raw and bad.source == src


def test_timestamp_just_inside_the_future_limit_is_fine() -> None:
    assert isinstance(parse(cap(timestamp=NOW + MAX_FUTURE_MS)), Capture)


def test_oversized_record() -> None:
    raw = json.dumps(cap(attributes={"blob": "x" * 2000})).encode()
    assert reason(parse_capture(raw, now_ms=NOW, limits=ParseLimits(max_bytes=1000))) == p.TOO_LARGE
    assert isinstance(parse_capture(raw, now_ms=NOW), Capture)


def test_unknown_fields_are_ignored() -> None:
    assert isinstance(parse(cap(extra={"nested": [1, 2]}, another=None)), Capture)


# -- SageMaker Data Capture -------------------------------------------------------------------

def datacapture(output: str, encoding: str = "CSV", content_type: str = "text/csv", **meta: Any) -> dict[str, Any]:
    metadata = {"eventId": "evt-1", "inferenceTime": "2026-09-21T09:05:00Z", **meta}
    return {
        "captureData": {
            "endpointInput": {"observedContentType": "text/csv", "mode": "INPUT", "data": "1,2,3", "encoding": "CSV"},
            "endpointOutput": {"observedContentType": content_type, "mode": "OUTPUT", "data": output, "encoding": encoding},
        },
        "eventMetadata": {k: v for k, v in metadata.items() if v is not ...},
        "eventVersion": "0",
    }


@pytest.mark.parametrize(
    ("line", "prediction"),
    [
        (datacapture("0.87"), 1),
        (datacapture("0.12"), 0),
        (datacapture("1"), 1),
        (datacapture("0.2,0.8"), 1),
        (datacapture(base64.b64encode(b"0.3").decode(), encoding="BASE64"), 0),
        (datacapture('{"predictions": [{"score": 0.9}]}', encoding="JSON", content_type="application/json"), 1),
        (datacapture('{"predicted_label": 0, "score": 0.9}', encoding="JSON", content_type="application/json"), 0),
        (datacapture('[0.7]', encoding="JSON", content_type="application/json"), 1),
        (datacapture(base64.b64encode(b'{"probability": 0.1}').decode(), encoding="BASE64", content_type="application/json"), 0),
    ],
)
def test_datacapture_outputs(line: dict[str, Any], prediction: int) -> None:
    c = parse(line, headers=HEADERS)
    assert isinstance(c, Capture), c
    assert (c.endpoint, c.variant, c.prediction, c.inference_id) == ("fraud-ep", "v5", prediction, "evt-1")


def test_datacapture_prefers_inference_id_and_reads_shadow_headers() -> None:
    headers = {**HEADERS, "shadow": b"true", "model_version": b"fraud-v6"}
    c = parse(datacapture("0.9", inferenceId="inf-9"), headers=headers)
    assert isinstance(c, Capture) and c.inference_id == "inf-9" and c.shadow and c.model_version == "fraud-v6"


def test_datacapture_time_falls_back_to_record_time() -> None:
    c = parse(datacapture("0.9", inferenceTime=...), headers=HEADERS, record_ts_ms=NOW - 5)
    assert isinstance(c, Capture) and c.timestamp_ms == NOW - 5


@pytest.mark.parametrize(
    ("line", "headers", "code"),
    [
        (datacapture("0.9"), {}, p.MISSING_FIELD),
        (datacapture("0.9"), {"endpoint": b"e"}, p.MISSING_FIELD),
        (datacapture("0.9", eventId=..., inferenceId=...), HEADERS, p.MISSING_FIELD),
        (datacapture("0.1,0.2,0.7"), HEADERS, p.UNSUPPORTED_OUTPUT),
        (datacapture("0.9\n0.1"), HEADERS, p.UNSUPPORTED_OUTPUT),
        (datacapture("7.5"), HEADERS, p.INVALID_VALUE),
        (datacapture("%%%", encoding="BASE64"), HEADERS, p.INVALID_VALUE),
        (datacapture("{bad", encoding="JSON", content_type="application/json"), HEADERS, p.NOT_JSON),
        (datacapture('{"nothing": 1}', encoding="JSON", content_type="application/json"), HEADERS, p.UNSUPPORTED_OUTPUT),
        ({"captureData": {}, "eventMetadata": {}}, HEADERS, p.MISSING_FIELD),
    ],
)
def test_bad_datacapture(line: dict[str, Any], headers: dict[str, bytes], code: str) -> None:
    assert reason(parse(line, headers=headers)) == code


# -- labels -----------------------------------------------------------------------------------

@pytest.mark.parametrize(("value", "expected"), [(1, 1), (0, 0), (True, 1), ("0", 0), ("true", 1), ("1", 1), (1.0, 1)])
def test_rollguard_labels(value: Any, expected: int) -> None:
    raw = json.dumps({"inference_id": "7f3a", "endpoint": "fraud-ep", "label": value, "timestamp": "2026-09-20T10:00:00Z",
                      "source": "disputes"}).encode()
    lab = parse_label(raw, now_ms=NOW)
    assert isinstance(lab, Label) and lab.label == expected and lab.endpoint == "fraud-ep" and lab.source == "disputes"


def test_label_without_endpoint_or_timestamp_uses_record_time() -> None:
    lab = parse_label(b'{"inference_id": "a", "label": 1}', now_ms=NOW, record_ts_ms=NOW - 1)
    assert isinstance(lab, Label) and lab.endpoint is None and lab.timestamp_ms == NOW - 1
    assert reason(parse_label(b'{"inference_id": "a", "label": 1}', now_ms=NOW)) == p.MISSING_FIELD


@pytest.mark.parametrize(
    ("raw", "code"),
    [
        (b'{"inference_id": "a", "label": "maybe", "timestamp": 1}', p.INVALID_LABEL),
        (b'{"inference_id": "a", "label": 2, "timestamp": 1}', p.INVALID_LABEL),
        (b'{"inference_id": "a", "label": [1], "timestamp": 1}', p.WRONG_TYPE),
        (b'{"label": 1, "timestamp": 1}', p.MISSING_FIELD),
        (b'{"inference_id": "a", "label": 1, "timestamp": 99999999999999}', p.FUTURE_TIMESTAMP),
        (b'{"inference_id": "a", "label": NaN, "timestamp": 1}', p.NON_FINITE),
        (b"\xff\xfe", p.NOT_UTF8),
    ],
)
def test_bad_labels(raw: bytes, code: str) -> None:
    assert reason(parse_label(raw, now_ms=NOW)) == code


@pytest.mark.parametrize(("data", "encoding", "expected"), [("1", "CSV", 1), ("0", "CSV", 0),
                                                            (base64.b64encode(b"1").decode(), "BASE64", 1),
                                                            ('{"label": 0}', "JSON", 0)])
def test_ground_truth_lines(data: str, encoding: str, expected: int) -> None:
    raw = json.dumps({"groundTruthData": {"data": data, "encoding": encoding}, "eventMetadata": {"eventId": "7f3a"},
                      "eventVersion": "0"}).encode()
    lab = parse_label(raw, now_ms=NOW, record_ts_ms=NOW - 10)
    assert isinstance(lab, Label) and (lab.inference_id, lab.label, lab.timestamp_ms) == ("7f3a", expected, NOW - 10)


def test_ground_truth_needs_a_record_time_and_a_binary_value() -> None:
    ok = json.dumps({"groundTruthData": {"data": "1", "encoding": "CSV"}, "eventMetadata": {"eventId": "x"}}).encode()
    assert reason(parse_label(ok, now_ms=NOW)) == p.MISSING_FIELD
    bad = json.dumps({"groundTruthData": {"data": "cat", "encoding": "CSV"}, "eventMetadata": {"eventId": "x"}}).encode()
    assert reason(parse_label(bad, now_ms=NOW, record_ts_ms=NOW)) == p.INVALID_LABEL


@pytest.mark.parametrize("raw", [b"[" * 100_000 + b"]" * 100_000, b'{"inference_id": "a", "timestamp": ' + b"9" * 5000 + b"}"])
def test_pathological_input_is_dead_lettered_not_raised(raw: bytes) -> None:
    assert isinstance(parse_capture(raw, now_ms=NOW), BadRecord)
    assert isinstance(parse_label(raw, now_ms=NOW), BadRecord)


from hypothesis import given, settings  # noqa: E402
from hypothesis import strategies as st  # noqa: E402

json_values = st.recursive(
    st.none() | st.booleans() | st.integers() | st.floats(allow_nan=False) | st.text(max_size=20),
    lambda children: st.lists(children, max_size=4) | st.dictionaries(st.text(max_size=10), children, max_size=4),
    max_leaves=20,
)
fields = st.fixed_dictionaries({}, optional={
    k: json_values for k in ("inference_id", "endpoint", "variant", "timestamp", "prediction", "score", "latency_ms",
                             "status", "error", "attributes", "label", "captureData", "eventMetadata", "groundTruthData")
})


@settings(max_examples=300, deadline=None)
@given(st.one_of(st.binary(max_size=200), fields.map(lambda d: json.dumps(d).encode())))
def test_any_bytes_give_a_record_or_a_bad_record(raw: bytes) -> None:
    c = parse_capture(raw, now_ms=NOW, headers=HEADERS)
    lab = parse_label(raw, now_ms=NOW, record_ts_ms=NOW)
    assert isinstance(c, (Capture, BadRecord)) and isinstance(lab, (Label, BadRecord))
    for r in (c, lab):
        if isinstance(r, BadRecord):
            assert r.reason and "\n" not in r.detail and r.raw == raw
