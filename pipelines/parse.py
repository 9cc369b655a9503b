"""Parsing and validation of captures and labels: bytes in, a record or a BadRecord out.

Accepted forms (SPEC.md "Messages"): rollguard's own JSON capture and label, SageMaker Data
Capture lines (recognised by `captureData`; endpoint and variant from Kafka headers) and
SageMaker Model Monitor ground-truth lines (recognised by `groundTruthData`).
Nothing here raises on bad input: every failure is a BadRecord with a stable reason code.
"""
from __future__ import annotations

import base64
import binascii
import json
import math
from collections.abc import Callable, Mapping
from dataclasses import dataclass
from datetime import datetime, timezone
from typing import Annotated, Any

from pydantic import BaseModel, ConfigDict, Field, StringConstraints, ValidationError
from pydantic_core import from_json

from pipelines import cloudwatch_rules
from pipelines.records import BadRecord, Capture, Label, Source

Id = Annotated[str, StringConstraints(min_length=1, max_length=256)]
MAX_NAME_CHARS = 255
Name = Annotated[str, StringConstraints(min_length=1, max_length=MAX_NAME_CHARS)]
Scalar = str | int | float | bool

#: Latencies above a day are not latencies; below a microsecond they count as 0. Both bounds
#: keep every quantised value inside what CloudWatch accepts (it refuses a whole datum otherwise).
MAX_LATENCY_MS = 86_400_000.0
MIN_LATENCY_MS = 0.001

# reason codes, counted per code; the detail line says which field and why
NOT_UTF8 = "not_utf8"
NOT_JSON = "not_json"
NOT_OBJECT = "not_object"
TOO_LARGE = "too_large"
NON_FINITE = "non_finite_number"
MISSING_FIELD = "missing_field"
WRONG_TYPE = "wrong_type"
INVALID_ID = "invalid_inference_id"
INVALID_VALUE = "invalid_value"
FUTURE_TIMESTAMP = "future_timestamp"
INVALID_LABEL = "invalid_label"
MISSING_PREDICTION = "missing_prediction"
UNSUPPORTED_OUTPUT = "unsupported_output"
INVALID_DIMENSION = "invalid_dimension"  # a name CloudWatch would refuse as a dimension value
UNPARSEABLE = "unparseable"  # anything else a record manages to trip (deep nesting, huge integers)


@dataclass(frozen=True, slots=True)
class ParseLimits:
    """What counts as bad input, as a frozen policy (SPEC.md "Bad input")."""

    max_bytes: int = 1_048_576
    max_future_ms: int = cloudwatch_rules.MAX_FUTURE_MS  # the publisher sends everything up to it


class _Bad(Exception):
    def __init__(self, reason: str, detail: str) -> None:
        super().__init__(detail)
        self.reason = reason
        self.detail = detail


_STRICT = ConfigDict(strict=True, extra="ignore", frozen=True, allow_inf_nan=False)


class _CaptureIn(BaseModel):
    model_config = _STRICT
    inference_id: Id
    endpoint: Name
    variant: Name
    model_version: Name | None = None
    shadow: bool = False
    timestamp: str | int | float
    latency_ms: float | None = Field(None, ge=0, le=MAX_LATENCY_MS)
    status: int | None = Field(None, ge=0, le=999)
    error: str | None = None
    prediction: bool | int | None = None
    score: float | None = Field(None, ge=0.0, le=1.0)
    attributes: dict[str, Scalar] | None = None


class _LabelIn(BaseModel):
    model_config = _STRICT
    inference_id: Id
    endpoint: Name | None = None
    label: Scalar
    timestamp: str | int | float | None = None
    source: str | None = None


class _EncodedData(BaseModel):
    model_config = _STRICT
    data: str
    encoding: str = "CSV"
    observedContentType: str | None = None


class _CaptureData(BaseModel):
    model_config = _STRICT
    endpointOutput: _EncodedData


class _EventMetadata(BaseModel):
    model_config = _STRICT
    eventId: Id | None = None
    inferenceId: Id | None = None
    inferenceTime: str | None = None


