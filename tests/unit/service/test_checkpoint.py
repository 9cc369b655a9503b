"""Checkpoint stores and the data-only checkpoint format (docs/checkpoint-format.md)."""
from __future__ import annotations

import hashlib
import json
import pickle
import zlib
from pathlib import Path
from typing import Any

import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from pipelines.datum import Datum
from pipelines.join import JoinPolicy
from pipelines.processor import PartitionPipeline, PipelineConfig
from pipelines.series import SegmentCap
from service import checkpoint_format
from service.checkpoint import LocalDirStore, decode, encode, open_store

NOW = 1_790_000_000_000
T0 = NOW - 3_600_000
UUID_A = "7f3a9c1e-0b2d-4e5f-8a6b-1c2d3e4f5a6b"
UUID_B = "00000000-0000-4000-8000-000000000001"
CONFIG = PipelineConfig(tick_ms=60_000, join=JoinPolicy())


def segments() -> SegmentCap:
    return SegmentCap(("merchant_category",), cap=2)


def submit(p: PartitionPipeline, topic: str, msg: dict[str, Any], now: int = NOW) -> None:
    offset = p.offsets.get(topic, 0)
    assert p.submit(topic, json.dumps(msg).encode(), offset, now) is None


def cap(iid: str, variant: str = "v5", **extra: Any) -> dict[str, Any]:
    msg = {"inference_id": iid, "endpoint": "fraud-ep", "variant": variant, "model_version": f"fraud-{variant}",
           "timestamp": T0, "prediction": 1, "latency_ms": 12.5, "attributes": {"merchant_category": "5411"}}
    return {**msg, **extra}


def lab(iid: str, value: int, **extra: Any) -> dict[str, Any]:
    return {"inference_id": iid, "label": value, "timestamp": T0 + 5000, **extra}


def real_pipeline() -> PartitionPipeline:
    """UUID and other ids, a shadow pair (a tuple entry), labels (entries > 64 bits), pending labels
    with and without an endpoint, a correction, counts and latency, segments, a bad record."""
    p = PartitionPipeline(3, CONFIG, segments())
    submit(p, "labels", lab("early-no-endpoint", 1))  # pending, endpoint None
    submit(p, "labels", lab(UUID_B, 0, endpoint="fraud-ep"))  # pending, keyed by 16 bytes
    submit(p, "captures", cap(UUID_A))
    submit(p, "captures", cap(UUID_A, "v6", shadow=True, prediction=0))
    submit(p, "captures", cap("txn-42", attributes={"merchant_category": "5999"}, status=503))
    submit(p, "captures", cap(UUID_A.upper(), attributes={"merchant_category": "7995"}))  # not canonical: a str key
    submit(p, "labels", lab(UUID_A, 1, endpoint="fraud-ep"))
    submit(p, "labels", lab("txn-42", 0))
    submit(p, "labels", lab("txn-42", 1, timestamp=T0 + 9000))  # a correction
    assert p.submit("captures", b"{not json", p.offsets["captures"], NOW) is not None
    return p


def unsent_of(p: PartitionPipeline) -> dict[str, list[Datum]]:
    datums = PartitionPipeline.restore(p.snapshot(), CONFIG, segments()).tick(NOW)
    assert any(d.values for d in datums) and any(d.value is not None for d in datums)
    return {"p3-1-1-0": datums[:5], "p3-1-1-1": datums[5:]}


def real_state() -> dict[str, Any]:
    p = real_pipeline()
    return {"pipeline": p.snapshot(), "unsent": unsent_of(p)}


def reseal(doc: Any, *, compression: str = "zlib", version: int = 4, header: bytes | None = None) -> bytes:
    """A well-formed file around any body: what someone with write access to the store could make."""
    body = json.dumps(doc).encode() if not isinstance(doc, bytes) else doc
    if compression == "zlib":
        body = zlib.compress(body)
    envelope = {"format": "rollguard-checkpoint", "version": version, "compression": compression,
                "length": len(body), "sha256": hashlib.sha256(body).hexdigest()}
    return (header or b"RGCK%d\n" % version) + json.dumps(envelope).encode() + b"\n" + body


def body_of(data: bytes) -> Any:
    envelope, _, body = data[len(b"RGCK4\n"):].partition(b"\n")
    raw = zlib.decompress(body) if json.loads(envelope)["compression"] == "zlib" else body
    return json.loads(raw)


