"""`rollguard import-s3` against the real stack: Data Capture files in moto's S3, the captures topic
on a real broker, the ledger in a local state directory."""
from __future__ import annotations

import base64
import json
import time
import uuid
from collections import Counter
from collections.abc import Callable, Iterator
from datetime import datetime, timedelta, timezone
from pathlib import Path
from typing import Any

import boto3
import pytest
from kafka import KafkaConsumer, TopicPartition

from pipelines.parse import parse_capture
from pipelines.records import BadRecord, Capture
from service.commands.import_s3 import main
from service.s3_import.layout import parse_prefix
from service.s3_import.ledger import ledger_name
from service.topics import ensure_topics

PARTITIONS = 3
PREFIX = "sagemaker/datacapture/"  # nested, as a team's DestinationS3Uri usually is


def data_capture_line(rng_id: str, when: datetime, output: Any, *, json_output: bool, base64_output: bool,
                      with_inference_id: bool) -> tuple[bytes, str, int]:
    """One line as SageMaker writes it -> (line, inference id, expected prediction)."""
    if json_output:
        payload = json.dumps({"predictions": [{"score": output}]})
        content_type = "application/json"
    else:
        payload = f"{output}"
        content_type = "text/csv; charset=utf-8"
    features = "5411,129.99,0,1,0.37"
    meta = {"eventId": f"evt-{rng_id}", "inferenceTime": when.strftime("%Y-%m-%dT%H:%M:%S.%f")[:-3] + "Z"}
    if with_inference_id:
        meta["inferenceId"] = f"inf-{rng_id}"
    line = {
        "captureData": {
            "endpointInput": {
                # Request bodies SageMaker does not recognise as CSV/JSON are captured as BASE64.
                "observedContentType": "application/x-npy" if base64_output else "text/csv",
                "mode": "INPUT",
                "data": base64.b64encode(features.encode()).decode() if base64_output else features,
                "encoding": "BASE64" if base64_output else "CSV",
            },
            "endpointOutput": {
                "observedContentType": content_type,
                "mode": "OUTPUT",
                "data": base64.b64encode(payload.encode()).decode() if base64_output else payload,
                "encoding": "BASE64" if base64_output else ("JSON" if json_output else "CSV"),
            },
        },
        "eventMetadata": meta,
        "eventVersion": "0",
    }
    iid = meta.get("inferenceId", meta["eventId"])
    return json.dumps(line).encode(), iid, int(output >= 0.5)


class Bucket:
    def __init__(self, s3: Any, name: str) -> None:
        self.s3, self.name = s3, name
        self.expected: dict[str, tuple[str, str, int]] = {}  # inference id -> (endpoint, variant, prediction)
        self.lines: list[tuple[bytes | None, bytes, str, str]] = []  # (kafka key, value, endpoint, variant)

    def put_capture_file(self, endpoint: str, variant: str, when: datetime, n: int, *, json_output: bool,
                         base64_output: bool, junk: bytes | None = None) -> str:
        key = (f"{PREFIX}{endpoint}/{variant}/{when:%Y/%m/%d/%H}/"
               f"{when:%M-%S}-{when.microsecond // 1000:03d}-{uuid.uuid4()}.jsonl")
        body: list[bytes] = []
        for i in range(n):
            line, iid, prediction = data_capture_line(
                uuid.uuid4().hex, when + timedelta(seconds=i), (i * 37 % 100) / 100,
                json_output=json_output, base64_output=base64_output, with_inference_id=i % 2 == 0)
            body.append(line)
            self.expected[iid] = (endpoint, variant, prediction)
            self.lines.append((iid.encode(), line, endpoint, variant))
        if junk is not None:  # a torn line: produced unkeyed, dead-lettered by the daemon
            body.insert(1, junk)
            self.lines.append((None, junk, endpoint, variant))
        self.s3.put_object(Bucket=self.name, Key=key, Body=b"\n".join(body) + b"\n")
        return key


@pytest.fixture
def bucket(moto_endpoint: str) -> Bucket:
    s3 = boto3.client("s3", endpoint_url=moto_endpoint, region_name="us-east-1")
    name = f"capture-{uuid.uuid4().hex[:12]}"
    s3.create_bucket(Bucket=name)
    return Bucket(s3, name)


@pytest.fixture
def env(monkeypatch: pytest.MonkeyPatch, kafka_bootstrap: str, moto_endpoint: str, tmp_path: Path,
        topic_names: Callable[[str], str]) -> Iterator[str]:
    topic = topic_names("captures-import")
    ensure_topics(kafka_bootstrap, {topic: PARTITIONS})
    monkeypatch.setenv("ROLLGUARD_KAFKA_BOOTSTRAP_SERVERS", kafka_bootstrap)
    monkeypatch.setenv("ROLLGUARD_CAPTURES_TOPIC", topic)
    monkeypatch.setenv("ROLLGUARD_AWS_ENDPOINT_URL", moto_endpoint)
    monkeypatch.setenv("ROLLGUARD_STATE_DIR", str(tmp_path / "state"))
    yield topic


def end_offsets(bootstrap: str, topic: str) -> dict[int, int]:
    consumer = KafkaConsumer(bootstrap_servers=bootstrap, enable_auto_commit=False)
    try:
        ends = consumer.end_offsets([TopicPartition(topic, p) for p in range(PARTITIONS)])
        return {tp.partition: offset for tp, offset in ends.items()}
    finally:
        consumer.close()


