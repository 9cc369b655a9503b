"""The on-call interface end to end: `rollguard run` as a process on the real stack, its HTTP API,
`rollguard query` reading CloudWatch with the daemon down, and a CloudWatch outage.

Expected numbers come from pandas over the messages the test sent (tests/reference.py and the
small computations below), never from rollguard code.

moto quirks that shape the checks: GetMetricData with dimensions ignores the namespace (so each
test uses its own endpoint name), and GetMetricStatistics matches dimensions as a subset (so the
latency check reads the most specific dimension set, where subset and exact match agree).
"""
from __future__ import annotations

import io
import json
import socket
import subprocess
import time
import urllib.error
import urllib.request
import uuid
from collections.abc import Callable, Iterator
from contextlib import redirect_stdout
from datetime import datetime, timedelta, timezone
from pathlib import Path
from typing import Any

import boto3
import pandas as pd
import pytest

from alarms import dashboard
from service import query
from service.commands import dashboard as dashboard_command
from service.commands import query as query_command
from service.devstack import start_moto
from service.devstack.traffic import Traffic, TrafficSpec, generate
from tests.integration.harness import Stack, produce, wait_for
from tests.reference import COUNT_METRICS, batch_counts
from tests.unit.service.test_http_api import parse_exposition

SEGMENT = "5411"
QUANTISATION = 0.06  # pipelines/latency.py ALPHA: every latency is published within 6 %
# query's count ids -> the published metric names (what tests/reference.py computes)
QUERY_IDS = {"tp": "TruePositives", "fp": "FalsePositives", "fn": "FalseNegatives", "tn": "TrueNegatives",
             "labeled": "Labeled", "invocations": "Invocations", "errors": "Errors",
             "agreements": "ShadowAgreements", "comparisons": "ShadowComparisons"}


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


def spec() -> TrafficSpec:
    return TrafficSpec(endpoint=f"oncall-{uuid.uuid4().hex[:10]}", duplicate_rate=0.02, correction_rate=0.05)


def recent_traffic(n: int, s: TrafficSpec, seed: int) -> Traffic:
    """Inferences over 8 minutes ending 2 minutes ago: labels (up to 90 s later) are in the past
    and everything stays inside the default 15-minute window for the test's duration."""
    now = int(time.time() * 1000)
    return generate(n, now - 600_000, s, seed=seed, span_ms=480_000)


@pytest.fixture
def stack(kafka_bootstrap: str, moto_endpoint: str, topic_names: Callable[[str], str], tmp_path: Path) -> Stack:
    return Stack(kafka_bootstrap, moto_endpoint, topic_names, tmp_path)


@pytest.fixture
def daemons(stack: Stack) -> Iterator[list[subprocess.Popen[bytes]]]:
    """Daemons a test started; stopped at the end whatever happens."""
    procs: list[subprocess.Popen[bytes]] = []
    yield procs
    for proc in procs:
        if proc.poll() is None:
            stack.stop(proc)


def send(stack: Stack, traffic: Traffic) -> None:
    """Every capture, then every label (keyed by inference id, as the spec requires)."""
    captures: list[tuple[bytes | None, bytes]] = list(traffic.capture_records())
    labels: list[tuple[bytes | None, bytes]] = list(traffic.label_records())
    produce(stack.bootstrap, stack.captures, captures)
    produce(stack.bootstrap, stack.labels, labels)


def http_get(url: str) -> tuple[int, str]:
    try:
        with urllib.request.urlopen(url, timeout=5) as resp:
            return resp.status, resp.read().decode()
    except urllib.error.HTTPError as ex:
        return ex.code, ex.read().decode()


def alive(stack: Stack, proc: subprocess.Popen[bytes]) -> None:
    assert proc.poll() is None, f"the daemon exited with {proc.returncode}:\n{stack.log_tail()}"


def metrics(base: str) -> dict[str, dict[str, Any]]:
    code, body = http_get(base + "/metrics")
    assert code == 200
    return parse_exposition(body)


def scalar(fams: dict[str, dict[str, Any]], name: str) -> float:
    return float(sum(fams[name]["samples"].values()))


# -- independent expectations (pandas) ----------------------------------------------------


def expected_counts(traffic: Traffic, segment: str | None = None) -> dict[str, dict[str, int]]:
    """{variant: {metric: count}} of the batch join, optionally of one segment's captures."""
    caps = [c for c in traffic.captures if segment is None or c["attributes"]["merchant_category"] == segment]
    frame = batch_counts(caps, traffic.labels)
    return {str(variant): {m: int(row[m]) for m in COUNT_METRICS} for (_, variant), row in frame.iterrows()}


