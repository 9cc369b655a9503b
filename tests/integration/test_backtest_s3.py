"""`rollguard backtest` reading SageMaker files from S3 (a moto server over HTTP): Data Capture under
`{endpoint}/{variant}/yyyy/mm/dd/hh/`, Model Monitor ground truth under `yyyy/mm/dd/hh/`."""
from __future__ import annotations

import io
import json
import uuid
from datetime import datetime, timedelta, timezone
from pathlib import Path
from typing import Any

import boto3
import pytest

from alarms.evaluator import parse_time
from service.commands.backtest import main

HOUR_START = datetime(2026, 11, 21, 9, tzinfo=timezone.utc)
LINES = 900  # one capture every 4 s for an hour
STEP = timedelta(seconds=4)
REGRESSION_LINE = 450  # captures from 09:30 on miss most frauds
PERIOD, N, M = 300, 2, 2

SPEC = f"""
name: s3-backtest
endpoints:
  - name: fraud-ep
    variant: v6
    model_version: fraud-v6
    alarms:
      - name: recall
        metric: recall
        threshold: 0.5
        scope: model_version
        period: {PERIOD}
        evaluation_periods: {N}
        datapoints_to_alarm: {M}
        min_samples: 10
"""


def capture_line(i: int, score: float) -> bytes:
    when = HOUR_START + i * STEP
    return json.dumps({
        "captureData": {
            "endpointInput": {"observedContentType": "text/csv", "mode": "INPUT", "data": "5411,9.99", "encoding": "CSV"},
            "endpointOutput": {"observedContentType": "text/csv; charset=utf-8", "mode": "OUTPUT",
                               "data": f"{score}", "encoding": "CSV"},
        },
        "eventMetadata": {"eventId": f"evt-{i}", "inferenceId": f"inf-{i}",
                          "inferenceTime": when.strftime("%Y-%m-%dT%H:%M:%S.000Z")},
        "eventVersion": "0",
    }).encode()


def truth_of(i: int) -> int:
    return int(i % 5 < 2)  # 40 % frauds


def score_of(i: int) -> float:
    if not truth_of(i):
        return 0.1
    hit = i % 10 != 0  # positives have i % 10 in (0, 1, 5, 6): recall 0.75, then 0.25 after the regression
    if i >= REGRESSION_LINE:
        hit = not hit
    return 0.9 if hit else 0.2


def ground_truth_line(i: int) -> bytes:
    return json.dumps({"groundTruthData": {"data": str(truth_of(i)), "encoding": "CSV"},
                       "eventMetadata": {"eventId": f"inf-{i}"}, "eventVersion": "0"}).encode()


@pytest.fixture
def bucket(moto_endpoint: str, monkeypatch: pytest.MonkeyPatch) -> Any:
    monkeypatch.setenv("ROLLGUARD_AWS_ENDPOINT_URL", moto_endpoint)
    for name in ("ROLLGUARD_SEGMENT_ATTRIBUTES", "ROLLGUARD_TICK_SECONDS", "ROLLGUARD_NAMESPACE"):
        monkeypatch.delenv(name, raising=False)
    s3 = boto3.client("s3", endpoint_url=moto_endpoint, region_name="us-east-1")
    name = f"backtest-{uuid.uuid4().hex[:12]}"
    s3.create_bucket(Bucket=name)
    # Data Capture: one file per 10 minutes, as SageMaker rolls them; one junk line in the last one
    for start in range(0, LINES, 150):
        lines = [capture_line(i, score_of(i)) for i in range(start, start + 150)]
        if start == LINES - 150:
            lines.append(b'{"captureData": {"endpointIn')
        when = HOUR_START + start * STEP
        key = f"sagemaker/datacapture/fraud-ep/v6/{when:%Y/%m/%d/%H}/{when:%M-%S}-000-{uuid.uuid4()}.jsonl"
        s3.put_object(Bucket=name, Key=key, Body=b"\n".join(lines) + b"\n")
    s3.put_object(Bucket=name, Key="sagemaker/datacapture/README.md", Body=b"not an input")
    # Ground truth of the hour's inferences arrives the next hour (10:00-11:00), one file
    s3.put_object(Bucket=name, Key="sagemaker/groundtruth/2026/11/21/10/labels.jsonl",
                  Body=b"\n".join(ground_truth_line(i) for i in range(LINES)) + b"\n")
    return name


def test_backtest_reads_sagemaker_files_from_s3(bucket: str, tmp_path: Path) -> None:
    spec = tmp_path / "spec.yaml"
    spec.write_text(SPEC)
    # Label i is stamped 10:00 + i * 4 s (the file's hour, spread by line order), so the regression
    # of captures from 09:30 shows in outcomes from 10:30.
    bad_from = HOUR_START + timedelta(hours=1) + REGRESSION_LINE * STEP
    out, err = io.StringIO(), io.StringIO()
    code = main([
        "--captures", f"s3://{bucket}/sagemaker/datacapture/", "--labels", f"s3://{bucket}/sagemaker/groundtruth",
        "--spec", str(spec), "--json", "--model-version", "v6=fraud-v6",
        "--bad-from", bad_from.strftime("%Y-%m-%dT%H:%M:%SZ"),
    ], stdout=out, stderr=err)
    assert code == 0, err.getvalue()
    assert "replayed 901 capture lines and 900 label lines" in err.getvalue()
    assert "bad lines: 1 (not_json 1)" in err.getvalue()
    (report,) = json.loads(out.getvalue())
    assert report["alarm"] == "rollguard-fraud-ep-v6.fraud-v6-recall"
    assert report["data_found"]["tp"] > 0 and report["data_found"]["fn"] > 0
    assert report["false_alarms"] == 0 and report["fired"] == 1
    first = parse_time(report["first_alarm"])
    t = bad_from.timestamp()
    # the label stream puts 15 outcomes per minute, 6 of them positives: a 5-minute window holds 30
    # positives, at recall 0.25 wholly after T; it needs data after T in M windows to fire, and fires
    # at the latest when M whole windows lie after T
    assert t + (M - 1) * PERIOD < first <= t + M * PERIOD + 60
    assert report["evaluated_from"] == "2026-11-21T09:00:00Z"