class _DataCaptureIn(BaseModel):
    model_config = _STRICT
    captureData: _CaptureData
    eventMetadata: _EventMetadata


class _GroundTruthIn(BaseModel):
    model_config = _STRICT
    groundTruthData: _EncodedData
    eventMetadata: _EventMetadata


def _reject_constant(name: str) -> float:
    raise _Bad(NON_FINITE, f"{name} is not a finite number")


#: one decoder for every record: json.loads(text, parse_constant=...) builds a new one per call,
#: which took 4-5 µs of the ~8 µs a capture's JSON took
_DECODER = json.JSONDecoder(parse_constant=_reject_constant)


def _load_object(raw: bytes, limits: ParseLimits) -> dict[str, Any]:
    if len(raw) > limits.max_bytes:
        raise _Bad(TOO_LARGE, f"record is {len(raw)} bytes, the limit is {limits.max_bytes}")
    try:
        text = raw.decode("utf-8")
    except UnicodeDecodeError as ex:
        raise _Bad(NOT_UTF8, f"not UTF-8 at byte {ex.start}") from None
    try:
        obj = _DECODER.decode(text)
    except json.JSONDecodeError as ex:
        raise _Bad(NOT_JSON, f"not JSON: {ex.msg} at line {ex.lineno} column {ex.colno}") from None
    if not isinstance(obj, dict):
        raise _Bad(NOT_OBJECT, f"expected a JSON object, got {type(obj).__name__}")
    return obj


def _from_validation(err: ValidationError) -> _Bad:
    e = err.errors()[0]
    field = ".".join(str(p) for p in e["loc"]) or "record"
    kind = e["type"]
    if kind == "missing":
        return _Bad(MISSING_FIELD, f"missing required field {field!r}")
    if kind == "finite_number":
        return _Bad(NON_FINITE, f"{field} is not a finite number")
    if field in ("inference_id", "eventMetadata.eventId", "eventMetadata.inferenceId") and kind.startswith("string_too"):
        return _Bad(INVALID_ID, f"{field} must be 1..256 characters")
    if kind.endswith("_type") or kind in ("int_from_float", "model_attributes_type"):
        return _Bad(WRONG_TYPE, f"{field}: {e['msg']}")
    return _Bad(INVALID_VALUE, f"{field}: {e['msg']}")


def parse_timestamp(value: str | int | float, field: str = "timestamp") -> int:
    """ISO 8601 (naive means UTC) or epoch milliseconds -> epoch milliseconds."""
    if isinstance(value, str):
        try:
            dt = datetime.fromisoformat(value)
        except ValueError:
            raise _Bad(INVALID_VALUE, f"{field} {value[:40]!r} is not ISO 8601") from None
        if dt.tzinfo is None:
            dt = dt.replace(tzinfo=timezone.utc)
        if dt.year < 1970:
            raise _Bad(INVALID_VALUE, f"{field} {value[:40]!r} is before 1970")
        return int(dt.timestamp() * 1000)
    if not math.isfinite(value) or value < 0:
        raise _Bad(INVALID_VALUE, f"{field} must be epoch milliseconds >= 0")
    return int(value)


def _check_time(ts_ms: int, now_ms: int, limits: ParseLimits, field: str = "timestamp") -> int:
    if ts_ms > now_ms + limits.max_future_ms:
        ahead = (ts_ms - now_ms) / 60_000
        raise _Bad(FUTURE_TIMESTAMP, f"{field} is {ahead:.0f} min in the future (limit {limits.max_future_ms / 60_000:g} min)")
    return ts_ms


def _binary(value: Scalar, field: str, reason: str) -> int:
    if isinstance(value, bool):
        return int(value)
    if isinstance(value, (int, float)) and value in (0, 1):
        return int(value)
    if isinstance(value, str) and value.strip().lower() in ("0", "1", "true", "false", "0.0", "1.0"):
        return 1 if value.strip().lower() in ("1", "true", "1.0") else 0
    raise _Bad(reason, f"{field} {str(value)[:40]!r} is not a binary class (0/1, true/false)")