def expected_latency(traffic: Traffic, variant: str, segment: str | None = None) -> tuple[int, float, float]:
    """(count, sum, mean) of latency_ms over the distinct captures of a variant."""
    cap = pd.DataFrame(traffic.captures).drop_duplicates(subset=["endpoint", "inference_id", "variant"], keep="first")
    cap = cap[cap["variant"] == variant]
    if segment is not None:
        cap = cap[cap["attributes"].map(lambda a: a["merchant_category"]) == segment]
    lat = cap["latency_ms"].dropna()
    return int(lat.count()), float(lat.sum()), float(lat.mean())


def rates(c: dict[str, int]) -> dict[str, float | None]:
    def r(num: int, den: int) -> float | None:
        return num / den if den else None

    tp, fp, fn = c["TruePositives"], c["FalsePositives"], c["FalseNegatives"]
    return {"Precision": r(tp, tp + fp), "Recall": r(tp, tp + fn), "ErrorRate": r(c["Errors"], c["Invocations"]),
            "ShadowAgreement": r(c["ShadowAgreements"], c["ShadowComparisons"])}


# -- CloudWatch reads -----------------------------------------------------------------------


def cloudwatch_totals(client: Any, namespace: str, dims: list[dict[str, str]]) -> dict[str, int]:
    """Published totals of the last hour or so for exactly ``dims``, by metric name."""
    # hour-long periods: moto's GetMetricData scans all its data once per period and query
    start, end = query.align_range(datetime.now(timezone.utc) - timedelta(hours=1),
                                   datetime.now(timezone.utc) + timedelta(minutes=5), 3600)
    fetched = query.run_query(client, namespace, dims, list(QUERY_IDS), start, end, 3600)
    return {QUERY_IDS[cid]: int(sum(series.values())) for cid, series in fetched.counts.items()}


def wait_published(stack: Stack, proc: subprocess.Popen[bytes], base: str, client: Any, endpoint: str,
                   expected: dict[str, dict[str, int]], timeout_s: float = 120) -> None:
    """Wait until CloudWatch's totals for each variant equal ``expected``.

    First, cheaply, until the daemon says it has nothing left to send (two ticks after every
    record was consumed, an empty buffer): moto's GetMetricData is slow, so it is asked
    only once the answer should be final.
    """
    ticks = scalar(metrics(base), "rollguard_ticks_total")

    def drained() -> bool:
        alive(stack, proc)
        fams = metrics(base)
        return (scalar(fams, "rollguard_ticks_total") >= ticks + 2 and scalar(fams, "rollguard_buffered_datums") == 0
                and scalar(fams, "rollguard_published_datums_total") > 0)

    wait_for(drained, timeout_s, "the publisher to drain its buffer", interval_s=0.5)
    last: dict[str, dict[str, int]] = {}

    def done() -> bool:
        alive(stack, proc)
        for variant in expected:
            last[variant] = cloudwatch_totals(client, stack.namespace, query.dimensions(endpoint, variant))
        return all({m: last[v].get(m, 0) for m in COUNT_METRICS} == expected[v] for v in expected)

    try:
        wait_for(done, timeout_s, "CloudWatch totals to equal the batch join", interval_s=2)
    except AssertionError as ex:
        raise AssertionError(f"{ex}: published {last} != expected {expected}\n{stack.log_tail()}") from None


def run_query_command(argv: list[str]) -> dict[str, Any]:
    out = io.StringIO()
    with redirect_stdout(out):
        code = query_command.main([*argv, "--json"])
    assert code == 0, out.getvalue()
    result: dict[str, Any] = json.loads(out.getvalue())
    return result


# -- the tests ------------------------------------------------------------------------------


