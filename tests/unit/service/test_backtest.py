"""`rollguard backtest` without AWS: a generated history with a known regression replayed through
the daemon's pipeline, checked against hand computations (pandas for the per-period rates, M of N
applied here); plus stream ordering, the datum -> datapoint mapping, file and Data Capture input,
bad lines, --json and --plot."""
from __future__ import annotations

import base64
import io
import json
import random
from collections.abc import Iterable, Iterator, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import pandas as pd
import pytest

from alarms.evaluator import Alarm as EvaluatorAlarm
from alarms.evaluator import State, Transition, parse_time
from alarms.spec import expand, parse_spec, to_put_metric_alarm
from pipelines.datum import Datum
from pipelines.join import JoinPolicy
from pipelines.processor import PipelineConfig
from service.backtest.evaluation import (
    AlarmResult,
    Backtest,
    BadInterval,
    DatumIndex,
    PeriodValue,
    datapoints_for,
    default_range,
    run_backtest,
    summarize,
)
from service.backtest.inputs import InputFile, Line, LocalFiles, S3Files, file_lines, hour_of, read_lines
from service.backtest.replay import Replay, order_stream, replay
from service.commands.backtest import main
from service.s3_import.edges import OpenedObject
from service.s3_import.layout import S3Prefix
from service.s3_import.ledger import ObjectInfo
from service.s3_import.records import VariantTags
from service.settings import Settings, load_settings

START_MS = 1_795_251_600_000  # 2026-11-21T09:00:00Z
START = START_MS // 1000
HOUR = 3600
REGRESSION = START + HOUR  # T: v6 loses recall on merchant category 5411 from 10:00
MAX_LABEL_DELAY = 60  # labels come 1..60 s after their capture

# The all-traffic alarm and the segment alarm of the story, as numbers the hand computations use.
ALL_PERIOD, ALL_N, ALL_M, ALL_MIN, ALL_THRESHOLD = 60, 5, 3, 20, 0.7
SEG_PERIOD, SEG_N, SEG_M, SEG_MIN, SEG_THRESHOLD = 300, 3, 2, 30, 0.6

SPEC = f"""
version: 1
name: backtest
endpoints:
  - name: fraud-ep
    variant: v6
    model_version: fraud-v6
    alarms:
      - name: recall
        metric: recall
        threshold: {ALL_THRESHOLD}
        period: {ALL_PERIOD}
        evaluation_periods: {ALL_N}
        datapoints_to_alarm: {ALL_M}
        min_samples: {ALL_MIN}
      - name: recall-mcc-5411
        metric: recall
        threshold: {SEG_THRESHOLD}
        scope: model_version
        segment: {{merchant_category: "5411"}}
        period: {SEG_PERIOD}
        evaluation_periods: {SEG_N}
        datapoints_to_alarm: {SEG_M}
        min_samples: {SEG_MIN}
"""
ALL_NAME = "rollguard-fraud-ep-v6-recall"
SEG_NAME = "rollguard-fraud-ep-v6.fraud-v6-recall-mcc-5411"


# ---------------------------------------------------------------- a history with a known regression