def _decode_data(enc: _EncodedData, field: str) -> str:
    if enc.encoding.upper() == "BASE64":
        try:
            return base64.b64decode(enc.data, validate=True).decode("utf-8")
        except (binascii.Error, UnicodeDecodeError):
            raise _Bad(INVALID_VALUE, f"{field}.data is not base64 of UTF-8 text") from None
    return enc.data


def _is_json(enc: _EncodedData) -> bool:
    return enc.encoding.upper() == "JSON" or "json" in (enc.observedContentType or "").lower()


def _score_or_class(value: Any, field: str) -> tuple[int | None, float | None]:
    """One model output (number, bool, list or dict) -> (prediction, score)."""
    if isinstance(value, bool):
        return int(value), None
    if isinstance(value, (int, float)):
        if not math.isfinite(value) or not 0.0 <= value <= 1.0:
            raise _Bad(INVALID_VALUE, f"{field}: output {value!r} is not a probability or 0/1 class")
        return (int(value), None) if isinstance(value, int) else (None, float(value))
    if isinstance(value, str):
        try:
            number = float(value)
        except ValueError:
            return _binary(value, field, UNSUPPORTED_OUTPUT), None
        return _score_or_class(int(number) if value.strip() in ("0", "1") else number, field)
    if isinstance(value, list):
        if len(value) == 2 and all(isinstance(v, (int, float)) and not isinstance(v, bool) for v in value):
            return _score_or_class(float(value[1]), field)  # [p(negative), p(positive)]
        if len(value) == 1:
            return _score_or_class(value[0], field)
        raise _Bad(UNSUPPORTED_OUTPUT, f"{field}: a list of {len(value)} outputs is not one binary prediction")
    if isinstance(value, dict):
        for key in ("predicted_label", "prediction", "label", "class"):
            if key in value:
                pred, _ = _score_or_class(value[key], f"{field}.{key}")
                score = _first_score(value, field)
                return pred, score
        score = _first_score(value, field)
        if score is not None:
            return None, score
        for key in ("predictions", "outputs", "results"):
            if key in value:
                return _score_or_class(value[key], f"{field}.{key}")
    raise _Bad(UNSUPPORTED_OUTPUT, f"{field}: no prediction or score found in the model output")


def _first_score(obj: dict[str, Any], field: str) -> float | None:
    for key in ("score", "probability", "scores", "probabilities"):
        if key in obj:
            _, score = _score_or_class(obj[key], f"{field}.{key}")
            return score
    return None


def _output(enc: _EncodedData, field: str) -> tuple[int | None, float | None]:
    text = _decode_data(enc, field).strip()
    if _is_json(enc):
        try:
            return _score_or_class(json.loads(text, parse_constant=_reject_constant), field)
        except json.JSONDecodeError:
            raise _Bad(NOT_JSON, f"{field}.data is not JSON") from None
    lines = text.splitlines()
    if len(lines) != 1:
        raise _Bad(UNSUPPORTED_OUTPUT, f"{field}.data has {len(lines)} CSV rows, expected one")
    cells = [c.strip() for c in lines[0].split(",")]
    if len(cells) == 1:
        return _score_or_class(cells[0], field)
    try:
        return _score_or_class([float(c) for c in cells], field)
    except ValueError:
        raise _Bad(UNSUPPORTED_OUTPUT, f"{field}.data has non-numeric CSV cells") from None


def _header(headers: Mapping[str, bytes], name: str) -> str:
    value = headers.get(name)
    if not value:
        raise _Bad(MISSING_FIELD, f"SageMaker Data Capture record needs Kafka header {name!r}")
    try:
        return value.decode("utf-8")
    except UnicodeDecodeError:
        raise _Bad(NOT_UTF8, f"Kafka header {name!r} is not UTF-8") from None


