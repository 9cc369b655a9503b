"""The publishing lag (issue 10, item 2): a period's counts reach CloudWatch a tick plus seconds
after it ends. The evaluator sees at each evaluation only what has arrived; fail-safe alarms skip
the periods still in flight, fail-open ones read them FILLed; `simulate` models the lag by
default; `plan` warns about fail-open M = N on 60 s periods."""
from __future__ import annotations

import io
import json
from pathlib import Path
from typing import Any

import pytest
import yaml

from alarms import cli, evaluator, simulate
from alarms.evaluator import Datum, State, evaluate, timeline
from alarms.publish_lag import DEFAULT_PUBLISH_DELAY_S, arriving, minute_end, publish_lag_s
from alarms.spec import expand, parse_spec, spec_warnings, to_put_metric_alarm
from pipelines.heartbeat import heartbeat_stamps
from tests.unit.alarms.helpers import END

TICK = 60
LAG = publish_lag_s(TICK)  # 70 s: a tick of phase plus the publish delay
BAD_FROM = END - 3600  # errors are 100 % from here on


def error_rate_alarm(n: int, m: int, **extra: Any) -> evaluator.Alarm:
    data = {"name": "fraud", "endpoints": [{"name": "fraud-ep", "variant": "AllTraffic", "alarms": [
        {"name": "errors", "metric": "error_rate", "threshold": 0.05, "evaluation_periods": n,
         "datapoints_to_alarm": m, **extra}]}]}
    (alarm,) = expand(parse_spec(yaml.safe_dump(data, sort_keys=False)))
    return evaluator.Alarm.from_request(to_put_metric_alarm(alarm, "Rollguard"))


def published(lag: float, bad_from: int = BAD_FROM) -> dict[str, list[Datum]]:
    """Two hours of traffic up to END as the daemon publishes it: every minute's counts drained at
    the minute's end, one heartbeat per completed minute (`pipelines.heartbeat`), all arriving
    ``lag`` seconds after they were drained; 100 % errors from ``bad_from``."""
    data: dict[str, list[Datum]] = {"invocations": [], "errors": [], "alive": []}
    previous = None
    for start in range(END - 7200, END, 60):
        drained = start + 60
        data["invocations"].append(arriving(Datum(start + 1, (1000.0,), (1.0,)), drained, lag))
        errors = 1000.0 if start >= bad_from else 2.0
        data["errors"].append(arriving(Datum(start + 1, (errors,), (1.0,)), drained, lag))
        for stamp in heartbeat_stamps(previous, drained * 1000, TICK * 1000):
            data["alive"].append(arriving(Datum(stamp / 1000, (1.0,), (1.0,)), drained, lag))
        previous = drained * 1000
    return data


def first_alarm(alarm: evaluator.Alarm, data: dict[str, list[Datum]]) -> int | None:
    changes = timeline(alarm, data, END - 5400, END)
    return next((c.timestamp for c in changes if c.state is State.ALARM), None)


def test_the_lag_is_a_tick_plus_the_publish_delay() -> None:
    assert LAG == TICK + DEFAULT_PUBLISH_DELAY_S == 70
    assert minute_end(Datum(END + 59.5)) == END + 60


def test_a_datum_is_seen_only_once_it_has_arrived() -> None:
    alarm = error_rate_alarm(1, 1, fail_safe=False)
    data = {"invocations": [Datum(END - 59, (1000.0,), (1.0,), arrival=END + 10)],
            "errors": [Datum(END - 59, (1000.0,), (1.0,), arrival=END + 10)]}
    assert evaluate(alarm, data, END).evaluated[-1].value == 0.0  # FILLed: nothing there yet
    assert evaluate(alarm, data, END, settled=True).evaluated[-1].value == 1.0
    later = evaluate(alarm, data, END + 60)
    assert [p.value for p in later.evaluated[-2:]] == [1.0, 0.0]


def test_one_of_one_on_all_errors_fires_with_the_lag() -> None:
    # the case: with the lag a FILLed 1-of-1 alarm reads the newest, empty period and never
    # fires; the fail-safe alarm (the guardrail default) skips the periods without a heartbeat yet
    data = published(LAG, bad_from=END - 7200)
    fail_safe = error_rate_alarm(1, 1)
    result = evaluate(fail_safe, data, END)
    assert result.state is State.ALARM, result.reason
    used = [p for p in result.evaluated if p.used]
    assert [p.end for p in used] == [END - 120]  # the newest period all of whose data has arrived
    assert [p.value for p in result.evaluated[-2:]] == [None, None]  # still in flight
    fail_open = error_rate_alarm(1, 1, fail_safe=False)
    assert first_alarm(fail_open, data) is None
    assert evaluate(fail_open, data, END).state is State.OK


@pytest.mark.parametrize(("n", "m"), [(1, 1), (5, 3)])
def test_the_lag_delays_the_alarm_by_the_periods_in_flight(n: int, m: int) -> None:
    alarm = error_rate_alarm(n, m)
    without = first_alarm(alarm, published(0))
    with_lag = first_alarm(alarm, published(LAG))
    # without the lag M bad periods are seen at BAD_FROM + M minutes; with it a period is whole
    # 70 s after its end, i.e. at the second evaluation after it
    assert without == BAD_FROM + 60 * m
    assert with_lag == BAD_FROM + 60 * m + 120


