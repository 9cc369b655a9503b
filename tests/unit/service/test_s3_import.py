"""`rollguard import-s3` without Kafka or S3: key parsing, line -> record, ledger diffing, the import
pass and the command, against in-memory edges."""
from __future__ import annotations

import base64
import json
import threading
from collections.abc import Iterable, Iterator
from dataclasses import dataclass, field

import pytest

from pipelines.parse import parse_capture
from pipelines.records import Capture
from service.commands.import_s3 import main
from service.s3_import.edges import ConfigError, Edges, OpenedObject, SinkError, SourceError
from service.s3_import.importer import Importer
from service.s3_import.layout import CaptureKey, S3Prefix, SkippedKey, parse_key, parse_prefix
from service.s3_import.ledger import Ledger, ObjectInfo, ledger_name, plan
from service.s3_import.records import Record, VariantTags, inference_id, iter_lines, to_record
from service.settings import Settings, SettingsError

NOW_MS = 1_790_000_000_000  # 2026-09-21
KEY = "dc/fraud-ep/AllTraffic/2026/09/21/07/05-12-345-1b2c3d4e.jsonl"


def capture_line(event_id: str, output: str, *, encoding: str = "CSV", content_type: str = "text/csv",
                 inference_id: str | None = None, time: str = "2026-09-21T07:05:12Z") -> bytes:
    meta: dict[str, str] = {"eventId": event_id, "inferenceTime": time}
    if inference_id is not None:
        meta["inferenceId"] = inference_id
    data = base64.b64encode(output.encode()).decode() if encoding == "BASE64" else output
    return json.dumps({
        "captureData": {
            "endpointInput": {"observedContentType": "text/csv", "mode": "INPUT",
                              "data": "69,0,153.7,109", "encoding": "CSV"},
            "endpointOutput": {"observedContentType": content_type, "mode": "OUTPUT", "data": data,
                               "encoding": encoding},
        },
        "eventMetadata": meta,
        "eventVersion": "0",
    }, separators=(",", ":")).encode()


# ---------------------------------------------------------------- prefixes and keys


@pytest.mark.parametrize("uri, bucket, prefix", [
    ("s3://bucket/dc/", "bucket", "dc/"),
    ("s3://bucket/dc", "bucket", "dc/"),  # a directory: `dc` must not match `dc-old/`
    ("s3://bucket/a/b/c/", "bucket", "a/b/c/"),
    ("s3://bucket", "bucket", ""),
    ("s3://bucket/", "bucket", ""),
    ("s3://my.bucket-1/x/", "my.bucket-1", "x/"),
])
def test_prefixes_parse(uri: str, bucket: str, prefix: str) -> None:
    parsed = parse_prefix(uri)
    assert parsed == S3Prefix(bucket, prefix)
    assert parsed.uri == f"s3://{bucket}/{prefix}"


@pytest.mark.parametrize("uri, message", [
    ("bucket/dc/", "expected s3://bucket/prefix/"),
    ("https://bucket.s3.amazonaws.com/dc/", "expected s3://bucket/prefix/"),
    ("s3:///dc/", "no bucket name"),
    ("s3://XX/dc/", "is not a bucket name"),
    ("s3://my bucket/dc/", "is not a bucket name"),
])
def test_bad_prefixes_say_what_was_expected(uri: str, message: str) -> None:
    with pytest.raises(ValueError, match=message) as err:
        parse_prefix(uri)
    assert repr(uri) in str(err.value)


def test_a_data_capture_key_parses() -> None:
    assert parse_key(KEY) == CaptureKey(KEY, "fraud-ep", "AllTraffic", "2026/09/21/07", "05-12-345-1b2c3d4e.jsonl")


@pytest.mark.parametrize("key, endpoint, variant", [
    ("ep/v/2026/01/02/03/f.jsonl", "ep", "v"),  # destination at the bucket root
    ("a/b/c/d/ep/v/2026/01/02/03/f.jsonl", "ep", "v"),  # deeply nested destination
    ("dc/fraud%2Dep/v6%2Dshadow/2026/01/02/03/f.jsonl", "fraud-ep", "v6-shadow"),  # URL-encoded parts
    ("dc/ep%20x/v%2/2026/01/02/03/f.jsonl", "ep x", "v%2"),  # an invalid escape is kept as it is
])
def test_keys_are_read_from_the_right(key: str, endpoint: str, variant: str) -> None:
    parsed = parse_key(key)
    assert isinstance(parsed, CaptureKey)
    assert (parsed.endpoint, parsed.variant, parsed.key) == (endpoint, variant, key)  # key itself never decoded