def _predict(prediction: int | None, score: float | None, threshold: float) -> int | None:
    if prediction is not None:
        return prediction
    return None if score is None else int(score >= threshold)


#: names already found valid: a few endpoints, variants and versions repeat on every record
_VALID_DIMENSIONS: set[str] = set()
_MAX_VALID_DIMENSIONS = 4096


def _dimension(value: str, field: str) -> str:
    """Endpoint, variant and model version become CloudWatch dimension values, which must be
    printable ASCII and not blank; one refused value would cost a whole PutMetricData request."""
    if value in _VALID_DIMENSIONS:
        return value
    if not cloudwatch_rules.dimension_text(value) or len(value) > MAX_NAME_CHARS:
        raise _Bad(INVALID_DIMENSION, f"{field} {value[:40]!r} must be 1..{MAX_NAME_CHARS} characters of printable "
                                      "ASCII, not blank (it becomes a CloudWatch dimension value)")
    if len(_VALID_DIMENSIONS) >= _MAX_VALID_DIMENSIONS:
        _VALID_DIMENSIONS.clear()
    _VALID_DIMENSIONS.add(value)
    return value


def _latency(ms: float | None) -> float | None:
    return 0.0 if ms is not None and ms < MIN_LATENCY_MS else ms


def _capture_rollguard(obj: dict[str, Any], now_ms: int, limits: ParseLimits, threshold: Callable[[str], float]) -> Capture:
    try:
        m = _CaptureIn.model_validate(obj)
    except ValidationError as err:
        raise _from_validation(err) from None
    return _capture(m.inference_id, m.endpoint, m.variant, m.model_version, m.shadow, m.timestamp, m.latency_ms,
                    m.status, m.error, m.prediction, m.score, m.attributes, now_ms, limits, threshold)


def _capture(
    inference_id: str, endpoint: str, variant: str, model_version: str | None, shadow: bool, timestamp: str | int | float,
    latency_ms: float | None, status: int | None, error: str | None, prediction_in: bool | int | None,
    score: float | None, attributes: dict[str, Scalar] | None, now_ms: int, limits: ParseLimits,
    threshold: Callable[[str], float],
) -> Capture:
    """A validated rollguard capture's fields -> Capture (both the fast and the pydantic path)."""
    ts = _check_time(parse_timestamp(timestamp), now_ms, limits)
    is_error = (status is not None and status >= 400) or error is not None
    prediction = None if prediction_in is None else _binary(prediction_in, "prediction", INVALID_VALUE)
    prediction = _predict(prediction, score, threshold(endpoint))
    if prediction is None and not is_error:
        raise _Bad(MISSING_PREDICTION, "capture needs prediction or score unless it is an error")
    return Capture(
        inference_id=inference_id, endpoint=_dimension(endpoint, "endpoint"), variant=_dimension(variant, "variant"),
        timestamp_ms=ts, model_version=None if model_version is None else _dimension(model_version, "model_version"),
        shadow=shadow, latency_ms=_latency(latency_ms), is_error=is_error,
        prediction=prediction, attributes=_attributes(attributes) if attributes else (),
    )


#: attributes as they arrive (name, value) -> as kept; captures of one endpoint repeat a few
#: combinations, and the JSON parser shares equal short strings, so the lookup is cheap
_ATTRIBUTES: dict[tuple[tuple[str, Scalar], ...], tuple[tuple[str, str], ...]] = {}
_MAX_CACHED_ATTRIBUTES = 4096


def _attributes(attributes: dict[str, Scalar]) -> tuple[tuple[str, str], ...]:
    key = tuple(attributes.items())
    found = _ATTRIBUTES.get(key)
    if found is None:
        found = tuple(sorted((k, str(v).lower() if isinstance(v, bool) else str(v)) for k, v in key))
        if len(_ATTRIBUTES) >= _MAX_CACHED_ATTRIBUTES:
            _ATTRIBUTES.clear()
        # 1 and 1.0 and True are equal keys with different texts: cache only what cannot collide
        if all(type(v) is str for _, v in key):
            _ATTRIBUTES[key] = found
    return found