def test_status_metrics_and_query_equal_the_batch_join(stack: Stack, daemons: list[subprocess.Popen[bytes]],
                                                       monkeypatch: pytest.MonkeyPatch) -> None:
    s = spec()
    traffic = recent_traffic(800, s, seed=21)
    expected = expected_counts(traffic)
    shadow = s.shadow or ""
    assert expected[s.production]["Errors"] > 0 and expected[shadow]["ShadowComparisons"] > 0
    port = free_port()
    base = f"http://127.0.0.1:{port}"
    proc = stack.start(ROLLGUARD_HTTP_ADDR=f"127.0.0.1:{port}", ROLLGUARD_MIN_SAMPLES="5",
                       ROLLGUARD_SEGMENT_ATTRIBUTES="merchant_category",
                       ROLLGUARD_SEGMENT_VALUES="merchant_category=" + "|".join(s.segments))
    daemons.append(proc)

    def ready() -> bool:
        alive(stack, proc)
        try:
            return http_get(base + "/readyz")[0] == 200
        except OSError:
            return False

    wait_for(ready, 60, "/readyz to answer 200", interval_s=0.5)
    assert f"http listening on 127.0.0.1:{port}" in stack.log.read_text()
    send(stack, traffic)
    sent = len(traffic.captures) + len(traffic.labels)

    # (a) the live view: window samples and gauges equal pandas over the same messages
    status: dict[str, Any] = {}

    def window_complete() -> bool:
        nonlocal status
        alive(stack, proc)
        status = json.loads(http_get(base + "/v1/status")[1])
        got = {}
        for series in status["series"]:
            if series["dimensions"].get("EndpointName") == s.endpoint and "ModelVersion" not in series["dimensions"]:
                got[series["dimensions"]["VariantName"]] = {m: int(series["samples"].get(m, 0)) for m in COUNT_METRICS}
        return got == expected

    wait_for(window_complete, 90, "the window samples to equal the batch join", interval_s=1)
    versions = {s.production: s.production_version, shadow: s.shadow_version}
    seen = 0
    for series in status["series"]:
        dims = series["dimensions"]
        if dims.get("EndpointName") != s.endpoint:
            continue
        variant = dims["VariantName"]
        assert dims.get("ModelVersion") in (None, versions[variant]), dims
        assert {m: int(series["samples"].get(m, 0)) for m in COUNT_METRICS} == expected[variant]
        for gauge, value in rates(expected[variant]).items():
            if value is None:
                assert gauge not in series["gauges"], (dims, gauge)
            else:
                assert series["gauges"][gauge] == pytest.approx(value, rel=1e-9), (dims, gauge)
        seen += 1
    assert seen == 4  # two variants, each alone and with its model version
    assert status["ready"] is True and status["records"] == sent
    assert "alarms" in status and "records_per_second" in status
    fams = metrics(base)
    assert scalar(fams, "rollguard_records_total") == sent
    assert fams["rollguard_ready"]["samples"] == {(): 1.0}
    assert scalar(fams, "rollguard_pending_joins") >= 0

    # published counts equal the batch join: every count exactly once
    cw = boto3.client("cloudwatch", endpoint_url=stack.aws, region_name="us-east-1")
    wait_published(stack, proc, base, cw, s.endpoint, expected)
    fams = metrics(base)
    assert scalar(fams, "rollguard_published_datums_total") > 0
    assert scalar(fams, "rollguard_last_publish_timestamp_seconds") > time.time() - 120

    # Latency: the distribution's SampleCount, Sum and Average within the quantisation error
    latency_dims = {"EndpointName": s.endpoint, "VariantName": s.production, "ModelVersion": s.production_version,
                    "merchant_category": SEGMENT}
    n, total, mean = expected_latency(traffic, s.production, SEGMENT)
    now = datetime.now(timezone.utc)
    points = cw.get_metric_statistics(
        Namespace=stack.namespace, MetricName="Latency", Dimensions=[{"Name": k, "Value": v} for k, v in latency_dims.items()],
        StartTime=now - timedelta(hours=1), EndTime=now + timedelta(hours=1), Period=86400,
        Statistics=["SampleCount", "Sum", "Average"])["Datapoints"]
    assert len(points) == 1, points
    assert points[0]["SampleCount"] == n
    assert points[0]["Sum"] == pytest.approx(total, rel=QUANTISATION)
    assert points[0]["Average"] == pytest.approx(mean, rel=QUANTISATION)

    # (b) the daemon down: `rollguard query` answers from CloudWatch alone
    stack.stop(proc)
    assert proc.returncode == 0, stack.log_tail()
    monkeypatch.setenv("ROLLGUARD_AWS_ENDPOINT_URL", stack.aws)
    monkeypatch.setenv("ROLLGUARD_NAMESPACE", stack.namespace)
    for variant in (s.production, shadow):
        result = run_query_command(["--endpoint", s.endpoint, "--variant", variant, "--since", "30m",
                                    "--period", "900", "--metric", "all,f1,tn", "--metric", ",".join(QUERY_IDS)])
        want = expected[variant]
        assert {QUERY_IDS[k]: int(v) for k, v in result["total"]["counts"].items() if k in QUERY_IDS} == want
        got = result["total"]["metrics"]
        r = rates(want)
        for name, gauge in (("precision", "Precision"), ("recall", "Recall"), ("error_rate", "ErrorRate"),
                            ("shadow_agreement", "ShadowAgreement")):
            assert got[name]["value"] == (None if r[gauge] is None else pytest.approx(r[gauge], rel=1e-9)), name
        assert got["labeled"]["value"] == want["Labeled"]
        assert got["label_coverage"]["value"] == pytest.approx(want["Labeled"] / want["Invocations"])
        assert got["recall"]["sample"] == want["TruePositives"] + want["FalseNegatives"]
        assert got["p99_latency"]["sample"] == expected_latency(traffic, variant)[0]
        assert sum(p["counts"]["invocations"] for p in result["periods"]) == want["Invocations"]

    # the on-call question: the new model's recall on one merchant category, and its sample
    seg = expected_counts(traffic, SEGMENT)[shadow]
    result = run_query_command(["--endpoint", s.endpoint, "--variant", shadow, "--model-version", s.shadow_version,
                                "--segment", f"merchant_category={SEGMENT}", "--metric", "recall,shadow_agreement",
                                "--since", "30m"])
    assert result["dimensions"] == {"EndpointName": s.endpoint, "VariantName": shadow,
                                    "ModelVersion": s.shadow_version, "merchant_category": SEGMENT}
    recall = result["total"]["metrics"]["recall"]
    assert recall["sample"] == seg["TruePositives"] + seg["FalseNegatives"]
    assert recall["value"] == pytest.approx(seg["TruePositives"] / (seg["TruePositives"] + seg["FalseNegatives"]))
    assert result["total"]["metrics"]["shadow_agreement"]["sample"] == seg["ShadowComparisons"]

    # and a dashboard for the endpoint, variants discovered from what was published
    out = io.StringIO()
    with redirect_stdout(out):
        assert dashboard_command.main(["--endpoint", s.endpoint, "--apply"]) == 0
    assert f"fleets: {s.production}, {shadow}" in out.getvalue()
    body = json.loads(cw.get_dashboard(DashboardName=f"rollguard-{s.endpoint}")["DashboardBody"])
    assert len(body["widgets"]) == len(dashboard.PANELS) + 1