def read(bootstrap: str, topic: str, start: dict[int, int] | None = None) -> list[Any]:
    """Every record from `start` (default: the beginning) to the current end of each partition."""
    start = start or {p: 0 for p in range(PARTITIONS)}
    ends = end_offsets(bootstrap, topic)
    consumer = KafkaConsumer(bootstrap_servers=bootstrap, enable_auto_commit=False)
    records: list[Any] = []
    try:
        partitions = [TopicPartition(topic, p) for p in range(PARTITIONS)]
        consumer.assign(partitions)
        for tp in partitions:
            consumer.seek(tp, start[tp.partition])
        deadline = time.monotonic() + 60
        while any(consumer.position(tp) < ends[tp.partition] for tp in partitions):
            assert time.monotonic() < deadline, "timed out reading the captures topic"
            for batch in consumer.poll(timeout_ms=500).values():
                records += batch
    finally:
        consumer.close()
    return records


def as_tuples(records: list[Any]) -> Counter[tuple[bytes | None, bytes, str, str]]:
    out: Counter[tuple[bytes | None, bytes, str, str]] = Counter()
    for r in records:
        headers = dict(r.headers)
        assert set(headers) == {"endpoint", "variant"}
        out[(r.key, r.value, headers["endpoint"].decode(), headers["variant"].decode())] += 1
    return out


def test_capture_files_are_produced_once_each(
    bucket: Bucket, env: str, kafka_bootstrap: str, tmp_path: Path, capsys: pytest.CaptureFixture[str],
) -> None:
    topic = env
    hour = datetime.now(timezone.utc).replace(minute=0, second=0, microsecond=0) - timedelta(hours=3)
    bucket.put_capture_file("fraud-ep", "v5", hour + timedelta(minutes=5, seconds=12), 6,
                            json_output=False, base64_output=False, junk=b'{"captureData": {"endpointIn')
    bucket.put_capture_file("fraud-ep", "v5", hour + timedelta(hours=1, minutes=1), 5,
                            json_output=True, base64_output=True)
    bucket.put_capture_file("fraud-ep", "v6-shadow", hour + timedelta(minutes=5, seconds=13), 6,
                            json_output=False, base64_output=True)
    bucket.put_capture_file("fraud-ep", "v6-shadow", hour + timedelta(minutes=40), 4,
                            json_output=True, base64_output=False)
    bucket.s3.put_object(Bucket=bucket.name, Key=f"{PREFIX}README.md", Body=b"capture destination")
    bucket.s3.put_object(Bucket=bucket.name, Key=f"{PREFIX}fraud-ep/v5/2026/13/01/00/x.jsonl", Body=b"{}\n")
    uri = f"s3://{bucket.name}/{PREFIX}"

    assert main(["--prefix", uri, "--once"]) == 0
    out, err = capsys.readouterr()
    assert out == (f"{uri}: 4 files, 22 lines, 2 skipped; "
                   "1 lines without an inference id (dead-lettered by the daemon)\n")
    assert err.count("skipped s3://") == 2 and "README.md: expected {endpoint}/{variant}" in err

    records = read(kafka_bootstrap, topic)
    assert as_tuples(records) == Counter(bucket.lines)  # every line once, key and headers right
    assert len({r.partition for r in records}) > 1  # keyed by inference id, so spread over partitions
    now_ms = int(time.time() * 1000)
    parsed = [parse_capture(r.value, now_ms=now_ms, headers=dict(r.headers)) for r in records]
    captures = {c.inference_id: c for c in parsed if isinstance(c, Capture)}
    assert {iid: (c.endpoint, c.variant, c.prediction) for iid, c in captures.items()} == bucket.expected
    assert [b.reason for b in parsed if isinstance(b, BadRecord)] == ["not_json"]
    assert (tmp_path / "state" / ledger_name(parse_prefix(uri))).is_file()

    # Run again: nothing is new, nothing is produced.
    before = end_offsets(kafka_bootstrap, topic)
    assert main(["--prefix", uri, "--once"]) == 0
    assert capsys.readouterr().out == f"{uri}: 0 files, 0 lines, 2 skipped, 4 imported before\n"
    assert end_offsets(kafka_bootstrap, topic) == before

    # A new file: only its lines are produced.
    bucket.lines.clear()
    bucket.put_capture_file("fraud-ep", "v6-shadow", hour + timedelta(hours=2, minutes=3), 3,
                            json_output=True, base64_output=True)
    assert main(["--prefix", uri, "--once"]) == 0
    assert capsys.readouterr().out == f"{uri}: 1 files, 3 lines, 2 skipped, 4 imported before\n"
    assert as_tuples(read(kafka_bootstrap, topic, start=before)) == Counter(bucket.lines)


def test_a_missing_bucket_is_one_line_and_exit_2(env: str, capsys: pytest.CaptureFixture[str]) -> None:
    missing = f"no-such-bucket-{uuid.uuid4().hex[:8]}"
    assert main(["--prefix", f"s3://{missing}/dc/", "--once"]) == 2
    out, err = capsys.readouterr()
    assert out == ""
    assert err == f"rollguard import-s3: cannot list s3://{missing}/dc/: the bucket does not exist\n"


def test_a_missing_topic_is_one_line_and_exit_2(
    bucket: Bucket, env: str, monkeypatch: pytest.MonkeyPatch, topic_names: Callable[[str], str],
    capsys: pytest.CaptureFixture[str],
) -> None:
    missing = topic_names("no-such-topic")
    monkeypatch.setenv("ROLLGUARD_CAPTURES_TOPIC", missing)
    assert main(["--prefix", f"s3://{bucket.name}/{PREFIX}", "--once"]) == 2
    err = capsys.readouterr().err
    assert len(err.splitlines()) == 1 and missing in err and "do not exist" in err