@dataclass
class History:
    captures: list[dict[str, Any]]
    labels: list[dict[str, Any]]

    def write(self, directory: Path, seed: int = 1) -> tuple[Path, Path]:
        """Captures as a directory of hourly files, labels as one shuffled file (order must not matter)."""
        caps = directory / "captures"
        caps.mkdir(parents=True)
        by_hour: dict[int, list[str]] = {}
        for c in self.captures:
            by_hour.setdefault(c["timestamp"] // (HOUR * 1000), []).append(json.dumps(c))
        for hour, rows in by_hour.items():
            (caps / f"part-{hour}.jsonl").write_text("\n".join(rows) + "\n")
        labels = [json.dumps(lab) for lab in self.labels]
        random.Random(seed).shuffle(labels)
        path = directory / "labels.jsonl"
        path.write_text("\n".join(labels) + "\n")
        return caps, path


def make_history(minutes: int, regression_at: int | None, *, seed: int = 7, v6_step_ms: int = 500,
                 v5_step_ms: int = 2000) -> History:
    """Canary v6 (model fraud-v6) and production v5 (fraud-v5), frauds 30 %, recall 0.9 everywhere,
    except v6 on merchant category 5411 from ``regression_at`` (epoch s), where recall is 0.25."""
    rng = random.Random(seed)
    captures: list[dict[str, Any]] = []
    labels: list[dict[str, Any]] = []
    for variant, model, step in (("v6", "fraud-v6", v6_step_ms), ("v5", "fraud-v5", v5_step_ms)):
        for n, ts in enumerate(range(START_MS, START_MS + minutes * 60_000, step)):
            iid = f"{variant}-{n}"
            truth = int(rng.random() < 0.3)
            segment = rng.choice(["5411", "5812", "7995"])
            recall = 0.9
            if variant == "v6" and segment == "5411" and regression_at is not None and ts >= regression_at * 1000:
                recall = 0.25
            prediction = int(rng.random() < recall) if truth else int(rng.random() < 0.05)
            captures.append({
                "inference_id": iid, "endpoint": "fraud-ep", "variant": variant, "model_version": model,
                "timestamp": ts, "latency_ms": round(rng.lognormvariate(2.0, 0.4), 3), "status": 200,
                "prediction": prediction, "attributes": {"merchant_category": segment},
            })
            labels.append({"inference_id": iid, "endpoint": "fraud-ep", "label": truth,
                           "timestamp": ts + rng.randint(1000, MAX_LABEL_DELAY * 1000), "source": "disputes"})
    return History(captures, labels)


def settings(**overrides: Any) -> Settings:
    return load_settings(_env_file=None, **overrides)


def backtest_of(history: History, tmp: Path, *, bad: BadInterval | None, end: int) -> Backtest:
    caps, labels = history.write(tmp)
    source = LocalFiles()
    lines = read_lines(source, str(caps), "capture") + read_lines(source, str(labels), "label")
    alarms = expand(parse_spec(SPEC))
    # without the publishing lag, so the hand computations below are CloudWatch's rules alone
    # (test_publishing_lag.py models the lag)
    return run_backtest(alarms, lines, settings(), namespace="Rollguard", start=START, end=end, bad=bad,
                        publish_lag_s=0)


HISTORY_MINUTES = 180
END = START + HISTORY_MINUTES * 60 + 10 * 60  # the history plus the longest evaluation window


@pytest.fixture(scope="module")
def regressed(tmp_path_factory: pytest.TempPathFactory) -> tuple[History, Backtest]:
    history = make_history(HISTORY_MINUTES, REGRESSION)
    return history, backtest_of(history, tmp_path_factory.mktemp("regressed"), bad=BadInterval(REGRESSION), end=END)


@pytest.fixture(scope="module")
def healthy(tmp_path_factory: pytest.TempPathFactory) -> tuple[History, Backtest]:
    history = make_history(HISTORY_MINUTES, None)
    return history, backtest_of(history, tmp_path_factory.mktemp("healthy"), bad=None, end=END)


def result(done: Backtest, name: str) -> AlarmResult:
    (found,) = [r for r in done.results if r.alarm.name == name]
    return found


# ---------------------------------------------------------------- the story


def test_the_segment_alarm_fires_within_m_periods_of_the_regression(regressed: tuple[History, Backtest]) -> None:
    _, done = regressed
    report = result(done, SEG_NAME).to_json()
    first = parse_time(report["first_alarm"])
    # At an evaluation instant e the alarm reads the windows ending at e, e - P, ..., e - (N-1)P.
    # M breaching windows need bad data in the window ending at e - (M-1)P, so e > T + (M-1)P;
    # by e = T + M*P + the label delay, M whole windows hold only bad outcomes (stamped at label time).
    assert REGRESSION + (SEG_M - 1) * SEG_PERIOD < first <= REGRESSION + SEG_M * SEG_PERIOD + MAX_LABEL_DELAY
    assert report["fired"] == 1 and report["false_alarms"] == 0
    assert report["first_bad_datapoint"] is not None
    assert parse_time(report["first_bad_datapoint"]) >= REGRESSION
    assert 0 < report["detection_delay_seconds"] <= SEG_M * SEG_PERIOD + MAX_LABEL_DELAY
    # a guardrail alarm is fail-safe: it reads the replayed daemon's heartbeat too
    assert set(report["data_found"]) == {"tp", "fn", "alive"} and all(report["data_found"].values())


def hand_recall_per_period(history: History, period: int, min_samples: int) -> pd.Series:
    """All-traffic recall of v6 per period, from the messages: a pandas merge on inference id,
    outcomes at label time, IF(tp+fn >= min, tp/(tp+fn), 1) as the spec's sample guard reads."""
    captures = pd.DataFrame(history.captures)
    labels = pd.DataFrame(history.labels)
    joined = captures[captures["variant"] == "v6"].merge(labels, on="inference_id", suffixes=("_capture", "_label"))
    positives = joined[joined["label"] == 1].copy()
    positives["period"] = positives["timestamp_label"] // (period * 1000) * period
    per = positives.groupby("period")["prediction"].agg(["sum", "size"])
    return pd.Series(
        [row["sum"] / row["size"] if row["size"] >= min_samples else 1.0 for _, row in per.iterrows()],
        index=per.index,
    )


def hand_m_of_n(breaching: set[int], start: int, end: int, period: int, n: int, m: int) -> list[tuple[int, bool]]:
    """ALARM or not at every minute in [start, end]: at least m of the n windows ending there breach.

    With FILL(.., 0) in the math every window has a value, so TreatMissingData never applies."""
    out = []
    for e in range(start, end + 1, 60):
        windows = [e - k * period for k in range(1, n + 1)]
        out.append((e, sum(w in breaching for w in windows) >= m))
    return out


def test_the_all_traffic_alarm_matches_a_hand_computation(regressed: tuple[History, Backtest]) -> None:
    history, done = regressed
    recall = hand_recall_per_period(history, ALL_PERIOD, ALL_MIN)
    found = result(done, ALL_NAME)
    # the value of every evaluated period equals the pandas one (1.0: too few samples, the guard)
    for p in found.periods:
        assert p.value == pytest.approx(float(recall.get(p.start, 1.0)), abs=1e-12), p
    breaching = {int(t) for t, v in recall.items() if v < ALL_THRESHOLD}
    states = hand_m_of_n(breaching, START, END, ALL_PERIOD, ALL_N, ALL_M)
    entries = [e for i, (e, alarm) in enumerate(states) if alarm and (i == 0 or not states[i - 1][1])]
    seconds = sum(60 for e, alarm in states if alarm and e < END)
    report = found.to_json()
    assert [parse_time(t) for t in report["alarm_entries"]] == entries
    assert report["alarm_seconds"] == seconds
    assert report["false_alarms"] == sum(1 for e in entries if e < REGRESSION)
    assert len(entries) > 3, "the all-traffic recall should flap around its threshold after the regression"
    first_bad = min(t for t in breaching if t >= REGRESSION)
    assert parse_time(report["first_bad_datapoint"]) == first_bad


def test_without_the_regression_no_alarm_fires(healthy: tuple[History, Backtest]) -> None:
    _, done = healthy
    for r in done.results:
        report = r.to_json()
        assert report["fired"] == 0 and report["false_alarms"] == 0 and report["alarm_seconds"] == 0, report
        assert report["first_bad_datapoint"] is None
        assert all(report["data_found"].values())
    assert done.replay.bad == {}
    assert done.replay.captures == len(make_history(HISTORY_MINUTES, None).captures)


def test_the_default_range_is_the_replay_plus_the_evaluation_window(regressed: tuple[History, Backtest]) -> None:
    _, done = regressed
    alarm = result(done, SEG_NAME).alarm
    start, end = default_range(alarm, done.replay)  # type: ignore[misc]
    assert done.replay.start_ms is not None and done.replay.end_ms is not None
    assert start == START
    assert end == -(-done.replay.end_ms // 1000) + SEG_PERIOD * SEG_N


# ---------------------------------------------------------------- stream ordering


def capture(iid: str, ts: int, **extra: Any) -> bytes:
    return json.dumps({"inference_id": iid, "endpoint": "fraud-ep", "variant": "v6", "timestamp": ts,
                       "prediction": 1, **extra}).encode()


def label(iid: str, ts: int | str, value: int = 1) -> bytes:
    return json.dumps({"inference_id": iid, "endpoint": "fraud-ep", "label": value, "timestamp": ts}).encode()


def test_the_stream_is_ordered_by_event_time_captures_first_bad_lines_first() -> None:
    lines = [
        Line("label", label("a", 1_000_000), "l", 1),
        Line("capture", capture("a", 1_000_000), "c", 1),
        Line("capture", capture("b", 500_000), "c", 2),
        Line("capture", b"{broken", "c", 3),
        Line("label", label("c", 200_000), "l", 2),
        Line("label", label("z", "2026-11-21T09:00:00Z"), "l", 3),
        Line("capture", capture("d", 500_000), "c", 4),
    ]
    ordered = order_stream(lines, PipelineConfig())
    assert [(t.line.uri, t.line.number) for t in ordered] == [
        ("c", 3),  # no event time: first
        ("l", 2), ("c", 2), ("c", 4),  # ties keep input order
        ("c", 1), ("l", 1),  # a capture before a label of the same millisecond
        ("l", 3),
    ]
    assert [t.event_ms for t in ordered] == [None, 200_000, 500_000, 500_000, 1_000_000, 1_000_000, START_MS]


def test_the_replay_follows_the_simulated_clock_for_expiry() -> None:
    # label_wait 10 min: a label 11 min before its capture is an orphan by then, one 9 min before joins
    config = PipelineConfig(tick_ms=60_000, join=JoinPolicy(label_wait_ms=600_000))
    lines = [
        Line("label", label("late", START_MS), "l", 1),
        Line("capture", capture("late", START_MS + 11 * 60_000), "c", 1),
        Line("label", label("ok", START_MS + 60_000), "l", 2),
        Line("capture", capture("ok", START_MS + 10 * 60_000), "c", 2),
    ]
    done = replay(order_stream(lines, config), config)
    assert done.join["orphan_labels"] == 1
    sums: dict[str, float] = {}
    for d in done.datums:
        if d.dimensions == (("EndpointName", "fraud-ep"), ("VariantName", "v6")):
            sums[d.name] = sums.get(d.name, 0.0) + (d.value or 0.0)
    assert sums["TruePositives"] == 1 and sums["Invocations"] == 2
    assert done.start_ms == START_MS and done.end_ms == START_MS + 11 * 60_000
    assert done.ticks == 12  # every minute the clock passed, plus the final one


# ---------------------------------------------------------------- datums -> datapoints


def math_alarm(**alarm: Any) -> EvaluatorAlarm:
    body = {"name": "recall", "metric": "recall", "threshold": 0.5, "fail_safe": False, **alarm}
    spec = parse_spec(json.dumps({"name": "t", "endpoints": [
        {"name": "fraud-ep", "variant": "v6", "model_version": "fraud-v6", "alarms": [body]}]}))
    (expanded,) = expand(spec)
    return EvaluatorAlarm.from_request(to_put_metric_alarm(expanded, "Rollguard"))


def test_datums_map_to_datapoints_by_exact_dimension_set() -> None:
    base = (("EndpointName", "fraud-ep"), ("VariantName", "v6"))
    with_version = base + (("ModelVersion", "fraud-v6"),)
    segment = base + (("merchant_category", "5411"),)
    other = (("EndpointName", "fraud-ep"), ("VariantName", "v5"))
    ts = START_MS
    datums = [
        Datum("TruePositives", base, ts, value=1.0),
        Datum("TruePositives", with_version, ts, value=2.0),
        Datum("TruePositives", segment, ts, value=4.0),
        Datum("TruePositives", other, ts, value=8.0),
        Datum("TruePositives", tuple(reversed(base)), ts + 60_000, value=16.0),  # order does not matter
        Datum("FalseNegatives", base, ts, value=32.0),
        Datum("Latency", base, ts, "Milliseconds", values=tuple(float(v) for v in range(1, 301)),
              counts=(1.0,) * 300),
    ]
    index = DatumIndex(datums)
    data = datapoints_for(math_alarm(), index, "Rollguard")
    assert set(data) == {"tp", "fn"}
    assert [d.values for d in data["tp"]] == [(1.0,), (16.0,)]
    assert [d.values for d in data["fn"]] == [(32.0,)]
    scoped = datapoints_for(math_alarm(scope="model_version"), index, "Rollguard")
    assert [d.values for d in scoped["tp"]] == [(2.0,)] and scoped["fn"] == ()
    seg = datapoints_for(math_alarm(scope="all", segment={"merchant_category": "5411"}), index, "Rollguard")
    assert [d.values for d in seg["tp"]] == [(4.0,)]
    assert datapoints_for(math_alarm(), index, "Other") == {"tp": (), "fn": ()}
    # a single-metric alarm is keyed by metric name; a 300-value distribution is split in two
    latency = datapoints_for(math_alarm(metric="p99_latency", min_samples=0, threshold=40), index, "Rollguard")
    assert list(latency) == ["Latency"]
    assert [len(d.values) for d in latency["Latency"]] == [150, 150]


# ---------------------------------------------------------------- the report


def transition(t: int, previous: State, state: State) -> Transition:
    return Transition(t, previous, state, "")


def test_summary_definitions() -> None:
    i, ok, alarm = State.INSUFFICIENT_DATA, State.OK, State.ALARM
    transitions = [
        transition(1000, i, ok),
        transition(1300, ok, alarm),  # before the bad interval: false
        transition(1600, alarm, ok),
        transition(2000, ok, alarm),  # inside: true
        transition(2600, alarm, ok),
        transition(3000, ok, alarm),  # at the interval's end: inside (both ends included)
    ]
    periods = [
        PeriodValue(1200, 1260, 0.1, True),  # breaching, but before the bad interval
        PeriodValue(1900, 1960, 0.9, False),
        PeriodValue(1920, 1980, 0.2, True),  # the first bad datapoint
    ]
    out = summarize(transitions, periods, 1000, 3300, BadInterval(1900, 3000))
    assert out.alarm_entries == (1300, 2000, 3000)
    assert out.alarm_intervals == ((1300, 1600), (2000, 2600), (3000, 3300))
    assert out.alarm_seconds == 300 + 600 + 300
    assert out.false_alarms == 1
    assert out.first_bad == periods[2] and out.detected_at == 2000 and out.detection_delay == 80
    assert out.final_state is State.ALARM
    # no bad interval: the history is good, every entry is false; the first breach is the first bad point
    good = summarize(transitions, periods, 1000, 3300, None)
    assert good.false_alarms == 3 and good.first_bad == periods[0] and good.detection_delay == 100
    # already in ALARM when the first bad datapoint comes: detected at once
    early = summarize(transitions, [PeriodValue(1400, 1460, 0.0, True)], 1000, 3300, BadInterval(1400))
    assert early.detected_at == 1400 and early.detection_delay == 0
    # never fired: missed
    missed = summarize([transition(1000, i, ok)], periods, 1000, 3300, BadInterval(1900))
    assert missed.first_bad == periods[2] and missed.detected_at is None and missed.detection_delay is None


# ---------------------------------------------------------------- SageMaker files and bad lines


def data_capture_line(iid: str, when: str, output: str, *, base64_json: bool = False) -> bytes:
    if base64_json:
        payload = base64.b64encode(json.dumps({"predictions": [{"score": float(output)}]}).encode()).decode()
        out = {"observedContentType": "application/json", "mode": "OUTPUT", "data": payload, "encoding": "BASE64"}
    else:
        out = {"observedContentType": "text/csv", "mode": "OUTPUT", "data": output, "encoding": "CSV"}
    return json.dumps({
        "captureData": {"endpointInput": {"observedContentType": "text/csv", "mode": "INPUT",
                                          "data": "5411,12.5", "encoding": "CSV"},
                        "endpointOutput": out},
        "eventMetadata": {"eventId": f"evt-{iid}", "inferenceId": iid, "inferenceTime": when},
        "eventVersion": "0",
    }).encode()


def ground_truth_line(iid: str, value: int) -> bytes:
    return json.dumps({"groundTruthData": {"data": str(value), "encoding": "CSV"},
                       "eventMetadata": {"eventId": iid}, "eventVersion": "0"}).encode()


@dataclass
class SageMakerFiles:
    captures: Path
    labels: Path
    outcomes: dict[str, int]  # expected TruePositives/... of v6


def write_sagemaker_files(root: Path) -> SageMakerFiles:
    """20 minutes of Data Capture (one line every 10 s) and the hour's Model Monitor ground truth."""
    rng = random.Random(3)
    captures = root / "datacapture" / "fraud-ep" / "v6" / "2026" / "11" / "21" / "09"
    truth_dir = root / "groundtruth" / "2026" / "11" / "21" / "09"
    captures.mkdir(parents=True)
    truth_dir.mkdir(parents=True)
    outcomes = {"TruePositives": 0, "FalsePositives": 0, "FalseNegatives": 0, "TrueNegatives": 0}
    names = {(1, 1): "TruePositives", (1, 0): "FalsePositives", (0, 1): "FalseNegatives", (0, 0): "TrueNegatives"}
    files: dict[str, list[bytes]] = {"00-00-000-a.jsonl": [], "10-00-000-b.jsonl": []}
    truth: list[bytes] = []
    for i in range(120):
        iid = f"inf-{i}"
        score = round(rng.random(), 3)
        when = f"2026-11-21T09:{i // 6:02d}:{i % 6 * 10:02d}.000Z"
        files["00-00-000-a.jsonl" if i < 60 else "10-00-000-b.jsonl"].append(
            data_capture_line(iid, when, str(score), base64_json=i % 2 == 1))
        value = int(rng.random() < 0.4)
        truth.append(ground_truth_line(iid, value))
        outcomes[names[(int(score >= 0.5), value)]] += 1
    for name, body in files.items():
        (captures / name).write_bytes(b"\n".join(body) + b"\n")
    (truth_dir / "labels.jsonl").write_bytes(b"\n".join(truth) + b"\n\n")  # a trailing blank line is no record
    return SageMakerFiles(root / "datacapture", root / "groundtruth", outcomes)


def test_ground_truth_time_is_the_path_hour_spread_by_line_order() -> None:
    key = "gt/2026/11/21/09/labels.jsonl"
    assert hour_of(key) == START_MS
    assert hour_of("gt/labels.jsonl") is None and hour_of("gt/2026/13/21/09/x.jsonl") is None
    lines = file_lines("label", key, "s3://b/" + key, [b"a\n\nb\n", b"c\nd"])
    assert [(line.raw, line.number, line.record_ts_ms) for line in lines] == [
        (b"a", 1, START_MS), (b"b", 3, START_MS + 900_000), (b"c", 4, START_MS + 1_800_000),
        (b"d", 5, START_MS + 2_700_000),
    ]
    assert all(line.headers == () for line in lines)
    dc = file_lines("capture", "dc/fraud-ep/v6/2026/11/21/09/x.jsonl", "x", [b"l1\n"],
                    VariantTags(frozenset({"v6"}), {"v6": "fraud-v6"}))
    assert dict(dc[0].headers) == {"endpoint": b"fraud-ep", "variant": b"v6", "shadow": b"true",
                                   "model_version": b"fraud-v6"}


def test_directories_of_data_capture_and_ground_truth_files_join(tmp_path: Path) -> None:
    files = write_sagemaker_files(tmp_path)
    tags = VariantTags(model_versions={"v6": "fraud-v6"})
    lines = read_lines(LocalFiles(), str(files.captures), "capture", tags)
    lines += read_lines(LocalFiles(), str(files.labels), "label", tags)
    assert len(lines) == 240
    config = PipelineConfig()
    done = replay(order_stream(lines, config), config)
    assert done.bad == {} and done.captures == 120 and done.labels == 120
    for dims in [(("EndpointName", "fraud-ep"), ("VariantName", "v6")),
                 (("EndpointName", "fraud-ep"), ("VariantName", "v6"), ("ModelVersion", "fraud-v6"))]:
        sums = {name: 0.0 for name in files.outcomes}
        invocations = 0.0
        for d in done.datums:
            if d.dimensions == dims and d.name in sums:
                sums[d.name] += d.value or 0.0
            if d.dimensions == dims and d.name == "Invocations":
                invocations += d.value or 0.0
        assert sums == files.outcomes and invocations == 120
    # label i of 120 in hour 09 is stamped 09:00 + 30 s * i: the last label lands at 09:59:30
    assert done.end_ms == START_MS + 119 * 30_000


def test_bad_lines_are_counted_per_reason_and_never_fatal(tmp_path: Path) -> None:
    caps = tmp_path / "captures.jsonl"
    caps.write_bytes(b"\n".join([
        capture("a", START_MS),
        b"{not json",
        b'{"inference_id": "\xff"}',
        b'{"endpoint": "fraud-ep", "variant": "v6", "timestamp": 1, "prediction": 1}',
        b"",
        b'{"inference_id": "n", "endpoint": "fraud-ep", "variant": "v6", "timestamp": 1, "score": NaN}',
        data_capture_line("dc-1", "2026-11-21T09:00:01Z", "0.9"),  # outside the key layout: no endpoint header
    ]) + b"\n")
    labels = tmp_path / "labels.jsonl"
    labels.write_bytes(b"\n".join([label("a", START_MS + 5000), b"[1, 2]", ground_truth_line("dc-1", 1)]) + b"\n")
    spec = tmp_path / "spec.yaml"
    spec.write_text(SPEC)
    out, err = io.StringIO(), io.StringIO()
    code = main(["--captures", str(caps), "--labels", str(labels), "--spec", str(spec)],
                settings=settings(), stdout=out, stderr=err)
    assert code == 0, err.getvalue()
    text = out.getvalue()
    assert "bad lines: 7 (missing_field 3, non_finite_number 1, not_json 1, not_object 1, not_utf8 1)" in text
    assert f"{caps}:2: not_json:" in text
    lines = read_lines(LocalFiles(), str(caps), "capture") + read_lines(LocalFiles(), str(labels), "label")
    done = replay(order_stream(lines, PipelineConfig()), PipelineConfig())
    assert done.bad == {"missing_field": 3, "non_finite_number": 1, "not_json": 1, "not_object": 1, "not_utf8": 1}
    assert done.captures == 6 and done.labels == 3


# ---------------------------------------------------------------- the command


@pytest.fixture(scope="module")
def small(tmp_path_factory: pytest.TempPathFactory) -> tuple[Path, Path, Path]:
    """40 minutes, the segment regressing from minute 15."""
    root = tmp_path_factory.mktemp("small")
    caps, labels = make_history(40, START + 15 * 60, v6_step_ms=250, v5_step_ms=5000).write(root)
    spec = root / "spec.yaml"
    spec.write_text(SPEC)
    return caps, labels, spec


def run(argv: Sequence[str]) -> tuple[int, str, str]:
    out, err = io.StringIO(), io.StringIO()
    code = main(list(argv), settings=settings(), stdout=out, stderr=err)
    return code, out.getvalue(), err.getvalue()


def test_json_output_is_a_list_of_alarm_reports(small: tuple[Path, Path, Path]) -> None:
    caps, labels, spec = small
    code, out, err = run(["--captures", str(caps), "--labels", str(labels), "--spec", str(spec), "--json",
                          "--bad-from", "2026-11-21T09:15:00Z"])
    assert code == 0, err
    reports = json.loads(out)
    assert [r["alarm"] for r in reports] == [ALL_NAME, SEG_NAME]
    seg = reports[1]
    assert seg["segment"] == {"merchant_category": "5411"} and seg["model_version"] == "fraud-v6"
    assert seg["bad_interval"] == {"from": "2026-11-21T09:15:00Z", "to": None}
    assert seg["fired"] >= 1 and seg["false_alarms"] == 0
    assert seg["evaluated_from"] == "2026-11-21T09:00:00Z"
    assert set(seg) >= {"alarm_entries", "first_alarm", "first_bad_datapoint", "detection_delay_seconds",
                        "false_alarms", "alarm_seconds", "alarm_intervals", "final_state"}
    assert "replayed" in err and "note: segment attribute(s) merchant_category added" in err


def test_fail_on_false_alarm(small: tuple[Path, Path, Path]) -> None:
    caps, labels, spec = small
    base = ["--captures", str(caps), "--labels", str(labels), "--spec", str(spec), "--fail-on-false-alarm"]
    code, out, _ = run(base)  # no bad interval: the regression's alarms are false alarms
    assert code == 1
    assert "no bad interval given" in out
    assert run(base + ["--bad-from", "2026-11-21T09:15:00Z"])[0] == 0


def test_plot_writes_one_readable_png_per_alarm(small: tuple[Path, Path, Path], tmp_path: Path) -> None:
    caps, labels, spec = small
    code, _, err = run(["--captures", str(caps), "--labels", str(labels), "--spec", str(spec), "--plot",
                        str(tmp_path / "plots"), "--bad-from", "2026-11-21T09:15:00Z", "--bad-to", "2026-11-21T09:35:00Z"])
    assert code == 0, err
    pngs = sorted((tmp_path / "plots").iterdir())
    assert [p.name for p in pngs] == [f"{ALL_NAME}.png", f"{SEG_NAME}.png"]
    for png in pngs:
        data = png.read_bytes()
        assert data.startswith(b"\x89PNG\r\n\x1a\n") and len(data) > 10_000


@pytest.mark.parametrize("extra, message", [
    (["--bad-to", "2026-11-21T09:15:00Z"], "--bad-to needs --bad-from"),
    (["--from", "2026-11-21T10:00:00Z", "--to", "2026-11-21T09:00:00Z"], "--to must not be before --from"),
    (["--from", "yesterday"], "expected ISO 8601 or epoch seconds"),
])
def test_bad_arguments_exit_2(small: tuple[Path, Path, Path], extra: list[str], message: str) -> None:
    caps, labels, spec = small
    code, _, err = run(["--captures", str(caps), "--labels", str(labels), "--spec", str(spec), *extra])
    assert code == 2 and message in err


def test_missing_inputs_and_bad_specs_exit_2(small: tuple[Path, Path, Path], tmp_path: Path) -> None:
    caps, labels, spec = small
    code, _, err = run(["--captures", str(tmp_path / "nope"), "--labels", str(labels), "--spec", str(spec)])
    assert code == 2 and f"{tmp_path / 'nope'}: no such file or directory" in err
    (tmp_path / "empty").mkdir()
    code, _, err = run(["--captures", str(tmp_path / "empty"), "--labels", str(labels), "--spec", str(spec)])
    assert code == 2 and "no input files" in err
    bad_spec = tmp_path / "spec.yaml"
    bad_spec.write_text("name: x\nendpoints: []\n")
    code, _, err = run(["--captures", str(caps), "--labels", str(labels), "--spec", str(bad_spec)])
    assert code == 2 and str(bad_spec) in err


# ---------------------------------------------------------------- S3 input without S3


class MemoryObjects:
    """An in-memory ObjectStore."""

    def __init__(self, objects: dict[str, bytes]) -> None:
        self.objects = objects
        self.listed: list[str] = []

    def check(self, prefix: S3Prefix) -> None:
        pass

    def list(self, prefix: S3Prefix) -> Iterator[ObjectInfo]:
        self.listed.append(prefix.prefix)
        for key in sorted(self.objects):
            if key.startswith(prefix.prefix):
                yield ObjectInfo(key, "etag", len(self.objects[key]))

    def open(self, bucket: str, key: str) -> OpenedObject | None:
        data = self.objects.get(key)
        return None if data is None else OpenedObject("etag", iter([data]))


def test_s3_locations_are_prefixes_or_one_object() -> None:
    store = MemoryObjects({
        "dc/ep/v/2026/11/21/09/a.jsonl": b"1\n", "dc/ep/v/2026/11/21/09/b.jsonl": b"2\n",
        "dc/README.md": b"x", "dc-old/ep/v/2026/11/21/09/c.jsonl": b"3\n", "one.jsonl": b"4\n",
    })
    source = S3Files(store)

    def keys(files: Iterable[InputFile]) -> list[str]:
        return [f.key for f in files]

    assert keys(source.files("s3://bucket/dc/")) == ["dc/ep/v/2026/11/21/09/a.jsonl", "dc/ep/v/2026/11/21/09/b.jsonl"]
    assert keys(source.files("s3://bucket/dc")) == keys(source.files("s3://bucket/dc/"))  # not dc-old/
    assert keys(source.files("s3://bucket/one.jsonl")) == ["one.jsonl"]
    (f,) = source.files("s3://bucket/one.jsonl")
    assert f.uri == "s3://bucket/one.jsonl" and list(f.read()) == [b"4\n"]
    with pytest.raises(ValueError, match="expected s3://bucket/prefix/"):
        source.files("s3://")


def test_replay_of_nothing_is_empty() -> None:
    done: Replay = replay([], PipelineConfig())
    assert done.datums == () and done.start_ms is None and done.captures == 0


def test_replay_refuses_a_stream_out_of_order() -> None:
    lines = [Line("capture", capture("a", START_MS + 1000), "c", 1), Line("capture", capture("b", START_MS), "c", 2)]
    config = PipelineConfig()
    unordered = [order_stream([line], config)[0] for line in lines]
    with pytest.raises(ValueError, match="not in event-time order at c:2"):
        replay(unordered, config)


def test_gauge_alarms_read_the_daemons_sliding_window_gauges(small: tuple[Path, Path, Path]) -> None:
    caps, labels, _ = small
    spec = parse_spec("""
name: gauges
endpoints:
  - name: fraud-ep
    variant: v6
    model_version: fraud-v6
    alarms:
      - {name: recall-gauge, gauge: Recall, threshold: 0.75, comparison: "<", scope: model_version,
         segment: {merchant_category: "5411"}, period: 60, evaluation_periods: 3, datapoints_to_alarm: 3,
         fail_safe: false}
""")
    lines = read_lines(LocalFiles(), str(caps), "capture") + read_lines(LocalFiles(), str(labels), "label")
    done = run_backtest(expand(spec), lines, settings(window_seconds=300),
                        namespace="Rollguard", bad=BadInterval(START + 15 * 60), publish_lag_s=0)
    (r,) = done.results
    report = r.to_json()
    assert report["data_found"]["Recall"] > 0
    # a 5-minute window of 5411 frauds at recall 0.25 after 09:15: the gauge drops below 0.75 within
    # the window plus M periods, and it never did before
    assert report["false_alarms"] == 0 and report["fired"] >= 1
    assert parse_time(report["first_alarm"]) <= START + 15 * 60 + 300 + 3 * 60 + MAX_LABEL_DELAY