def test_a_fail_open_alarm_with_room_for_the_lag_fires_late_but_fires() -> None:
    alarm = error_rate_alarm(5, 3, fail_safe=False)
    assert first_alarm(alarm, published(0)) == BAD_FROM + 180
    assert first_alarm(alarm, published(LAG)) == BAD_FROM + 300  # the 3 bad periods it sees are settled


# ---------------------------------------------------------------- simulate


def write(path: Path, content: Any) -> Path:
    path.write_text(json.dumps(content), encoding="utf-8")
    return path


def simulate_json(tmp_path: Path, *extra: str) -> dict[str, Any]:
    data = {"name": "fraud", "endpoints": [{"name": "fraud-ep", "variant": "AllTraffic", "alarms": [
        {"name": "errors", "metric": "error_rate", "threshold": 0.05, "evaluation_periods": 1}]}]}
    (alarm,) = expand(parse_spec(yaml.safe_dump(data, sort_keys=False)))
    request = to_put_metric_alarm(alarm, "Rollguard")
    request.pop("Tags")
    points = {"invocations": [], "errors": [], "alive": []}
    for start in range(END - 600, END, 60):  # all errors, each minute stamped in its own minute
        for key in ("invocations", "errors"):
            points[key].append({"Timestamp": start + 1, "Value": 500})
        points["alive"].append({"Timestamp": start, "Value": 1})
    # the last complete minute has errors again, but only 1 % of them: OK
    points["errors"][-1]["Value"] = 5
    out, err = io.StringIO(), io.StringIO()
    code = simulate.main(["--alarm", str(write(tmp_path / "a.json", request)),
                          "--datapoints", str(write(tmp_path / "p.json", points)),
                          "--at", str(END), "--json", *extra], stdout=out, stderr=err)
    assert (code, err.getvalue()) == (0, "")
    result: dict[str, Any] = json.loads(out.getvalue())
    return result


def test_simulate_models_the_lag_by_default(tmp_path: Path) -> None:
    lagged = simulate_json(tmp_path)
    # the last two minutes have not arrived at END: the alarm judges the one before, all errors
    assert lagged["state"] == "ALARM"
    assert [p["value"] for p in lagged["evaluated"][-2:]] == [None, None]
    stored = simulate_json(tmp_path, "--publish-lag", "0")  # data already in CloudWatch
    assert stored["state"] == "OK"
    assert stored["evaluated"][-1]["value"] == pytest.approx(0.01)


def test_simulate_refuses_a_negative_lag(tmp_path: Path) -> None:
    out, err = io.StringIO(), io.StringIO()
    alarm = write(tmp_path / "a.json", {})
    code = simulate.main(["--alarm", str(alarm), "--datapoints", str(alarm), "--at", "0", "--publish-lag", "-1"],
                         stdout=out, stderr=err)
    assert code == 2 and "--publish-lag" in err.getvalue()


# ---------------------------------------------------------------- warnings


def test_m_equals_n_on_60_s_periods_is_a_warning_for_fail_open_alarms(tmp_path: Path) -> None:
    data = {"name": "fraud", "endpoints": [{"name": "fraud-ep", "variant": "AllTraffic", "alarms": [
        {"name": "open", "metric": "error_rate", "threshold": 0.05, "evaluation_periods": 1, "guardrail": False},
        {"name": "safe", "metric": "error_rate", "threshold": 0.05, "evaluation_periods": 1},
        {"name": "roomy", "metric": "error_rate", "threshold": 0.05, "evaluation_periods": 5,
         "datapoints_to_alarm": 3, "guardrail": False},
        {"name": "hourly", "metric": "error_rate", "threshold": 0.05, "evaluation_periods": 3, "period": 3600,
         "guardrail": False},
    ]}]}
    spec = parse_spec(yaml.safe_dump(data, sort_keys=False))
    (warning,) = spec_warnings(spec)
    assert warning.startswith("rollguard-fraud-ep-AllTraffic-open: datapoints_to_alarm = evaluation_periods "
                              "(1 of 1) on 60 s periods")
    path = tmp_path / "alarms.yaml"
    path.write_text(yaml.safe_dump(data, sort_keys=False))

    class Settings:
        namespace, aws_endpoint_url, aws_region = "Rollguard", None, "us-east-1"

    class NoAlarms:
        def get_paginator(self, name: str) -> Any:
            class Pages:
                def paginate(self, **kwargs: Any) -> list[dict[str, Any]]:
                    return [{"MetricAlarms": [], "Metrics": []}]
            return Pages()

    out, err = io.StringIO(), io.StringIO()
    code = cli.main(["plan", "--spec", str(path)], settings=Settings, client_factory=lambda _: NoAlarms(),
                    out=out, err=err)
    assert code == 1
    assert f"rollguard alarms plan: warning: {warning}\n" in err.getvalue()
