"""SageMaker's part: the linear shift's decisions, on a fake clock."""
from __future__ import annotations

from collections.abc import Mapping, Sequence

import pytest

from alarms.guardrail import build_update_endpoint
from service.demo.driver import Action, Kind, LinearShift, Plan, decide

ALARMS = ("rollguard-fraud-ep-AllTraffic.fraud-v6-error-rate", "rollguard-fraud-ep-verdict-fraud-v6-vs-v5")
PLAN = Plan("fraud-ep", "fraud-ep-v6", tuple(range(10, 101, 10)), 10.0, ALARMS)


def test_the_plan_is_read_from_guardrails_update_endpoint_request() -> None:
    request = build_update_endpoint("fraud-ep", "fraud-ep-v6", ALARMS, linear_pct=10, wait_s=10)
    plan = Plan.from_request(request)
    assert plan == PLAN
    assert Plan.from_request(build_update_endpoint("fraud-ep", "v6", ALARMS, linear_pct=30, wait_s=5)).steps == (30, 60, 90, 100)
    assert Plan.from_request(request, bake_s=2.5).bake_s == 2.5
    with pytest.raises(ValueError, match="LINEAR"):
        Plan.from_request(build_update_endpoint("fraud-ep", "v6", ALARMS, canary_pct=10, wait_s=5))


@pytest.mark.parametrize(("step", "started", "now", "states", "expected"), [
    (0, 0.0, 5.0, {}, Action(Kind.BAKE, 10)),
    (0, 0.0, 10.0, {n: "OK" for n in ALARMS}, Action(Kind.SHIFT, 20)),
    (9, 90.0, 99.9, {}, Action(Kind.BAKE, 100)),
    (9, 90.0, 100.0, {}, Action(Kind.PROMOTE, 100)),
    (2, 20.0, 21.0, {ALARMS[1]: "ALARM", ALARMS[0]: "OK"}, Action(Kind.ROLLBACK, 0, (ALARMS[1],))),
    # INSUFFICIENT_DATA does not roll back: only ALARM does
    (2, 20.0, 30.0, {ALARMS[0]: "INSUFFICIENT_DATA"}, Action(Kind.SHIFT, 40)),
    # an alarm outside the plan is not SageMaker's business
    (2, 20.0, 30.0, {"someone-else": "ALARM"}, Action(Kind.SHIFT, 40)),
])
def test_decide(step: int, started: float, now: float, states: Mapping[str, str], expected: Action) -> None:
    assert decide(PLAN, step, started, now, states) == expected


class FakeTime:
    def __init__(self) -> None:
        self.now = 1000.0

    def clock(self) -> float:
        return self.now

    def wait(self, seconds: float) -> bool:
        self.now += seconds
        return False


def _shift(time: FakeTime, alarm_at: float | None = None, stop_at: float | None = None):
    shifts: list[tuple[float, int]] = []
    said: list[str] = []

    def states(names: Sequence[str]) -> dict[str, tuple[str, str]]:
        firing = alarm_at is not None and time.now >= alarm_at
        return {n: ("ALARM" if firing and n == ALARMS[1] else "OK", "Threshold Crossed: 2.0") for n in names}

    def wait(seconds: float) -> bool:
        time.wait(seconds)
        return stop_at is not None and time.now >= stop_at

    driver = LinearShift(PLAN, shift=lambda pct: shifts.append((time.now, pct)), states=states, say=said.append,
                         clock=time.clock, wait=wait)
    return driver.run(), shifts, said


def test_every_bake_passing_promotes_after_ten_bakes() -> None:
    time = FakeTime()
    outcome, shifts, said = _shift(time)
    assert outcome.promoted and outcome.pct == 100 and outcome.alarms == ()
    assert [pct for _, pct in shifts] == list(range(10, 101, 10))
    assert [t - 1000.0 for t, _ in shifts] == [10.0 * i for i in range(10)]  # one bake per step
    assert time.now - 1000.0 == 100.0  # the last bake too
    assert "promoted" in said[-1]


def test_an_alarm_rolls_back_from_the_step_it_fires_in() -> None:
    time = FakeTime()
    outcome, shifts, said = _shift(time, alarm_at=1035.0)
    assert not outcome.promoted and outcome.pct == 40 and outcome.alarms == (ALARMS[1],)
    assert outcome.reasons == ("Threshold Crossed: 2.0",) and outcome.at == 1035.0
    assert shifts[-1] == (1035.0, 0)  # all traffic back to the old fleet at once
    assert [pct for _, pct in shifts] == [10, 20, 30, 40, 0]
    assert "rolls the deploy back" in said[-1] and ALARMS[1] in said[-1]


def test_stopping_ends_the_deploy_where_it_is() -> None:
    outcome, shifts, _ = _shift(FakeTime(), stop_at=1025.0)
    assert outcome.stopped and not outcome.promoted and outcome.pct == 30
    assert shifts[-1][1] == 30


def test_a_plan_must_reach_all_traffic_and_watch_an_alarm() -> None:
    with pytest.raises(ValueError, match="rise to 100"):
        Plan("e", "c", (10, 20), 1.0, ALARMS)
    with pytest.raises(ValueError, match="alarm"):
        Plan("e", "c", (50, 100), 1.0, ())
