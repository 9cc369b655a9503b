"""SageMaker's part in the demo: a blue/green deploy with linear traffic shifting, played from
the UpdateEndpoint request `rollguard guardrail` builds (alarms.guardrail).

Like SageMaker: shift the next step of traffic to the new fleet, bake ``WaitIntervalInSeconds``,
and watch the ``AutoRollbackConfiguration`` alarms (their states read with DescribeAlarms)
throughout; any alarm in ALARM rolls the whole deploy back (all traffic to the old fleet at
once), and a deploy whose every bake passed is promoted. `decide` is the pure rule;
`LinearShift` runs it against a clock.
"""
from __future__ import annotations

import enum
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass
from typing import Any

ALARM = "ALARM"


@dataclass(frozen=True)
class Plan:
    """The deploy: traffic percent on the new fleet after each shift, the bake after each, the
    alarms that roll it back."""

    endpoint: str
    new_config: str
    steps: tuple[int, ...]
    bake_s: float
    alarms: tuple[str, ...]

    def __post_init__(self) -> None:
        if not self.steps or self.steps[-1] != 100 or list(self.steps) != sorted(set(self.steps)):
            raise ValueError(f"steps must rise to 100 %, got {self.steps}")
        if not self.alarms:
            raise ValueError("a guarded deploy needs at least one alarm")

    @classmethod
    def from_request(cls, request: Mapping[str, Any], bake_s: float | None = None) -> Plan:
        """The plan of an UpdateEndpoint request with a LINEAR BlueGreenUpdatePolicy; ``bake_s``
        overrides its WaitIntervalInSeconds (which counts whole seconds)."""
        config = request["DeploymentConfig"]
        routing = config["BlueGreenUpdatePolicy"]["TrafficRoutingConfiguration"]
        if routing["Type"] != "LINEAR":
            raise ValueError(f"the demo plays LINEAR traffic shifting, not {routing['Type']}")
        step = int(routing["LinearStepSize"]["Value"])
        steps = tuple(range(step, 100, step)) + (100,)
        alarms = tuple(a["AlarmName"] for a in config["AutoRollbackConfiguration"]["Alarms"])
        wait = float(routing["WaitIntervalInSeconds"]) if bake_s is None else bake_s
        return cls(request["EndpointName"], request["EndpointConfigName"], steps, wait, alarms)


class Kind(enum.Enum):
    BAKE = "bake"  # keep baking the current step
    SHIFT = "shift"  # the bake passed: shift the next step
    PROMOTE = "promote"  # the last bake passed
    ROLLBACK = "rollback"  # an alarm is in ALARM


@dataclass(frozen=True)
class Action:
    kind: Kind
    pct: int  # traffic percent on the new fleet after the action
    alarms: tuple[str, ...] = ()  # ROLLBACK: the alarms in ALARM


def decide(plan: Plan, step: int, step_started: float, now: float, states: Mapping[str, str]) -> Action:
    """What SageMaker does at ``now`` while step ``step`` (an index of ``plan.steps``), begun at
    ``step_started``, bakes and the alarms read ``states``."""
    firing = tuple(name for name in plan.alarms if states.get(name) == ALARM)
    if firing:
        return Action(Kind.ROLLBACK, 0, firing)
    if now - step_started < plan.bake_s:
        return Action(Kind.BAKE, plan.steps[step])
    if step + 1 == len(plan.steps):
        return Action(Kind.PROMOTE, 100)
    return Action(Kind.SHIFT, plan.steps[step + 1])


@dataclass(frozen=True)
class Outcome:
    promoted: bool
    pct: int  # the step reached (the one rolled back from, or 100)
    alarms: tuple[str, ...] = ()  # what rolled it back
    reasons: tuple[str, ...] = ()  # their CloudWatch state reasons
    at: float = 0.0
    stopped: bool = False  # interrupted (Ctrl-C) before an outcome


class LinearShift:
    """Runs a `Plan`: ``shift(pct)`` moves traffic, ``states(names)`` reads {name: (state, reason)}
    (DescribeAlarms), ``say`` explains each decision, ``wait(s)`` sleeps and returns True when
    the demo is stopping."""

    def __init__(self, plan: Plan, *, shift: Callable[[int], None],
                 states: Callable[[Sequence[str]], Mapping[str, tuple[str, str]]],
                 say: Callable[[str], None], clock: Callable[[], float], wait: Callable[[float], bool],
                 poll_s: float = 1.0) -> None:
        self.plan, self._shift, self._states, self._say = plan, shift, states, say
        self.clock, self._wait, self.poll_s = clock, wait, poll_s
        self.pct = 0

    def _move(self, pct: int) -> None:
        self._shift(pct)
        self.pct = pct

    def run(self) -> Outcome:
        plan = self.plan
        self._say(f"SageMaker shifts {plan.steps[0]} % of {plan.endpoint}'s traffic to {plan.new_config}; "
                  f"baking {plan.bake_s:g} s after each step while watching {len(plan.alarms)} alarms")
        step, started = 0, self.clock()
        self._move(plan.steps[0])
        while True:
            now = self.clock()
            read = self._states(plan.alarms)
            action = decide(plan, step, started, now, {name: state for name, (state, _) in read.items()})
            if action.kind is Kind.ROLLBACK:
                reached = self.pct
                self._move(0)
                reasons = tuple(read[name][1] for name in action.alarms)
                self._say(f"ALARM during the {reached} % bake: {', '.join(action.alarms)}; SageMaker rolls the "
                          f"deploy back, all traffic to the old fleet at once")
                return Outcome(False, reached, action.alarms, reasons, now)
            if action.kind is Kind.PROMOTE:
                self._say(f"every bake passed with no alarm in ALARM: {plan.new_config} promoted, 100 % of traffic")
                return Outcome(True, 100, at=now)
            if action.kind is Kind.SHIFT:
                self._say(f"the {plan.steps[step]} % bake passed (alarms OK); SageMaker shifts to {action.pct} %")
                step, started = step + 1, now
                self._move(action.pct)
                continue
            if self._wait(self.poll_s):
                return Outcome(False, self.pct, at=self.clock(), stopped=True)
