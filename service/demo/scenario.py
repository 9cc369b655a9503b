"""What the demo plays: which V6, the compressed clock, the deploy's steps and bakes, and the
alarm spec (comparisons and guardrail alarms) the daemon and `alarms apply` read.

Everything the story's outcome depends on is here, as frozen values, so a test can read the
same numbers the demo prints.
"""
from __future__ import annotations

from dataclasses import dataclass, field, replace

from service.demo.behaviour import (
    CATEGORIES,
    REGRESSED_CATEGORY,
    V5,
    V6_GOOD,
    V6_REGRESSED,
    Behaviour,
    Population,
)
from service.demo.traffic import Fleet

GATE = "v6-shadow-vs-v5"  # the shadow phase's comparison: paired, judged by `gate`
SHIFT = "fraud-v6-vs-v5"  # the traffic shift's: V6's fleet against V5's, in the guardrail
NEW_CONFIG, OLD_CONFIG = "fraud-ep-v6", "fraud-ep-v5"


@dataclass(frozen=True)
class Timing:
    """The compressed clock and the deploy's pace, in real seconds."""

    hour_s: float  # one demo hour (label delays are in demo hours)
    shadow_days: float  # the longest shadow phase, in demo days (it ends when the gate decides)
    bake_s: float  # SageMaker's bake after each traffic step (the reference story: 300 s)
    step_pct: int = 10
    #: how often the alarms are evaluated: None is CloudWatch's own (60 s for 60 s periods)
    evaluation_every_s: int | None = None
    window_s: int = 30  # the daemon's gauge window (ROLLGUARD_WINDOW_SECONDS)
    tick_s: float = 1.0  # the daemon's publish interval

    @property
    def shadow_s(self) -> float:
        return self.shadow_days * 24 * self.hour_s


NORMAL = Timing(hour_s=1.0, shadow_days=7, bake_s=10.0)
#: for tests: labels twice as fast, 6 s bakes, alarms evaluated every 10 s (CloudWatch: every minute)
FAST = Timing(hour_s=0.5, shadow_days=7, bake_s=6.0, evaluation_every_s=10, window_s=20)


@dataclass(frozen=True)
class Tolerances:
    """How much worse than V5 is still acceptable (absolute), per comparison metric."""

    recall: float
    precision: float
    error_rate: float
    latency_over: float
    latency_threshold_ms: float = 40.0


#: wider than the reference story's 2 pp / 0.5 pp so that minutes of demo labels can decide
NORMAL_TOLERANCES = Tolerances(recall=0.05, precision=0.05, error_rate=0.01, latency_over=0.01)
FAST_TOLERANCES = Tolerances(recall=0.08, precision=0.08, error_rate=0.015, latency_over=0.015)
#: inferences per second: the fast mode needs its labels sooner
NORMAL_RATE, FAST_RATE = 400.0, 500.0
#: the static error-rate alarm beside the verdict alarm: set loose, as a page-worthy threshold is
ERROR_RATE_ALARM = 0.05


@dataclass(frozen=True)
class Scenario:
    good: bool = False  # a clean V6 (else V6 regresses on REGRESSED_CATEGORY)
    regress_after_shift: str | None = None  # "errors" / "latency" injected at `regress_at_pct`
    fast: bool = False
    rate: float = NORMAL_RATE  # inferences per second
    regress_at_pct: int = 30
    seed: int = 20261122
    fleet: Fleet = Fleet()
    population: Population = Population()
    baseline: Behaviour = V5
    timing: Timing = field(default=NORMAL)
    tolerances: Tolerances = field(default=NORMAL_TOLERANCES)

    @classmethod
    def of(cls, *, good: bool = False, regress_after_shift: str | None = None, fast: bool = False,
           **overrides: object) -> Scenario:
        """The scenario for the command's flags (``--regress-after-shift`` implies a clean V6)."""
        timing, tolerances, rate = (FAST, FAST_TOLERANCES, FAST_RATE) if fast else (NORMAL, NORMAL_TOLERANCES, NORMAL_RATE)
        scenario = cls(good=good or regress_after_shift is not None, regress_after_shift=regress_after_shift,
                       fast=fast, timing=timing, tolerances=tolerances, rate=rate)
        return replace(scenario, **overrides)  # type: ignore[arg-type]

    @property
    def candidate(self) -> Behaviour:
        return V6_GOOD if self.good else V6_REGRESSED

    @property
    def steps(self) -> tuple[int, ...]:
        step = self.timing.step_pct
        return tuple(range(step, 100, step)) + (100,)

    @property
    def title(self) -> str:
        if self.regress_after_shift:
            return f"a clean V6 passes the gate, then regresses ({self.regress_after_shift}) at {self.regress_at_pct} % of the shift"
        if self.good:
            return "a clean V6: shadow phase, gate, linear shift"
        return f"V6 with a V4-style regression in merchant category {REGRESSED_CATEGORY}: shadow phase and gate"


def segment_values() -> str:
    """ROLLGUARD_SEGMENT_VALUES for the demo's categories."""
    return "merchant_category=" + "|".join(c.code for c in CATEGORIES)


def _metrics(t: Tolerances, indent: str) -> str:
    return (f"{indent}recall: {{tolerance: {t.recall}}}\n"
            f"{indent}precision: {{tolerance: {t.precision}}}\n"
            f"{indent}error_rate: {{tolerance: {t.error_rate}}}\n"
            f"{indent}latency_over: {{threshold_ms: {t.latency_threshold_ms:g}, tolerance: {t.latency_over}}}\n")


def spec_yaml(scenario: Scenario) -> str:
    """The demo's alarm spec: the two comparisons of the reference story and one static guardrail
    alarm, one period each (the demo's deploy bakes seconds, not minutes)."""
    f, t = scenario.fleet, scenario.tolerances
    v5, v6 = scenario.baseline.version, scenario.candidate.version
    metrics = _metrics(t, "      ")
    return f"""\
# rollguard demo spec (written by `rollguard demo`): the reference story's comparisons with demo
# tolerances, and a static error-rate alarm on the new fleet. Both guardrail alarms are fail-safe.
version: 1
name: demo
defaults:
  period: 60
  evaluation_periods: 1
  datapoints_to_alarm: 1
endpoints:
  - name: {f.endpoint}
    variant: {f.variant}
    model_version: {v6}
    alarms:
      - name: error-rate
        metric: error_rate
        threshold: {ERROR_RATE_ALARM}
        comparison: ">"
        scope: model_version
        min_samples: 100
comparisons:
  - name: {GATE}
    endpoint: {f.endpoint}
    baseline: {{variant: {f.variant}, model_version: {v5}}}
    candidate: {{variant: {f.shadow_variant}}}
    metrics:
{metrics}    segments: [merchant_category]
    min_samples: 30
    alpha: 0.01
    guardrail: false
  - name: {SHIFT}
    endpoint: {f.endpoint}
    baseline: {{model_version: {v5}}}
    candidate: {{model_version: {v6}}}
    metrics:
{metrics}    segments: [merchant_category]
    min_samples: 30
    alpha: 0.01
"""