@pytest.mark.parametrize("key, reason", [
    ("dc/README.txt", "expected {endpoint}/{variant}"),
    ("ep/2026/01/02/03/f.jsonl", "expected {endpoint}/{variant}"),
    ("dc/ep/v/2026/01/02/03/f.json", "not a .jsonl file"),
    ("dc/ep/v/2026/01/02/03/f.jsonl.gz", "not a .jsonl file"),
    ("dc/ep/v/2026/01/02/03/.jsonl", "not a .jsonl file"),
    ("dc/ep/v/2026/01/02/03/", "not a .jsonl file"),  # a "directory" placeholder object
    ("dc/ep/v/26/01/02/03/f.jsonl", "is not yyyy/mm/dd/hh"),
    ("dc/ep/v/2026/1/02/03/f.jsonl", "is not yyyy/mm/dd/hh"),
    ("dc/ep/v/2026/٠١/02/03/f.jsonl", "is not yyyy/mm/dd/hh"),  # non-ASCII digits
    ("dc/ep/v/2026/13/02/03/f.jsonl", "not a valid date"),
    ("dc/ep/v/2026/02/30/03/f.jsonl", "not a valid date"),
    ("dc/ep/v/2026/01/02/24/f.jsonl", "not a valid date"),
    ("dc//v/2026/01/02/03/f.jsonl", "empty endpoint"),
    ("dc/ep//2026/01/02/03/f.jsonl", "empty variant"),
    (f"dc/{'e' * 256}/v/2026/01/02/03/f.jsonl", "the limit is 255"),
])
def test_keys_outside_the_layout_are_skipped_with_a_reason(key: str, reason: str) -> None:
    skipped = parse_key(key)
    assert isinstance(skipped, SkippedKey)
    assert skipped.key == key and reason in skipped.reason


# ---------------------------------------------------------------- lines and records


def test_lines_split_across_chunks_and_keep_their_numbers() -> None:
    chunks = [b'{"a":', b'1}\n\n{"b"', b':2}\r\n', b"", b'{"c":3}']
    assert list(iter_lines(chunks)) == [b'{"a":1}', b"", b'{"b":2}', b'{"c":3}']
    assert list(iter_lines([b"x\n"])) == [b"x"]
    assert list(iter_lines([])) == []


def test_the_inference_id_is_preferred_to_the_event_id() -> None:
    assert inference_id(capture_line("evt-1", "0.9", inference_id="inf-1")) == "inf-1"
    assert inference_id(capture_line("evt-1", "0.9")) == "evt-1"
    assert inference_id(b'{"eventMetadata": {"inferenceId": "", "eventId": "evt-2"}}') == "evt-2"
    assert inference_id(b'{"eventMetadata": {"eventId": 17}}') is None
    assert inference_id(b'{"inference_id": "own-form"}') == "own-form"  # rollguard's own capture form
    for bad in (b"{not json", b"[1, 2]", b'"text"', b"\xff\xfe", b'{"eventMetadata": "x"}'):
        assert inference_id(bad) is None


@pytest.mark.parametrize("output, encoding, content_type, prediction", [
    ("0.87", "CSV", "text/csv", 1),
    ("0.12", "BASE64", "text/csv", 0),
    ('{"predictions": [{"score": 0.91}]}', "JSON", "application/json", 1),
    ('{"predicted_label": 0, "score": 0.2}', "BASE64", "application/json", 0),
])
def test_a_line_becomes_a_record_untouched_with_headers(output: str, encoding: str, content_type: str,
                                                         prediction: int) -> None:
    line = capture_line("evt-9", output, encoding=encoding, content_type=content_type, inference_id="inf-9")
    key = parse_key(KEY)
    assert isinstance(key, CaptureKey)
    record = to_record(line, key)
    assert record == Record(b"inf-9", line, (("endpoint", b"fraud-ep"), ("variant", b"AllTraffic")))
    capture = parse_capture(record.value, now_ms=NOW_MS, headers=dict(record.headers))
    assert isinstance(capture, Capture)
    assert (capture.inference_id, capture.endpoint, capture.variant, capture.prediction) == (
        "inf-9", "fraud-ep", "AllTraffic", prediction)