# -------------------------------------------------------------------------------- stores


def test_local_store_round_trip_and_atomic_replace(tmp_path: Path) -> None:
    store = LocalDirStore(tmp_path / "state")
    assert store.load("p0.ckpt") is None
    first, second = real_state(), {"pipeline": PartitionPipeline(0, CONFIG).snapshot(), "unsent": {}}
    store.save("p0.ckpt", encode(first))
    store.save("p0.ckpt", encode(second))
    assert decode(store.load("p0.ckpt") or b"", "p0.ckpt") == second
    assert sorted(p.name for p in (tmp_path / "state").iterdir()) == ["p0.ckpt"]  # no temp files left


def test_open_store_picks_s3_or_directory(tmp_path: Path) -> None:
    s3 = open_store("s3://bucket/some/prefix", object)
    assert type(s3).__name__ == "S3Store" and s3._key("p1") == "some/prefix/p1"  # type: ignore[attr-defined]
    assert isinstance(open_store(str(tmp_path), lambda: None), LocalDirStore)
    with pytest.raises(ValueError, match="s3://bucket/prefix"):
        open_store("s3://", lambda: None)


# -------------------------------------------------------------------------------- round trips


def test_real_pipeline_state_round_trips_exactly() -> None:
    state = real_state()
    data = encode(state)
    assert data.startswith(b"RGCK4\n{")
    back = decode(data, "p3.ckpt")
    assert back == state
    join, join_back = state["pipeline"]["join"], back["pipeline"]["join"]
    # what == on dicts does not see: key types, arrival order, entry types
    for kind in ("captures", "labels"):
        for ep, pending in join[kind].items():
            assert [(k, type(k)) for k in join_back[kind][ep]] == [(k, type(k)) for k in pending]
            assert [type(v) for v in join_back[kind][ep].values()] == [type(v) for v in pending.values()]
    keys = join_back["captures"]["fraud-ep"]
    assert bytes.fromhex(UUID_A.replace("-", "")) in keys and "txn-42" in keys and UUID_A.upper() in keys
    entry = keys[bytes.fromhex(UUID_A.replace("-", ""))]
    assert isinstance(entry, tuple) and len(entry) == 2 and max(e.bit_length() for e in entry) > 64
    assert set(join_back["labels"]) == {None, "fraud-ep"}
    assert list(back["unsent"]) == list(state["unsent"])
    assert all(type(d) is Datum for datums in back["unsent"].values() for d in datums)


def test_restored_pipeline_equals_the_original_and_behaves_the_same() -> None:
    original = real_pipeline()
    restored = PartitionPipeline.restore(
        decode(encode({"pipeline": original.snapshot(), "unsent": {}}), "p3.ckpt")["pipeline"], CONFIG, segments())
    assert restored.snapshot() == original.snapshot()
    assert restored.offsets == original.offsets and restored.bad_records == original.bad_records
    assert restored.aggregator.snapshot() == original.aggregator.snapshot()
    assert (restored.join.pending_captures, restored.join.pending_labels) == (3, 2)
    for p in (original, restored):  # the same records afterwards: the same datums
        submit(p, "captures", cap(UUID_B, attributes={"merchant_category": "1234"}))  # finds its pending label
        submit(p, "labels", lab(UUID_A, 0, endpoint="fraud-ep", timestamp=T0 + 20_000))  # corrects a shadow pair
        submit(p, "captures", cap("early-no-endpoint", "v6"))
        submit(p, "captures", cap("late", "v5", latency_ms=250.0))
    assert restored.tick(NOW + 60_000) == original.tick(NOW + 60_000)
    assert restored.snapshot() == original.snapshot()
    expired = restored.tick(NOW + 20 * 86_400_000)  # expiry walks each dict in arrival order
    assert expired == original.tick(NOW + 20 * 86_400_000) and any(d.name == "Expired" for d in expired)
    assert restored.join.pending_captures == original.join.pending_captures == 0


def test_uncompressed_files_decode_too() -> None:
    state = real_state()
    data = checkpoint_format.encode(state, compress=False)
    assert b'"compression":"none"' in data.split(b"\n")[1]
    assert decode(data, "p3.ckpt") == state


