"""`rollguard backtest` models the publishing lag (issue 10, item 2): a datum reaches CloudWatch a
tick plus the publish delay after the replay's tick drains it, each evaluation sees only what has
arrived, and the replayed daemon publishes its heartbeat, so fail-safe alarms see a live monitor."""
from __future__ import annotations

import io
import json
from pathlib import Path
from typing import Any

import pytest
import yaml

from alarms.evaluator import parse_time
from alarms.spec import expand, parse_spec
from pipelines import metrics
from service.backtest.evaluation import BadInterval, heartbeats, run_backtest
from service.backtest.inputs import Line
from service.commands.backtest import main
from service.settings import Settings, load_settings

START = 1_795_251_600  # 2026-11-21T09:00:00Z
BAD = START + 30 * 60  # every capture fails from 09:30
END = START + 60 * 60


def settings() -> Settings:
    return load_settings(_env_file=None)


def captures() -> list[Line]:
    """An hour of v6 captures, 10 a second; all errors from BAD."""
    out = []
    for n, ts_ms in enumerate(range(START * 1000, END * 1000, 100)):
        status = 500 if ts_ms >= BAD * 1000 else 200
        raw = json.dumps({"inference_id": f"c{n}", "endpoint": "fraud-ep", "variant": "v6", "timestamp": ts_ms,
                          "status": status, "prediction": 0, "latency_ms": 10.0}).encode()
        out.append(Line("capture", raw, "captures.jsonl", n + 1))
    return out


def spec(n: int, m: int, **extra: Any) -> Any:
    data = {"name": "lag", "endpoints": [{"name": "fraud-ep", "variant": "v6", "alarms": [
        {"name": "errors", "metric": "error_rate", "threshold": 0.05, "evaluation_periods": n,
         "datapoints_to_alarm": m, **extra}]}]}
    return parse_spec(yaml.safe_dump(data, sort_keys=False))


def report(n: int, m: int, lag: float | None, **extra: Any) -> dict[str, Any]:
    done = run_backtest(expand(spec(n, m, **extra)), captures(), settings(), namespace="Rollguard",
                        start=START, end=END + 600, bad=BadInterval(BAD), publish_lag_s=lag)
    (result,) = done.results
    out: dict[str, Any] = result.to_json()
    return out


@pytest.mark.parametrize(("n", "m"), [(1, 1), (5, 3)])
def test_detection_waits_for_the_data_to_arrive(n: int, m: int) -> None:
    without = report(n, m, 0)
    lagged = report(n, m, None)  # the default: ROLLGUARD_TICK_SECONDS (60) + 10 s
    assert lagged["publish_lag_seconds"] == 70
    # the first bad period is the same: what the period was, once all of it arrived
    assert without["first_bad_datapoint"] == lagged["first_bad_datapoint"] == "2026-11-21T09:30:00Z"
    assert parse_time(without["detected_at"]) == BAD + 60 * m
    # a period is whole 70 s after its end: two evaluations later than without the lag
    assert parse_time(lagged["detected_at"]) == BAD + 60 * m + 120
    assert lagged["detection_delay_seconds"] == without["detection_delay_seconds"] + 120
    for r in (without, lagged):
        assert r["fail_safe"] and r["false_alarms"] == 0 and r["fired"] == 1
        assert r["data_found"]["alive"] > 0  # the replayed daemon's heartbeat


def test_a_fail_open_one_of_one_alarm_never_fires_with_the_lag() -> None:
    # the late newest period reads FILLed and non-breaching: the stuck alarm of the issue
    assert report(1, 1, 0, fail_safe=False)["fired"] == 1
    stuck = report(1, 1, None, fail_safe=False)
    assert stuck["fired"] == 0 and stuck["first_bad_datapoint"] == "2026-11-21T09:30:00Z"


def test_the_heartbeat_of_a_daemon_alive_throughout() -> None:
    datums, drained = heartbeats(START, START + 180, 60_000)
    assert [(d.name, d.dimensions, d.timestamp_ms, d.value) for d in datums] == [
        (metrics.HEARTBEAT, (), (START + k * 60) * 1000, 1.0) for k in (-1, 0, 1, 2)
    ]
    assert drained == [(START + k * 60) * 1000 for k in range(4)]  # each bucket once complete


def test_the_command_takes_a_publish_lag(tmp_path: Path) -> None:
    caps = tmp_path / "captures.jsonl"
    caps.write_bytes(b"\n".join(line.raw for line in captures()) + b"\n")
    labels = tmp_path / "labels.jsonl"
    labels.write_text("")
    path = tmp_path / "spec.yaml"
    path.write_text(yaml.safe_dump({"name": "lag", "endpoints": [{"name": "fraud-ep", "variant": "v6", "alarms": [
        {"name": "errors", "metric": "error_rate", "threshold": 0.05, "evaluation_periods": 1, "guardrail": False}]}]}))
    reports = {}
    for lag in ("0", "130"):
        out, err = io.StringIO(), io.StringIO()
        code = main(["--captures", str(caps), "--labels", str(labels), "--spec", str(path), "--json",
                     "--bad-from", str(BAD), "--publish-lag", lag], settings=settings(), stdout=out, stderr=err)
        assert code == 0, err.getvalue()
        (reports[lag],) = json.loads(out.getvalue())
        # fail-open 1 of 1 on 60 s periods: the command warns
        assert "warning: rollguard-fraud-ep-v6-errors: datapoints_to_alarm = evaluation_periods" in err.getvalue()
    assert reports["0"]["fired"] == 1 and reports["130"]["fired"] == 0
    out, err = io.StringIO(), io.StringIO()
    assert main(["--captures", str(caps), "--labels", str(labels), "--spec", str(path), "--publish-lag", "-5"],
                settings=settings(), stdout=out, stderr=err) == 2
    assert "--publish-lag" in err.getvalue()
