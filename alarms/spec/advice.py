"""What in a valid spec is probably a mistake: warnings the commands print, never refusals."""
from __future__ import annotations

from alarms.spec.expand import expand
from alarms.spec.guardrails import MAX_GUARDRAIL_ALARMS, guardrail_alarms, guardrail_verdicts
from alarms.spec.schema import SpecFile, latency_percentile
from pipelines import cloudwatch_rules

#: the period on which the publishing lag leaves no room: a tick is as long as the whole period
LAG_PERIOD_S = 60


def spec_warnings(spec: SpecFile) -> list[str]:
    """One line per warning, naming the alarm: M = N on 60 s periods of a fail-open alarm (the
    publishing lag), and a percentile guard below AWS's significance rule; naming the comparison:
    an endpoint missing from a non-empty ``endpoints`` (a typo leaves it out of the guardrail);
    and an endpoint with more guardrail alarms than SageMaker takes.

    A fail-safe alarm needs no room for the lag: a period without the heartbeat is missing, and
    CloudWatch skips it for the most recent periods with data (`alarms.spec.requests`).
    """
    out: list[str] = []
    for alarm in expand(spec):
        n, m = alarm.evaluation_periods, alarm.datapoints_to_alarm
        if m == n and alarm.period == LAG_PERIOD_S and not alarm.fail_safe:
            out.append(
                f"{alarm.name}: datapoints_to_alarm = evaluation_periods ({m} of {n}) on 60 s periods: rollguard "
                "publishes a period's counts up to a tick plus a few seconds after it ends, so the newest period "
                "is missing or incomplete when CloudWatch evaluates it and reads as a FILLed, non-breaching value: "
                "this fail-open alarm fires late or never; leave room for the late period (M < N, e.g. 3 of 5) "
                "or make it fail-safe"
            )
        pct = latency_percentile(alarm.metric) if alarm.kind == "latency" else None
        needed = None if pct is None else cloudwatch_rules.percentile_min_samples(float(pct))
        if needed is not None and 0 < alarm.min_samples < needed:
            out.append(
                f"{alarm.name}: min_samples {alarm.min_samples} is below the {needed:g} samples AWS needs for a "
                f"significant p{pct} (EvaluateLowSampleCountPercentile's rule); leave min_samples unset for that default"
            )
    listed = [ep.name for ep in spec.endpoints]
    for c in spec.comparisons:
        if listed and c.endpoint not in listed:
            out.append(
                f"comparison {c.name}: endpoint {c.endpoint} is not among the spec's endpoints ({', '.join(listed)}); "
                f"its verdict alarm goes into the guardrail of {c.endpoint} only: check the name"
            )
    for endpoint in dict.fromkeys([*listed, *(c.endpoint for c in spec.comparisons)]):
        alarms, verdicts = guardrail_alarms(spec, endpoint), guardrail_verdicts(spec, endpoint)
        if len(alarms) + len(verdicts) > MAX_GUARDRAIL_ALARMS:
            out.append(
                f"endpoint {endpoint}: {len(alarms)} guardrail alarms and {len(verdicts)} comparison verdicts, "
                f"but SageMaker's AutoRollbackConfiguration takes at most {MAX_GUARDRAIL_ALARMS}: `rollguard "
                "guardrail` refuses it; set guardrail: false on some alarms or comparisons"
            )
    return out