def _capture_datacapture(
    obj: dict[str, Any], headers: Mapping[str, bytes], record_ts_ms: int | None, now_ms: int,
    limits: ParseLimits, threshold: Callable[[str], float],
) -> Capture:
    try:
        m = _DataCaptureIn.model_validate(obj)
    except ValidationError as err:
        raise _from_validation(err) from None
    inference_id = m.eventMetadata.inferenceId or m.eventMetadata.eventId
    if not inference_id:
        raise _Bad(MISSING_FIELD, "missing eventMetadata.inferenceId and eventMetadata.eventId")
    endpoint, variant = _header(headers, "endpoint"), _header(headers, "variant")
    if m.eventMetadata.inferenceTime is not None:
        ts = parse_timestamp(m.eventMetadata.inferenceTime, "eventMetadata.inferenceTime")
    elif record_ts_ms is not None:
        ts = record_ts_ms
    else:
        raise _Bad(MISSING_FIELD, "missing eventMetadata.inferenceTime")
    prediction, score = _output(m.captureData.endpointOutput, "captureData.endpointOutput")
    model_version = headers.get("model_version")
    return Capture(
        inference_id=inference_id, endpoint=_dimension(endpoint, "Kafka header 'endpoint'"),
        variant=_dimension(variant, "Kafka header 'variant'"),
        timestamp_ms=_check_time(ts, now_ms, limits, "eventMetadata.inferenceTime"),
        model_version=_dimension(model_version.decode("utf-8", "replace"), "Kafka header 'model_version'") if model_version else None,
        shadow=headers.get("shadow", b"").lower() in (b"1", b"true"),
        prediction=_predict(prediction, score, threshold(endpoint)),
    )


# -- the fast path -------------------------------------------------------------------------
# The common record is rollguard's own well-formed JSON capture or label. It is parsed in Rust
# (pydantic-core's JSON parser, which keeps integers exact and rejects NaN and invalid UTF-8 as
# the full path does) and checked field by field with exact types, accepting a subset of what
# the pydantic models accept; `_capture` / `_label` then build the record, or, for the commonest
# shape (known names, epoch-ms time, 0/1 class), the same steps inline. Anything else (other
# forms, unknown keys, any type or range doubt, any error) returns None and takes the full path,
# which alone decides reasons and detail lines. tests/unit/pipelines/test_parse_fast.py
# compares the two paths record for record.

_CAPTURE_FIELDS = frozenset(_CaptureIn.model_fields)
_LABEL_FIELDS = frozenset(_LabelIn.model_fields)
_MAX_ID = 256


def _json_object(raw: bytes, limits: ParseLimits) -> dict[str, Any] | None:
    if len(raw) > limits.max_bytes:
        return None
    try:
        obj = from_json(raw, allow_inf_nan=False)
    except ValueError:
        return None
    return obj if type(obj) is dict else None


def _name(value: Any) -> bool:
    return type(value) is str and 0 < len(value) <= MAX_NAME_CHARS


def _number(value: Any, lo: float, hi: float) -> bool:
    """An int or finite float in [lo, hi], not a bool (strict pydantic floats refuse bools)."""
    return (type(value) is float or type(value) is int) and lo <= value <= hi