def test_body_spells_out_types_json_lacks() -> None:
    body = body_of(encode(real_state()))
    captures = body["pipeline"]["join"]["captures"][0]
    assert captures["endpoint"] == "fraud-ep"
    assert captures["ids"][0] == "b:" + UUID_A.replace("-", "")
    assert "s:txn-42" in captures["ids"] and "s:" + UUID_A.upper() in captures["ids"]
    assert isinstance(captures["entries"][0], list)  # the shadow pair
    assert {item["endpoint"] for item in body["pipeline"]["join"]["labels"]} == {None, "fraud-ep"}
    assert body["pipeline"]["join"]["series"][0] == ["fraud-ep", "v5", "fraud-v5", [["merchant_category", "5411"]]]
    datum = body["unsent"][0]["datums"][0]
    assert set(datum) == {"name", "dimensions", "timestamp_ms", "unit", "value", "values", "counts"}


# a small pool makes ids repeat (shadow pairs, corrections, labels meeting captures); ids that look
# like the format's own tags must survive too
POOL = st.sampled_from([UUID_A, UUID_B, UUID_A.upper(), "txn-1", "s:x", "b:" + "00" * 16, "\u00e9", ""])
ids = st.one_of(
    POOL, POOL, POOL,
    st.uuids(version=4).map(str),
    st.text(alphabet=st.characters(codec="utf-8"), min_size=1, max_size=12),
)