def test_lines_that_are_not_json_are_produced_unkeyed_and_blank_lines_are_not() -> None:
    key = parse_key(KEY)
    assert isinstance(key, CaptureKey)
    record = to_record(b"{truncated", key)
    assert record is not None and record.key is None and record.value == b"{truncated"
    assert to_record(b"", key) is None and to_record(b"  \t", key) is None


def test_variant_tags_add_shadow_and_model_version_headers() -> None:
    key = parse_key("dc/fraud-ep/v6-shadow/2026/09/21/07/f.jsonl")
    assert isinstance(key, CaptureKey)
    tags = VariantTags(frozenset({"v6-shadow"}), {"v6-shadow": "fraud-v6"})
    record = to_record(capture_line("e", "0.7"), key, tags)
    assert record is not None
    assert record.headers[2:] == (("shadow", b"true"), ("model_version", b"fraud-v6"))
    capture = parse_capture(record.value, now_ms=NOW_MS, headers=dict(record.headers))
    assert isinstance(capture, Capture) and capture.shadow and capture.model_version == "fraud-v6"
    other = parse_key(KEY)
    assert isinstance(other, CaptureKey)
    assert VariantTags().headers("v6-shadow") == () and tags.headers(other.variant) == ()


# ---------------------------------------------------------------- the ledger


def test_the_plan_imports_new_and_changed_objects_oldest_hour_first() -> None:
    listing = [
        ObjectInfo("dc/ep/v6/2026/09/21/08/00-00-000-a.jsonl", '"e1"'),
        ObjectInfo("dc/ep/v5/2026/09/21/08/00-00-000-b.jsonl", '"e2"'),
        ObjectInfo("dc/ep/v6/2026/09/21/07/59-00-000-c.jsonl", '"e3"'),
        ObjectInfo("dc/ep/v5/2026/09/21/07/00-00-000-d.jsonl", '"new-etag"'),
        ObjectInfo("dc/ep/v5/2026/09/21/07/10-00-000-e.jsonl", '"e5"'),
        ObjectInfo("dc/notes.txt", '"e6"'),
    ]
    ledger = Ledger("s3://bkt/dc/", {
        "dc/ep/v5/2026/09/21/07/00-00-000-d.jsonl": '"old-etag"',  # overwritten: import again
        "dc/ep/v5/2026/09/21/07/10-00-000-e.jsonl": '"e5"',  # imported before
        "dc/ep/v5/2026/09/20/00/gone.jsonl": '"e0"',  # no longer listed (lifecycle): forgotten
    })
    p = plan(listing, ledger)
    assert [info.key.rsplit("/", 1)[1] for info, _ in p.todo] == [
        "00-00-000-d.jsonl", "59-00-000-c.jsonl", "00-00-000-a.jsonl", "00-00-000-b.jsonl"]
    assert [s.key for s in p.skipped] == ["dc/notes.txt"]
    assert p.already == 1
    assert p.ledger == Ledger("s3://bkt/dc/", {
        "dc/ep/v5/2026/09/21/07/00-00-000-d.jsonl": '"old-etag"',
        "dc/ep/v5/2026/09/21/07/10-00-000-e.jsonl": '"e5"',
    })


def test_an_empty_listing_empties_the_ledger_and_plans_nothing() -> None:
    p = plan([], Ledger("s3://bkt/dc/", {"k": "e"}))
    assert p.todo == () and p.skipped == () and p.already == 0 and p.ledger == Ledger("s3://bkt/dc/")


def test_the_ledger_round_trips_and_refuses_foreign_bytes() -> None:
    ledger = Ledger("s3://bkt/dc/").with_imported("k1", '"e1"').with_imported("k2", '"e2"')
    assert Ledger.decode(ledger.encode(), "x") == ledger
    assert ledger.imported("k1", '"e1"') and not ledger.imported("k1", '"e2"') and not ledger.imported("k3", '"e1"')
    for bad in (b"{", b"[]", b'{"version": 2, "prefix": "s3://bkt/dc/", "objects": {}}',
                b'{"version": 1, "prefix": "s3://bkt/dc/", "objects": {"k": 1}}'):
        with pytest.raises(ValueError, match="delete it to import everything again"):
            Ledger.decode(bad, "import-s3.x.json")