def _fast_capture(raw: bytes, now_ms: int, limits: ParseLimits, threshold: Callable[[str], float]) -> Capture | None:
    obj = _json_object(raw, limits)
    if obj is None or not _CAPTURE_FIELDS.issuperset(obj):
        return None
    g: Callable[..., Any] = obj.get  # values of any JSON type until checked
    inference_id, endpoint, variant, model_version = g("inference_id"), g("endpoint"), g("variant"), g("model_version")
    shadow, timestamp, latency_ms, status = g("shadow", False), g("timestamp"), g("latency_ms"), g("status")
    error, prediction, score, attributes = g("error"), g("prediction"), g("score"), g("attributes")
    valid = _VALID_DIMENSIONS
    known = (type(endpoint) is str and endpoint in valid and type(variant) is str and variant in valid
             and (model_version is None or (type(model_version) is str and model_version in valid)))
    if not ((known or (_name(endpoint) and _name(variant) and (model_version is None or _name(model_version))))
            and type(inference_id) is str and 0 < len(inference_id) <= _MAX_ID and type(shadow) is bool
            and (type(timestamp) is int or type(timestamp) is str or (type(timestamp) is float and math.isfinite(timestamp)))
            and (latency_ms is None or _number(latency_ms, 0, MAX_LATENCY_MS))
            and (status is None or (type(status) is int and 0 <= status <= 999))
            and (error is None or type(error) is str)
            and (prediction is None or type(prediction) is int or type(prediction) is bool)
            and (score is None or _number(score, 0.0, 1.0))):
        return None
    if attributes is not None:
        if type(attributes) is not dict:
            return None
        for v in attributes.values():
            if not (type(v) is str or type(v) is int or type(v) is bool or (type(v) is float and math.isfinite(v))):
                return None
    if latency_ms is not None:
        latency_ms = float(latency_ms)
    if not known or type(timestamp) is not int or timestamp < 0:  # new names, ISO times: the shared code
        try:
            return _capture(inference_id, endpoint, variant, model_version, shadow, timestamp, latency_ms, status,
                            error, prediction, None if score is None else float(score), attributes, now_ms, limits,
                            threshold)
        except _Bad:
            return None
    # the common record: what `_capture` does, inline (tests/unit/pipelines/test_parse_fast.py)
    if timestamp > now_ms + limits.max_future_ms:
        return None
    cut = threshold(endpoint)
    if prediction is not None:
        if prediction != 0 and prediction != 1:
            return None
        prediction = int(prediction)
    elif score is not None:
        prediction = int(score >= cut)
    is_error = (status is not None and status >= 400) or error is not None
    if prediction is None and not is_error:
        return None
    # positional (in field order): keyword matching was a tenth of building the record
    return Capture(inference_id, endpoint, variant, timestamp, model_version, shadow,
                   0.0 if latency_ms is not None and latency_ms < MIN_LATENCY_MS else latency_ms, is_error, prediction,
                   _attributes(attributes) if attributes else ())


def _fast_label(raw: bytes, now_ms: int, record_ts_ms: int | None, limits: ParseLimits) -> Label | None:
    obj = _json_object(raw, limits)
    if obj is None or not _LABEL_FIELDS.issuperset(obj):
        return None
    g: Callable[..., Any] = obj.get
    inference_id, endpoint, label, timestamp, source = g("inference_id"), g("endpoint"), g("label"), g("timestamp"), g("source")
    if not (type(inference_id) is str and 0 < len(inference_id) <= _MAX_ID and (endpoint is None or _name(endpoint))
            and (type(label) is int or type(label) is bool or type(label) is str
                 or (type(label) is float and math.isfinite(label)))
            and (timestamp is None or type(timestamp) is int or type(timestamp) is str
                 or (type(timestamp) is float and math.isfinite(timestamp)))
            and (source is None or type(source) is str)):
        return None
    if (type(label) is int or type(label) is bool) and (label == 0 or label == 1) and type(timestamp) is int \
            and 0 <= timestamp <= now_ms + limits.max_future_ms and (endpoint is None or endpoint in _VALID_DIMENSIONS):
        # the common label: what `_label` does, inline
        return Label(inference_id, int(label), timestamp, endpoint, source)  # positional, in field order
    try:
        return _label(inference_id, endpoint, label, timestamp, source, now_ms, record_ts_ms, limits)
    except _Bad:
        return None