@settings(max_examples=60, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(st.lists(st.tuples(st.sampled_from(["capture", "shadow", "label", "orphan"]), ids, st.integers(0, 1),
                          st.integers(0, 10_000_000), st.floats(0, 600_000, allow_nan=False)), min_size=4, max_size=40))
def test_any_sequence_of_records_round_trips(ops: list[tuple[str, str, int, int, float]]) -> None:
    p = PartitionPipeline(0, CONFIG, segments())
    for offset, (kind, iid, value, dt, latency) in enumerate(ops):
        if kind in ("capture", "shadow"):
            msg = cap(iid, "v6" if kind == "shadow" else "v5", shadow=kind == "shadow", prediction=value,
                      timestamp=T0 + dt, latency_ms=latency)
        else:
            msg = lab(iid, value, timestamp=T0 + dt, **({"endpoint": "fraud-ep"} if kind == "label" else {}))
        p.submit("captures" if kind in ("capture", "shadow") else "labels", json.dumps(msg).encode(), offset, NOW)
    state = {"pipeline": p.snapshot(), "unsent": {"b": PartitionPipeline.restore(p.snapshot(), CONFIG).tick(NOW)}}
    back = decode(encode(state), "h.ckpt")
    assert back == state
    for kind in ("captures", "labels"):
        for ep, pending in state["pipeline"]["join"][kind].items():
            assert [(k, type(k)) for k in back["pipeline"]["join"][kind][ep]] == [(k, type(k)) for k in pending]


# -------------------------------------------------------------------------------- refusals


class RunsCode:
    """A pickle that writes a marker file when loaded: what a crafted checkpoint does."""

    def __init__(self, marker: Path) -> None:
        self.marker = marker

    def __reduce__(self) -> tuple[Any, ...]:
        return (exec, (f"open({str(self.marker)!r}, 'w').write('ran')",))


def test_the_crafted_pickle_really_runs_code_when_unpickled(tmp_path: Path) -> None:
    """The control for the refusals below: the payload is live."""
    marker = tmp_path / "marker"
    pickle.loads(pickle.dumps(RunsCode(marker)))
    assert marker.read_text() == "ran"


@pytest.mark.parametrize("wrap, message", [
    (lambda p: b"RGCK1\n" + p, "old RGCK1 pickle format, which can run code when loaded"),
    (lambda p: p, "not a rollguard checkpoint (it looks like a bare pickle"),
    (lambda p: b"RGCK2\n" + p, "corrupt"),
    (lambda p: reseal(p, compression="none"), "corrupt (body"),
    (lambda p: reseal(p), "corrupt (body"),
])
def test_pickle_payloads_are_refused_and_never_run(tmp_path: Path, wrap: Any, message: str) -> None:
    marker = tmp_path / "marker"
    data = wrap(pickle.dumps(RunsCode(marker), protocol=5))
    with pytest.raises(ValueError) as err:
        decode(data, "g.captures.labels.p0.ckpt")
    assert str(err.value).startswith("checkpoint 'g.captures.labels.p0.ckpt': ") and message in str(err.value)
    assert "\n" not in str(err.value)
    assert not marker.exists()


def test_old_pickle_checkpoint_message_says_what_to_do() -> None:
    with pytest.raises(ValueError) as err:
        decode(b"RGCK1\n" + pickle.dumps({"pipeline": {}, "unsent": {}}), "g.captures.labels.p0.ckpt")
    assert str(err.value) == (
        "checkpoint 'g.captures.labels.p0.ckpt': refused: it is in the old RGCK1 pickle format, which can run "
        "code when loaded, so this rollguard never reads it; delete it to restart this partition from the "
        "consumer group's committed offsets with no pending joins (see docs/checkpoint-format.md)")


def test_unknown_versions_are_refused() -> None:
    body = body_of(encode(real_state()))
    with pytest.raises(ValueError, match=r"^checkpoint 'g.p0.ckpt': unsupported checkpoint version 7 "
                                         r"\(this rollguard reads versions 2, 3 and 4\)$"):
        decode(reseal(body, version=7, header=b"RGCK7\n"), "g.p0.ckpt")
    with pytest.raises(ValueError, match="envelope version 2 differs from the header's 4"):
        decode(reseal(body, version=2, header=b"RGCK4\n"), "g.p0.ckpt")


@pytest.mark.parametrize("data, message", [
    (b"hello", "not a rollguard checkpoint (no RGCK header)"),
    (b"", "corrupt (empty)"),
    (b"RGCK", "corrupt (truncated after 4 bytes)"),
    (b"RGCK2\n{\"format\":", "corrupt (truncated envelope)"),
    (b"RGCK2\n" + b" " * 2000, "corrupt (no envelope line)"),
    (b"RGCK2\nnope\n", "corrupt (the envelope line is not JSON)"),
    (b'RGCK2\n{"format":"other","version":2}\n', "not a rollguard checkpoint (envelope format is not 'rollguard-checkpoint')"),
    (b'RGCK2\n{"format":"rollguard-checkpoint","version":2}\n', "corrupt (envelope: missing 'compression', 'length', 'sha256')"),
    (b'RGCK2\n{"format":"rollguard-checkpoint","version":2,"compression":"zlib","length":1,"sha256":"x","x":1}\n',
     "corrupt (envelope: unexpected field 'x')"),
    (b'RGCK2\n{"format":"rollguard-checkpoint","version":2,"compression":"lzma","length":1,"sha256":"x"}\n',
     "corrupt (envelope compression 'lzma', expected one of ['zlib', 'none'])"),
    (b'RGCK2\n{"format":"rollguard-checkpoint","version":2,"compression":"zlib","length":-1,"sha256":"x"}\n',
     "corrupt (envelope length -1 is not an integer >= 0)"),
    (b'RGCK2\n{"format":"rollguard-checkpoint","version":2,"compression":"zlib","length":1,"sha256":"x"}\n',
     "corrupt (envelope sha256 is not 64 lowercase hex digits)"),
])
def test_foreign_and_broken_headers_are_refused(data: bytes, message: str) -> None:
    with pytest.raises(ValueError) as err:
        decode(data, "x.ckpt")
    assert str(err.value).startswith("checkpoint 'x.ckpt': ") and message in str(err.value)


def test_bad_checksum_and_truncation_are_refused() -> None:
    data = encode(real_state())
    flipped = data[:-10] + bytes([data[-10] ^ 1]) + data[-9:]
    with pytest.raises(ValueError, match=r"^checkpoint 'x.ckpt': corrupt \(checksum mismatch\)$"):
        decode(flipped, "x.ckpt")
    with pytest.raises(ValueError, match=r"corrupt \(truncated: body has \d+ of \d+ bytes\)"):
        decode(data[:-1], "x.ckpt")
    with pytest.raises(ValueError, match=r"corrupt \(1 bytes after the body\)"):
        decode(data + b"\n", "x.ckpt")
    for cut in (3, 6, 20, len(data) // 2):
        with pytest.raises(ValueError, match="^checkpoint 'x.ckpt': corrupt"):
            decode(data[:cut], "x.ckpt")


def _edit(path: str, value: Any) -> Any:
    """A real body with the field at `path` (dots; ints index arrays) set to `value`."""
    body = body_of(encode(real_state()))
    *parents, last = [int(p) if p.lstrip("-").isdigit() else p for p in path.split(".")]
    node = body
    for p in parents:
        node = node[p]
    node[last] = value
    return body


@pytest.mark.parametrize("path, value, message", [
    ("pipeline.offsets.captures", "12", "pipeline.offsets.captures: expected an integer >= 0, got '12'"),
    ("pipeline.offsets.captures", True, "expected an integer >= 0, got bool"),
    ("pipeline.partition", -1, "pipeline.partition: expected an integer >= 0, got -1"),
    ("pipeline.join.captures.0.entries.1", 1.5, "pipeline.join.captures[0].entries[1]: expected an integer"),
    ("pipeline.join.captures.0.entries.1", -1, "entries[1]: expected an integer of 0..150 bits"),
    ("pipeline.join.captures.0.entries.1", 1 << 150, "entries[1]: expected an integer of 0..150 bits"),
    ("pipeline.join.captures.0.entries.0", [5], "entries[0]: expected an integer of 0..150 bits or an array of 2 or more"),
    ("pipeline.join.captures.0.entries.0", [5, "6"], "entries[0]"),
    ("pipeline.join.labels.0.entries.0", [5, 6], "pipeline.join.labels[0].entries[0]: expected an integer of 0..80 bits"),
    ("pipeline.join.captures.0.ids.0", "7f3a9c1e0b2d4e5f8a6b1c2d3e4f5a6b", 'ids[0]: expected an inference id "s:<id>"'),
    ("pipeline.join.captures.0.ids.0", "b:7f3a", "ids[0]: expected an inference id"),
    ("pipeline.join.captures.0.ids.0", "b:" + "zz" * 16, "ids[0]: expected an inference id"),
    ("pipeline.join.captures.0.ids.0", "b:" + "ab " * 10 + "ab", "ids[0]: expected an inference id"),
    ("pipeline.join.captures.0.ids.0", 7, "ids[0]: expected an inference id"),
    ("pipeline.join.captures.0.ids.2", "s:txn-42", "pipeline.join.captures[0].ids: an inference id appears twice"),
    ("pipeline.join.captures.0.ids", [], "pipeline.join.captures[0]: 0 ids but 3 entries"),
    ("pipeline.join.captures.0.endpoint", None, "pipeline.join.captures[0].endpoint: expected a string, got NoneType"),
    ("pipeline.join.captures.0.extra", 1, "pipeline.join.captures[0]: unexpected field 'extra'"),
    ("pipeline.join.series.0", ["fraud-ep", "v5", None], "pipeline.join.series[0]: expected a series"),
    ("pipeline.join.series.0.3", [["merchant_category"]], "pipeline.join.series[0][3][0]: expected a [string, string] pair"),
    ("pipeline.join.series.1", ["fraud-ep", "v5", "fraud-v5", [["merchant_category", "5411"]]], "a series appears twice"),
    ("pipeline.join.stats.surprise", 1, "pipeline.join.stats: unexpected field 'surprise'"),
    ("pipeline.join.stats.captures", -3, "pipeline.join.stats.captures: expected an integer >= 0"),
    ("pipeline.aggregator.counts.0.3", 2.0, "pipeline.aggregator.counts[0][3]: expected an integer, got float"),
    ("pipeline.aggregator.counts.0.0", "1790000000000", "pipeline.aggregator.counts[0][0]: expected an integer"),
    ("pipeline.aggregator.latency.0.2", [[12.0, 1], [12.0, 2]], "expected a distinct latency >= 0"),
    ("pipeline.aggregator.latency.0.2.0.0", "<raw>1e400", "expected a finite number, got float"),
    ("pipeline.segments.merchant_category", [1], "pipeline.segments.merchant_category[0]: expected a string"),
    ("pipeline.bad_records.not_json", "1", "pipeline.bad_records.not_json: expected an integer >= 0"),
    ("pipeline.version", 1, "pipeline: unexpected field 'version'"),
    ("pipeline.offsets.a\nb", -1, "pipeline.offsets['a\\nb']: expected an integer >= 0, got -1"),
    ("unsent.0.batch_id", 5, "unsent[0].batch_id: expected a string, got 5"),
    ("unsent.1.batch_id", "p3-1-1-0", "unsent[1]: batch 'p3-1-1-0' appears twice"),
    ("unsent.0.datums.0.timestamp_ms", 1.5, "unsent[0].datums[0].timestamp_ms: expected an integer, got float"),
    ("unsent.0.datums.0.value", "1", "unsent[0].datums[0].value: expected a finite number, got '1'"),
    ("unsent.0.datums.0.values", [1.0], "unsent[0].datums[0]: 1 values but 0 counts"),
    ("unsent.0.datums.0.dimensions", {"EndpointName": "x"}, "unsent[0].datums[0].dimensions: expected an array, got dict"),
    ("unsent.0.datums.0.__class__", "os.system", "unsent[0].datums[0]: unexpected field '__class__'"),
    ("unsent.0", ["p3-1-1-0", []], "unsent[0]: expected an object, got list"),
])
def test_wrong_types_and_shapes_are_refused(path: str, value: Any, message: str) -> None:
    raw = json.dumps(_edit(path, value)).replace('"<raw>1e400"', "1e400")  # JSON text Python would not write
    with pytest.raises(ValueError) as err:
        decode(reseal(raw.encode()), "g.p3.ckpt")
    text = str(err.value)
    assert text.startswith("checkpoint 'g.p3.ckpt': invalid (") and message in text, text
    assert "\n" not in text


@pytest.mark.parametrize("body, message", [
    (b"[]", "invalid (body: expected an object, got list)"),
    (b'{"pipeline": {}, "unsent": [], "store": null, "more": 1}', "invalid (body: unexpected field 'more')"),
    (b'{"pipeline": {}, "unsent": [], "store": null}', "invalid (pipeline: missing 'aggregator', 'bad_records', 'comparisons', 'join', 'offsets' "
                                       "and 3 more)"),
    (b'{"pipeline": NaN, "unsent": []}', "corrupt (body: ValueError: NaN is not a number this format allows"),
    (b"[" * 100_000 + b"]" * 100_000, "corrupt (body: RecursionError"),
    (b"\xff\xfe", "corrupt (body: UnicodeDecodeError"),
])
def test_bodies_that_are_not_a_state_are_refused(body: bytes, message: str) -> None:
    with pytest.raises(ValueError) as err:
        decode(reseal(body), "x.ckpt")
    assert message in str(err.value) and "\n" not in str(err.value)


def test_encode_refuses_state_it_would_lose() -> None:
    state = real_state()
    state["pipeline"]["new_field"] = 1
    with pytest.raises(ValueError, match="cannot encode the pipeline snapshot"):
        encode(state)
    state = real_state()
    state["pipeline"]["version"] = 2
    with pytest.raises(ValueError, match="cannot encode pipeline snapshot version 2"):
        encode(state)


def test_daemon_refuses_a_pickle_checkpoint_and_runs_nothing(tmp_path: Path) -> None:
    from tests.unit.service.test_daemon import Store, daemon

    marker = tmp_path / "marker"
    store = Store()
    name = "rollguard.captures.labels.p0.ckpt"
    store.files[name] = b"RGCK1\n" + pickle.dumps(RunsCode(marker), protocol=5)
    with pytest.raises(ValueError, match=f"checkpoint '{name}': refused: it is in the old RGCK1 pickle format"):
        daemon(store).load_partition(0)
    assert not marker.exists()
    assert store.files[name].startswith(b"RGCK1\n")  # left for the operator, not overwritten


def test_a_version_2_file_without_comparisons_is_still_read() -> None:
    state = real_state()
    doc = body_of(encode(state))
    del doc["pipeline"]["comparisons"], doc["store"], doc["pipeline"]["join"]["implicit"]
    for name in ("implicit_labels", "implicit_corrections"):
        del doc["pipeline"]["join"]["stats"][name]
    back = decode(reseal(doc, version=2), "p3.ckpt")
    assert back["pipeline"]["comparisons"] == {}
    assert back["pipeline"]["join"] == decode(encode(state), "p3.ckpt")["pipeline"]["join"]
    with pytest.raises(ValueError, match="unexpected field 'store'"):
        decode(reseal(body_of(encode(state)), version=2), "p3.ckpt")
