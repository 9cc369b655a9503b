"""A spec's comparisons: as the pipeline's :class:`~pipelines.comparison.config.Comparison` values,
and one verdict alarm each on the ``Verdict`` metric (its request: `alarms.spec.requests`)."""
from __future__ import annotations

from dataclasses import dataclass

from alarms.spec.expand import NAME_PREFIX
from alarms.spec.schema import SpecFile
from pipelines import metrics
from pipelines.comparison.config import Comparison

#: a verdict alarm's period: the daemon publishes every comparison's verdict every tick (60 s)
VERDICT_PERIOD = 60
#: ALARM on the first FAIL period: the test is anytime-valid, so one look at FAIL is already at 1 - alpha
VERDICT_EVALUATION_PERIODS = 1
VERDICT_FAIL = metrics.VERDICT_VALUES["FAIL"]


@dataclass(frozen=True, slots=True)
class VerdictAlarm:
    """The CloudWatch alarm on one comparison's ``Verdict``: ALARM on FAIL, and fail-safe (ALARM
    while the verdict or the daemon's heartbeat is missing)."""

    spec_name: str
    comparison: Comparison
    guardrail: bool = True
    description: str | None = None
    alarm_actions: tuple[str, ...] = ()
    ok_actions: tuple[str, ...] = ()

    @property
    def endpoint(self) -> str:
        return self.comparison.endpoint

    @property
    def name(self) -> str:
        """``rollguard-{endpoint}-verdict-{comparison}``."""
        return verdict_alarm_name(self.comparison.endpoint, self.comparison.name)

    @property
    def period(self) -> int:
        return VERDICT_PERIOD

    @property
    def dimensions(self) -> tuple[tuple[str, str], ...]:
        """The dimensions of the ``Verdict`` metric it reads."""
        return ((metrics.ENDPOINT_NAME, self.comparison.endpoint), (metrics.COMPARISON, self.comparison.name))


def verdict_alarm_name(endpoint: str, comparison: str) -> str:
    return f"{NAME_PREFIX}{endpoint}-verdict-{comparison}"


def comparisons(spec: SpecFile) -> tuple[Comparison, ...]:
    """Every comparison of the spec, in spec order, as the pipeline counts and judges it."""
    return tuple(c.to_comparison() for c in spec.comparisons)


def verdict_alarms(spec: SpecFile) -> tuple[VerdictAlarm, ...]:
    """One verdict alarm per comparison of the spec, in spec order."""
    return tuple(
        VerdictAlarm(spec.name, c.to_comparison(), c.guardrail, c.description, c.alarm_actions, c.ok_actions)
        for c in spec.comparisons
    )