def test_each_prefix_has_its_own_ledger_name() -> None:
    a, b = ledger_name(parse_prefix("s3://bkt/dc/")), ledger_name(parse_prefix("s3://bkt/dc2/"))
    assert a != b and a == ledger_name(parse_prefix("s3://bkt/dc"))
    assert a.startswith("import-s3.") and a.endswith(".json")


# ---------------------------------------------------------------- the import pass, in memory


class MemStore:
    def __init__(self) -> None:
        self.data: dict[str, bytes] = {}
        self.saves = 0

    def load(self, name: str) -> bytes | None:
        return self.data.get(name)

    def save(self, name: str, data: bytes) -> None:
        self.data[name] = data
        self.saves += 1


@dataclass
class MemObjects:
    objects: dict[str, tuple[str, bytes]] = field(default_factory=dict)  # key -> (etag, body)
    missing_bucket: bool = False
    fail_reading: set[str] = field(default_factory=set)
    vanish: set[str] = field(default_factory=set)

    def put(self, key: str, lines: Iterable[bytes], etag: str | None = None) -> None:
        body = b"".join(line + b"\n" for line in lines)
        self.objects[key] = (etag or f'"{abs(hash(body)):x}"', body)

    def check(self, prefix: S3Prefix) -> None:
        if self.missing_bucket:
            raise ConfigError(f"cannot list {prefix.uri}: the bucket does not exist")

    def list(self, prefix: S3Prefix) -> Iterator[ObjectInfo]:
        if self.missing_bucket:
            raise SourceError(f"cannot list {prefix.uri}: the bucket does not exist")
        for key in sorted(self.objects):
            if key.startswith(prefix.prefix):
                yield ObjectInfo(key, self.objects[key][0], len(self.objects[key][1]))

    def open(self, bucket: str, key: str) -> OpenedObject | None:
        if key in self.vanish:
            return None
        etag, body = self.objects[key]
        return OpenedObject(etag, self._chunks(key, body))

    def _chunks(self, key: str, body: bytes) -> Iterator[bytes]:
        yield body[: len(body) // 2]
        if key in self.fail_reading:
            raise SourceError(f"reading s3://bkt/{key} failed: connection reset")
        yield body[len(body) // 2:]


@dataclass
class MemSink:
    delivered: list[Record] = field(default_factory=list)
    pending: list[Record] = field(default_factory=list)
    fail_flush: bool = False
    too_large: int = 1 << 20
    closed: bool = False

    def send(self, record: Record) -> None:
        self.pending.append(record)

    def flush(self) -> list[tuple[int, str]]:
        pending, self.pending = self.pending, []
        if self.fail_flush:
            raise SinkError("producing to 'captures' failed: KafkaTimeoutError")
        refused = [(i, "MessageSizeTooLargeError") for i, r in enumerate(pending) if len(r.value) > self.too_large]
        self.delivered += [r for r in pending if len(r.value) <= self.too_large]
        return refused

    def close(self) -> None:
        self.closed = True


PREFIX = S3Prefix("bkt", "dc/")


def two_files() -> MemObjects:
    objects = MemObjects()
    objects.put("dc/fraud-ep/v5/2026/09/21/07/00-00-000-a.jsonl",
                [capture_line(f"a{i}", "0.8", inference_id=f"inf-a{i}") for i in range(3)])
    objects.put("dc/fraud-ep/v6/2026/09/21/07/00-00-000-b.jsonl",
                [b"{oops", b"", capture_line("b0", "0.1", encoding="BASE64")])
    objects.put("dc/fraud-ep/v6/2026/9/21/07/stray.jsonl", [b"{}"])
    return objects


def test_a_pass_imports_each_file_once_and_saves_after_each() -> None:
    objects, sink, store = two_files(), MemSink(), MemStore()
    importer = Importer(PREFIX, objects=objects, sink=sink, store=store)
    result = importer.run_once()
    assert (result.files, result.lines, result.without_id, len(result.skipped)) == (2, 5, 1, 1)
    assert result.ok and store.saves == 2
    assert [r.key for r in sink.delivered] == [b"inf-a0", b"inf-a1", b"inf-a2", None, b"b0"]
    assert result.summary(PREFIX) == (
        "s3://bkt/dc/: 2 files, 5 lines, 1 skipped; 1 lines without an inference id (dead-lettered by the daemon)")

    again = Importer(PREFIX, objects=objects, sink=sink, store=store).run_once()  # a restart
    assert (again.files, again.lines, again.already) == (0, 0, 2) and len(sink.delivered) == 5

    objects.put("dc/fraud-ep/v5/2026/09/21/08/00-00-000-c.jsonl", [capture_line("c0", "0.6")])
    third = importer.run_once()
    assert (third.files, third.lines) == (1, 1) and sink.delivered[-1].key == b"c0"


def test_a_kafka_failure_leaves_the_file_for_the_next_pass() -> None:
    objects, sink, store = two_files(), MemSink(fail_flush=True), MemStore()
    importer = Importer(PREFIX, objects=objects, sink=sink, store=store)
    result = importer.run_once()
    assert result.files == 0 and not result.ok and "KafkaTimeoutError" in (result.error or "")
    assert store.data == {}  # nothing recorded: both files come again
    sink.fail_flush = False
    assert importer.run_once().files == 2 and len(sink.delivered) == 5


def test_a_read_failure_stops_the_pass_and_the_file_is_imported_whole_later() -> None:
    objects, sink, store = two_files(), MemSink(), MemStore()
    objects.fail_reading.add("dc/fraud-ep/v6/2026/09/21/07/00-00-000-b.jsonl")
    importer = Importer(PREFIX, objects=objects, sink=sink, store=store)
    result = importer.run_once()
    assert result.files == 1 and "connection reset" in (result.error or "")
    objects.fail_reading.clear()
    assert importer.run_once().files == 1
    # The half-read file's first line arrives twice: a failed file is imported whole again.
    assert [r.value for r in sink.delivered].count(b"{oops") == 2


def test_records_refused_for_their_size_are_reported_and_the_file_is_done() -> None:
    objects, sink, store = MemObjects(), MemSink(too_large=2000), MemStore()
    objects.put("dc/ep/v/2026/09/21/07/f.jsonl", [capture_line("ok", "0.3"), capture_line("big", "x" * 3000)])
    result = Importer(PREFIX, objects=objects, sink=sink, store=store).run_once()
    assert result.files == 1 and result.lines == 1 and not result.ok
    assert result.refused == [("dc/ep/v/2026/09/21/07/f.jsonl", 2, "MessageSizeTooLargeError")]
    assert Importer(PREFIX, objects=objects, sink=sink, store=store).run_once().files == 0


def test_stop_is_honoured_between_files_and_a_vanished_object_is_not_an_error() -> None:
    objects, sink, store = two_files(), MemSink(), MemStore()
    stop = threading.Event()
    stop.set()
    assert Importer(PREFIX, objects=objects, sink=sink, store=store).run_once(stop).interrupted
    assert sink.delivered == []
    objects.vanish.add("dc/fraud-ep/v5/2026/09/21/07/00-00-000-a.jsonl")
    result = Importer(PREFIX, objects=objects, sink=sink, store=store).run_once()
    assert result.ok and result.files == 1


# ---------------------------------------------------------------- the command, in memory


class ScriptedStop(threading.Event):
    """A stop event whose wait() returns at once: True (stop) from the `stop_after`-th wait on."""

    def __init__(self, stop_after: int) -> None:
        super().__init__()
        self.waits: list[float | None] = []
        self.stop_after = stop_after

    def wait(self, timeout: float | None = None) -> bool:
        self.waits.append(timeout)
        return len(self.waits) >= self.stop_after


def run(argv: list[str], objects: MemObjects, sink: MemSink, store: MemStore,
        stop: threading.Event | None = None, topic_error: str | None = None) -> int:
    def check_topic() -> None:
        if topic_error:
            raise ConfigError(topic_error)

    edges = Edges(objects=objects, store=store, check_topic=check_topic, open_sink=lambda: sink)
    return main(argv, load=Settings.model_construct, edges=lambda settings: edges, stop=stop)


def test_once_prints_a_summary_and_reports_skipped_keys(capsys: pytest.CaptureFixture[str]) -> None:
    objects, sink, store = two_files(), MemSink(), MemStore()
    assert run(["--prefix", "s3://bkt/dc/", "--once"], objects, sink, store) == 0
    out, err = capsys.readouterr()
    assert out.splitlines() == ["s3://bkt/dc/: 2 files, 5 lines, 1 skipped; "
                                "1 lines without an inference id (dead-lettered by the daemon)"]
    assert err == ("rollguard import-s3: skipped s3://bkt/dc/fraud-ep/v6/2026/9/21/07/stray.jsonl: "
                   "2026/9/21/07 is not yyyy/mm/dd/hh; expected {endpoint}/{variant}/yyyy/mm/dd/hh/{file}.jsonl\n")
    assert sink.closed
    assert run(["--prefix", "s3://bkt/dc", "--once"], objects, sink, store) == 0
    assert capsys.readouterr().out == "s3://bkt/dc/: 0 files, 0 lines, 1 skipped, 2 imported before\n"


def test_once_exits_1_when_not_everything_was_imported(capsys: pytest.CaptureFixture[str]) -> None:
    assert run(["--prefix", "s3://bkt/dc/", "--once"], two_files(), MemSink(fail_flush=True), MemStore()) == 1
    assert "stopped early: producing to 'captures' failed" in capsys.readouterr().out


@pytest.mark.parametrize("argv, objects, topic_error, message", [
    (["--prefix", "dc/", "--once"], MemObjects(), None, "--prefix 'dc/': expected s3://bucket/prefix/"),
    (["--prefix", "s3://bkt/dc/", "--once"], MemObjects(missing_bucket=True), None,
     "cannot list s3://bkt/dc/: the bucket does not exist"),
    (["--prefix", "s3://bkt/dc/", "--once"], MemObjects(), "topic(s) 'captures' do not exist", "do not exist"),
])
def test_configuration_errors_are_one_line_and_exit_2(
    argv: list[str], objects: MemObjects, topic_error: str | None, message: str,
    capsys: pytest.CaptureFixture[str],
) -> None:
    assert run(argv, objects, MemSink(), MemStore(), topic_error=topic_error) == 2
    out, err = capsys.readouterr()
    assert out == "" and len(err.splitlines()) == 1 and message in err and err.startswith("rollguard import-s3: ")


def test_a_corrupt_ledger_is_a_configuration_error(capsys: pytest.CaptureFixture[str]) -> None:
    store = MemStore()
    store.save(ledger_name(PREFIX), b"garbage")
    assert run(["--prefix", "s3://bkt/dc/", "--once"], two_files(), MemSink(), store) == 2
    assert "is not JSON; delete it" in capsys.readouterr().err


def test_bad_settings_and_usage_exit_2(capsys: pytest.CaptureFixture[str]) -> None:
    def bad() -> Settings:
        raise SettingsError("invalid setting ROLLGUARD_STATE_DIR='': must not be empty")

    assert main(["--prefix", "s3://bkt/dc/"], load=bad) == 2
    assert capsys.readouterr().err == "rollguard import-s3: invalid setting ROLLGUARD_STATE_DIR='': must not be empty\n"
    assert main([]) == 2  # argparse: --prefix is required
    assert main(["--prefix", "s3://bkt/dc/", "--interval", "0"]) == 2
    assert main(["--prefix", "s3://bkt/dc/", "--model-version", "v6"]) == 2


def test_polling_imports_new_files_each_pass_until_stopped(capsys: pytest.CaptureFixture[str]) -> None:
    objects, sink, store = two_files(), MemSink(), MemStore()
    passes = 0
    real_list = objects.list

    def listing(prefix: S3Prefix) -> Iterator[ObjectInfo]:
        nonlocal passes
        passes += 1
        if passes == 2:
            objects.put("dc/fraud-ep/v5/2026/09/21/08/new.jsonl", [capture_line("n0", "0.6")])
        if passes == 3:
            raise SourceError("cannot list s3://bkt/dc/: EndpointConnectionError")
        return real_list(prefix)

    objects.list = listing  # type: ignore[method-assign]
    stop = ScriptedStop(stop_after=4)
    assert run(["--prefix", "s3://bkt/dc/", "--interval", "7.5"], objects, sink, store, stop=stop) == 0
    assert stop.waits == [7.5] * 4 and passes == 4
    assert [r.key for r in sink.delivered] == [b"inf-a0", b"inf-a1", b"inf-a2", None, b"b0", b"n0"]
    out, err = capsys.readouterr()
    # quiet passes print nothing; the stray key is reported once, the listing failure each time
    assert out.splitlines() == [
        "s3://bkt/dc/: 2 files, 5 lines, 1 skipped; 1 lines without an inference id (dead-lettered by the daemon)",
        "s3://bkt/dc/: 1 files, 1 lines, 1 skipped, 2 imported before",
    ]
    assert err.count("skipped s3://") == 1
    assert "EndpointConnectionError; trying again in 7.5 s" in err
