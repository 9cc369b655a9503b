"""``rollguard alarms simulate``: files in, state out, one clear line and exit 2 on bad input."""
from __future__ import annotations

import io
import json
from pathlib import Path
from typing import Any

import pytest

from alarms import simulate
from tests.unit.alarms.helpers import math_request, metric_stat, single_request


def write(path: Path, content: Any) -> Path:
    path.write_text(content if isinstance(content, str) else json.dumps(content), encoding="utf-8")
    return path


def run(*argv: str, lag: str | None = "0") -> tuple[int, str, str]:
    """The command on ``argv``; ``lag`` is its --publish-lag (None: the default lag model)."""
    out, err = io.StringIO(), io.StringIO()
    extra = [] if lag is None or "--help" in argv else ["--publish-lag", lag]
    code = simulate.main([*argv, *extra], stdout=out, stderr=err)
    return code, out.getvalue(), err.getvalue()


PRECISION = math_request(
    "IF(tp + fp >= 5, tp / (tp + fp), 1)",
    metric_stat("tp", "TruePositives"),
    metric_stat("fp", "FalsePositives"),
)
POINTS = {
    "tp": [
        {"Timestamp": "2026-11-21T09:00:10Z", "Value": 5},
        {"Timestamp": "2026-11-21T09:01:10Z", "Value": 2},
        {"Timestamp": 1795251730, "Value": 3},  # 09:02:10 as epoch seconds
    ],
    "fp": [
        {"Timestamp": "2026-11-21T09:00:10Z", "Value": 1},
        {"Timestamp": "2026-11-21T09:01:10Z", "Value": 6},
        {"Timestamp": "2026-11-21T09:02:10Z", "Value": 4, "MetricName": "FalsePositives"},
    ],
}


def test_json_output_for_a_math_alarm(tmp_path: Path) -> None:
    alarm = write(tmp_path / "alarm.json", PRECISION)
    points = write(tmp_path / "points.json", POINTS)
    code, out, err = run("--alarm", str(alarm), "--datapoints", str(points), "--at", "2026-11-21T09:03:05Z", "--json")
    assert (code, err) == (0, "")
    result = json.loads(out)
    assert set(result) == {"state", "reason", "evaluated"}
    assert result["state"] == "ALARM"
    assert [p["timestamp"] for p in result["evaluated"]] == [
        "2026-11-21T08:58:00Z",
        "2026-11-21T08:59:00Z",
        "2026-11-21T09:00:00Z",
        "2026-11-21T09:01:00Z",
        "2026-11-21T09:02:00Z",
    ]
    values = [p["value"] for p in result["evaluated"]]
    assert values[:2] == [None, None]
    assert values[2:] == pytest.approx([5 / 6, 2 / 8, 3 / 7])
    assert [p["breaching"] for p in result["evaluated"]] == [None, None, False, True, True]
    assert [p["used"] for p in result["evaluated"]] == [False, False, True, True, True]


def test_text_output_and_initial_state(tmp_path: Path) -> None:
    request = single_request(Period=60, EvaluationPeriods=1, DatapointsToAlarm=1, TreatMissingData="ignore")
    alarm = write(tmp_path / "alarm.json", request)
    points = write(tmp_path / "points.json", {"Errors": []})
    code, out, _ = run(
        "--alarm", str(alarm), "--datapoints", str(points), "--at", "1795251785", "--initial-state", "ALARM"
    )
    assert code == 0
    assert out.splitlines()[0] == "fraud-ep-errors: ALARM at 2026-11-21T09:03:00Z"
    assert "TreatMissingData: ignore" in out


def test_percentiles_from_values_and_counts(tmp_path: Path) -> None:
    request = single_request(
        MetricName="Latency", Statistic=None, ExtendedStatistic="p99", Period=60,
        EvaluationPeriods=1, DatapointsToAlarm=1, Threshold=40,
    )
    alarm = write(tmp_path / "alarm.json", request)
    points = write(
        tmp_path / "points.json",
        {"Latency": [{"Timestamp": "2026-11-21T09:02:30Z", "Values": [12, 35, 80], "Counts": [900, 95, 5]}]},
    )
    code, out, _ = run("--alarm", str(alarm), "--datapoints", str(points), "--at", "2026-11-21T09:03:00Z", "--json")
    assert code == 0
    result = json.loads(out)
    assert result["state"] == "OK"  # p99 of 1000 samples is 35 (rank 989.01 of 900x12, 95x35, 5x80)
    assert result["evaluated"][-1]["value"] == pytest.approx(35.0)


@pytest.mark.parametrize(
    ("alarm_content", "points_content", "fragment"),
    [
        ("{not json", POINTS, "alarm.json: not valid JSON"),
        ([1, 2], POINTS, "alarm.json: expected a JSON object"),
        ({**PRECISION, "EvaluationPeriods": 2000}, POINTS, "alarm.json: EvaluationPeriods x Period"),
        ({**PRECISION, "Metrics": PRECISION["Metrics"][:2]}, POINTS, "alarm.json: Metrics: exactly one element"),
        (PRECISION, "[]", "points.json: expected a JSON object keyed by metric name or id"),
        (PRECISION, {"tp": [], "fn": []}, "points.json: key(s) 'fn' are not read by the alarm"),
        (PRECISION, {"tp": [{"Timestamp": "2026-11-21T09:00:00Z"}]}, "points.json: tp[0]: needs exactly one of"),
        (PRECISION, {"tp": [{"Timestamp": 0, "Value": 1, "MetricName": "Errors"}]}, "tp[0].MetricName is 'Errors'"),
        (
            PRECISION,
            {"tp": [{"Timestamp": 0, "Value": 1, "Dimensions": [{"Name": "EndpointName", "Value": "other"}]}]},
            "tp[0].Dimensions differ",
        ),
    ],
)
def test_bad_files_give_one_line_and_exit_2(
    tmp_path: Path, alarm_content: Any, points_content: Any, fragment: str
) -> None:
    alarm = write(tmp_path / "alarm.json", alarm_content)
    points = write(tmp_path / "points.json", points_content)
    code, out, err = run("--alarm", str(alarm), "--datapoints", str(points), "--at", "2026-11-21T09:03:05Z")
    assert code == 2
    assert out == ""
    assert len(err.strip().splitlines()) == 1
    assert err.startswith("rollguard alarms simulate: ")
    assert fragment in err


def test_missing_file_bad_time_and_bad_arguments(tmp_path: Path) -> None:
    alarm = write(tmp_path / "alarm.json", PRECISION)
    points = write(tmp_path / "points.json", POINTS)
    code, _, err = run("--alarm", str(tmp_path / "nope.json"), "--datapoints", str(points), "--at", "0")
    assert code == 2 and "nope.json: no such file" in err
    code, _, err = run("--alarm", str(alarm), "--datapoints", str(points), "--at", "yesterday")
    assert code == 2 and "--at:" in err
    code, _, err = run("--alarm", str(alarm))
    assert code == 2 and "required" in err
    code, _, err = run("--alarm", str(alarm), "--datapoints", str(points), "--at", "0", "--initial-state", "RED")
    assert code == 2 and "invalid choice" in err
    code, _, err = run("--alarm", str(alarm), "--datapoints", str(points), "--at", "0", "--evaluation-range", "1")
    assert code == 2 and "--evaluation-range" in err


def test_help_exits_zero() -> None:
    code, out, _ = run("--help")
    assert code == 0 and "--datapoints" in out