def parse_capture(
    raw: bytes, *, now_ms: int, headers: Mapping[str, bytes] | None = None, record_ts_ms: int | None = None,
    source: Source | None = None, limits: ParseLimits = ParseLimits(),
    threshold: Callable[[str], float] = lambda endpoint: 0.5, fast: bool = True,
) -> Capture | BadRecord:
    """Parse one capture in either form; never raises on bad input. `fast=False` skips the fast
    path (the result is the same; tests compare the two)."""
    try:
        if fast:
            cap = _fast_capture(raw, now_ms, limits, threshold)
            if cap is not None:
                return cap
        obj = _load_object(raw, limits)
        if "captureData" in obj:
            return _capture_datacapture(obj, headers or {}, record_ts_ms, now_ms, limits, threshold)
        return _capture_rollguard(obj, now_ms, limits, threshold)
    except _Bad as bad:
        return BadRecord(bad.reason, bad.detail, raw, source)
    except Exception as ex:  # errors as data: no record may stop the daemon
        return BadRecord(UNPARSEABLE, _describe(ex), raw, source)


def parse_label(
    raw: bytes, *, now_ms: int, record_ts_ms: int | None = None, source: Source | None = None,
    limits: ParseLimits = ParseLimits(), fast: bool = True,
) -> Label | BadRecord:
    """Parse one label in either form; never raises on bad input. `fast=False` skips the fast
    path (the result is the same; tests compare the two)."""
    try:
        if fast:
            lab = _fast_label(raw, now_ms, record_ts_ms, limits)
            if lab is not None:
                return lab
        obj = _load_object(raw, limits)
        if "groundTruthData" in obj:
            try:
                gt = _GroundTruthIn.model_validate(obj)
            except ValidationError as err:
                raise _from_validation(err) from None
            inference_id = gt.eventMetadata.eventId or gt.eventMetadata.inferenceId
            if not inference_id:
                raise _Bad(MISSING_FIELD, "missing eventMetadata.eventId")
            text = _decode_data(gt.groundTruthData, "groundTruthData").strip()
            value: Any = text
            if _is_json(gt.groundTruthData):
                try:
                    value = json.loads(text, parse_constant=_reject_constant)
                except json.JSONDecodeError:
                    raise _Bad(NOT_JSON, "groundTruthData.data is not JSON") from None
                if isinstance(value, dict):
                    value = value.get("label", value.get("ground_truth", value))
            if not isinstance(value, (str, int, float, bool)):
                raise _Bad(INVALID_LABEL, "groundTruthData.data is not a binary class")
            if record_ts_ms is None:
                raise _Bad(MISSING_FIELD, "ground-truth line needs a Kafka record timestamp")
            return Label(
                inference_id=inference_id, label=_binary(value, "groundTruthData.data", INVALID_LABEL),
                timestamp_ms=_check_time(record_ts_ms, now_ms, limits), endpoint=None, source="groundTruth",
            )
        try:
            m = _LabelIn.model_validate(obj)
        except ValidationError as err:
            raise _from_validation(err) from None
        return _label(m.inference_id, m.endpoint, m.label, m.timestamp, m.source, now_ms, record_ts_ms, limits)
    except _Bad as bad:
        return BadRecord(bad.reason, bad.detail, raw, source)
    except Exception as ex:  # errors as data: no record may stop the daemon
        return BadRecord(UNPARSEABLE, _describe(ex), raw, source)


def _label(inference_id: str, endpoint: str | None, label: Scalar, timestamp: str | int | float | None,
           source: str | None, now_ms: int, record_ts_ms: int | None, limits: ParseLimits) -> Label:
    """A validated rollguard label's fields -> Label (both the fast and the pydantic path)."""
    if timestamp is not None:
        ts = parse_timestamp(timestamp)
    elif record_ts_ms is not None:
        ts = record_ts_ms
    else:
        raise _Bad(MISSING_FIELD, "missing required field 'timestamp'")
    return Label(
        inference_id=inference_id, label=_binary(label, "label", INVALID_LABEL),
        timestamp_ms=_check_time(ts, now_ms, limits),
        endpoint=None if endpoint is None else _dimension(endpoint, "endpoint"), source=source,
    )


def _describe(ex: Exception) -> str:
    return f"{type(ex).__name__}: {ex}".splitlines()[0][:300]