def test_cloudwatch_outage_then_every_count_arrives_exactly_once(
        stack: Stack, daemons: list[subprocess.Popen[bytes]]) -> None:
    s = spec()
    traffic = recent_traffic(400, s, seed=5)
    expected = expected_counts(traffic)
    aws_port, http_port = free_port(), free_port()
    base = f"http://127.0.0.1:{http_port}"
    send(stack, traffic)
    proc = stack.start(ROLLGUARD_AWS_ENDPOINT_URL=f"http://127.0.0.1:{aws_port}",
                       ROLLGUARD_HTTP_ADDR=f"127.0.0.1:{http_port}")
    daemons.append(proc)
    sent = len(traffic.captures) + len(traffic.labels)
    fams: dict[str, dict[str, Any]] = {}

    def failing_with_a_backlog() -> bool:
        nonlocal fams
        alive(stack, proc)
        try:
            fams = metrics(base)
        except OSError:
            return False
        return (scalar(fams, "rollguard_records_total") == sent
                and scalar(fams, "rollguard_publish_failures_total") > 0
                and scalar(fams, "rollguard_buffered_datums") > 0
                and scalar(fams, "rollguard_ticks_total") >= 3)

    wait_for(failing_with_a_backlog, 90, "publish failures with buffered datums", interval_s=0.5)
    assert scalar(fams, "rollguard_published_datums_total") == 0
    # the alarm poller cannot reach CloudWatch either: recorded in the status, never raised
    wait_for(lambda: json.loads(http_get(base + "/v1/status")[1])["alarms"]["error"] is not None, 30,
             "the alarm poller to record its failure", interval_s=0.5)

    with start_moto(port=aws_port) as moto:  # CloudWatch is back, on the very address the daemon uses
        cw = boto3.client("cloudwatch", endpoint_url=moto.endpoint_url, region_name="us-east-1")
        wait_published(stack, proc, base, cw, s.endpoint, expected)
        # a few more ticks: nothing is sent twice
        ticks = scalar(metrics(base), "rollguard_ticks_total")
        wait_for(lambda: scalar(metrics(base), "rollguard_ticks_total") >= ticks + 3, 30, "three more ticks", 0.5)
        # each tick enqueues fresh gauges, so the buffer is empty between flushes, not always
        wait_for(lambda: scalar(metrics(base), "rollguard_buffered_datums") == 0, 30, "an empty buffer", 0.2)
        for variant, want in expected.items():
            got = cloudwatch_totals(cw, stack.namespace, query.dimensions(s.endpoint, variant))
            assert {m: got.get(m, 0) for m in COUNT_METRICS} == want
        stack.stop(proc)
        assert proc.returncode == 0, stack.log_tail()
