"""``rollguard guardrail``: the SageMaker UpdateEndpoint request for a guarded blue/green deploy.

The request shifts traffic to the new endpoint config by canary (``--canary 10%``), linear
steps (``--linear 10%``) or all at once (neither), bakes ``--wait`` seconds after each shift,
and lists the spec's guardrail alarms of the endpoint in ``AutoRollbackConfiguration``, then the
verdict alarm of each of its comparisons with ``guardrail: true`` (one slot each): any of them
entering ALARM during a bake rolls the whole deploy back.

SageMaker's limits are checked here, with the limit named in the error, before any AWS call:
1-10 alarms; canary 1-50 % of the new fleet; linear step 10-50 %; wait and termination wait
0-3600 s; MaximumExecutionTimeoutInSeconds 600-28800 s and larger than all waits together
(one bake per traffic shift, then the termination wait: linear ceil(100 / step) x wait,
canary 2 x wait, the canary's bake and the final one after the full shift, all-at-once 1 x wait). Without ``--max-execution-timeout`` it is that total plus 1800 s for
provisioning the new fleet, kept within 600-28800 s.

Exit codes: 0 = printed (or sent), 2 = refused (bad arguments, spec or limits), 1 = AWS
refused or failed (including alarms missing in CloudWatch with ``--apply``).
"""
from __future__ import annotations

import argparse
import json
import math
import sys
from collections.abc import Callable, Sequence
from typing import Any, TextIO

from alarms import aws_clients, command
from alarms.aws_clients import AwsSettings
from alarms.spec import guardrail_alarms, guardrail_verdicts
from alarms.spec.guardrails import MAX_GUARDRAIL_ALARMS
from alarms.spec.schema import SAGEMAKER_NAME_RE
from pipelines import cloudwatch_rules

MAX_ALARMS = MAX_GUARDRAIL_ALARMS
MAX_CANARY_PCT = 50
LINEAR_STEP_PCT = (10, 50)
MAX_WAIT_S = 3600
MAX_TERMINATION_WAIT_S = 3600
EXECUTION_TIMEOUT_S = (600, 28_800)
PROVISIONING_HEADROOM_S = 1800  # green fleet instances must start before the first shift


class GuardrailError(ValueError):
    """A deployment SageMaker would refuse; the message names the limit."""


def total_wait_s(canary_pct: int | None, linear_pct: int | None, wait_s: int, termination_wait_s: int) -> int:
    """All the baking SageMaker does, plus the termination wait.

    One bake per traffic shift: linear has ceil(100 / step) shifts, canary two (the canary,
    then the rest of the traffic with its final bake), all-at-once one.
    """
    return shift_steps(canary_pct, linear_pct) * wait_s + termination_wait_s


def shift_steps(canary_pct: int | None, linear_pct: int | None) -> int:
    """How many traffic shifts (each followed by a bake) the deployment makes."""
    if linear_pct:
        return math.ceil(100 / linear_pct)
    return 2 if canary_pct is not None else 1


def build_update_endpoint(
    endpoint: str,
    endpoint_config: str,
    alarm_names: Sequence[str],
    canary_pct: int | None = None,
    linear_pct: int | None = None,
    wait_s: int = 300,
    termination_wait_s: int = 0,
    max_execution_timeout_s: int | None = None,
) -> dict[str, Any]:
    """The UpdateEndpoint request (BlueGreenUpdatePolicy + AutoRollbackConfiguration).

    At most one of ``canary_pct`` / ``linear_pct`` (percent of the new fleet's capacity);
    neither means ALL_AT_ONCE. Raises GuardrailError for anything SageMaker would refuse.
    """
    problems: list[str] = []
    for what, name in (("endpoint", endpoint), ("endpoint config", endpoint_config)):
        if not SAGEMAKER_NAME_RE.match(name):
            problems.append(f"{what} name must be 1-63 letters, digits and hyphens (SageMaker's pattern); got {name!r}")
    names = list(alarm_names)
    if not 1 <= len(names) <= MAX_ALARMS:
        problems.append(f"AutoRollbackConfiguration takes 1-{MAX_ALARMS} alarms; got {len(names)}")
    if len(set(names)) != len(names):
        problems.append("alarm names must be unique")
    for name in names:
        if not 1 <= len(name) <= cloudwatch_rules.MAX_ALARM_NAME or not name.strip():
            problems.append(
                f"alarm name must be 1-{cloudwatch_rules.MAX_ALARM_NAME} characters and not blank; got {name!r}"
            )
    if canary_pct is not None and linear_pct is not None:
        problems.append("choose canary or linear traffic shifting, not both")
    if canary_pct is not None and not 1 <= canary_pct <= MAX_CANARY_PCT:
        problems.append(f"canary size must be 1-{MAX_CANARY_PCT} % of the new fleet; got {canary_pct} %")
    lo, hi = LINEAR_STEP_PCT
    if linear_pct is not None and not lo <= linear_pct <= hi:
        problems.append(f"linear step size must be {lo}-{hi} % of the new fleet; got {linear_pct} %")
    if not 0 <= wait_s <= MAX_WAIT_S:
        problems.append(f"wait (WaitIntervalInSeconds) must be 0-{MAX_WAIT_S} s; got {wait_s}")
    if not 0 <= termination_wait_s <= MAX_TERMINATION_WAIT_S:
        problems.append(f"termination wait must be 0-{MAX_TERMINATION_WAIT_S} s; got {termination_wait_s}")
    if problems:
        raise GuardrailError("; ".join(problems))

    total = total_wait_s(canary_pct, linear_pct, wait_s, termination_wait_s)
    t_lo, t_hi = EXECUTION_TIMEOUT_S
    steps = shift_steps(canary_pct, linear_pct)
    how = f"{steps} bake{'s' if steps > 1 else ''} x {wait_s} s"
    explain = f"the waits add up to {total} s ({how} + {termination_wait_s} s termination wait)"
    if max_execution_timeout_s is None:
        if total >= t_hi:
            raise GuardrailError(
                f"{explain}, which does not fit SageMaker's {t_hi} s maximum execution timeout; "
                "use larger steps or a shorter wait"
            )
        max_execution_timeout_s = min(t_hi, max(t_lo, total + PROVISIONING_HEADROOM_S))
    elif not t_lo <= max_execution_timeout_s <= t_hi:
        raise GuardrailError(f"max execution timeout must be {t_lo}-{t_hi} s; got {max_execution_timeout_s}")
    elif max_execution_timeout_s <= total:
        raise GuardrailError(f"max execution timeout ({max_execution_timeout_s} s) must be larger than {explain}")

    routing: dict[str, Any]
    if canary_pct is not None:
        routing = {"Type": "CANARY", "CanarySize": {"Type": "CAPACITY_PERCENT", "Value": canary_pct}}
    elif linear_pct is not None:
        routing = {"Type": "LINEAR", "LinearStepSize": {"Type": "CAPACITY_PERCENT", "Value": linear_pct}}
    else:
        routing = {"Type": "ALL_AT_ONCE"}
    routing["WaitIntervalInSeconds"] = wait_s
    return {
        "EndpointName": endpoint,
        "EndpointConfigName": endpoint_config,
        "DeploymentConfig": {
            "BlueGreenUpdatePolicy": {
                "TrafficRoutingConfiguration": routing,
                "TerminationWaitInSeconds": termination_wait_s,
                "MaximumExecutionTimeoutInSeconds": max_execution_timeout_s,
            },
            "AutoRollbackConfiguration": {"Alarms": [{"AlarmName": n} for n in names]},
        },
    }


def parse_percent(text: str) -> int:
    """'10%' or '10' -> 10; whole percentages only (CapacitySize takes an integer)."""
    raw = text.strip().removesuffix("%").strip()
    if not raw.isdigit():
        raise argparse.ArgumentTypeError(f"expected a whole percentage like 10%; got {text!r}")
    return int(raw)


def _parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(
        prog="rollguard guardrail",
        description="print (or --apply) the UpdateEndpoint request of a guarded blue/green deploy",
    )
    parser.add_argument("--endpoint", required=True, help="SageMaker endpoint name")
    parser.add_argument("--endpoint-config", required=True, help="the new endpoint config")
    parser.add_argument("--spec", required=True, help="alarm spec; its guardrail alarms of --endpoint are used")
    shift = parser.add_mutually_exclusive_group()
    shift.add_argument("--canary", type=parse_percent, metavar="PCT", help="canary size, e.g. 10%% (max 50%%)")
    shift.add_argument("--linear", type=parse_percent, metavar="PCT", help="linear step size, 10%%-50%%")
    parser.add_argument("--wait", type=int, default=300, metavar="S", help="bake after each shift, 0-3600 s (default 300)")
    parser.add_argument("--termination-wait", type=int, default=0, metavar="S", help="0-3600 s before the old fleet goes (default 0)")
    parser.add_argument("--max-execution-timeout", type=int, metavar="S", help="600-28800 s (default: waits + 1800 s)")
    parser.add_argument("--apply", action="store_true", help="send the request to SageMaker")
    return parser


def sagemaker_and_cloudwatch(settings: AwsSettings) -> tuple[Any, Any]:
    """The SageMaker and CloudWatch clients of ``settings`` (region and endpoint)."""
    return aws_clients.client_for("sagemaker", settings), aws_clients.cloudwatch(settings)


def main(
    argv: Sequence[str] | None = None,
    *,
    settings: Callable[[], AwsSettings],
    clients: Callable[[AwsSettings], tuple[Any, Any]] = sagemaker_and_cloudwatch,
    out: TextIO | None = None,
    err: TextIO | None = None,
) -> int:
    """Run ``rollguard guardrail ...``; only --apply calls ``settings`` and ``clients`` (which
    returns (sagemaker, cloudwatch))."""
    out = out or sys.stdout
    err = err or sys.stderr
    parsed = command.parse_with_spec(_parser(), argv, err)
    if isinstance(parsed, int):
        return parsed
    args, spec = parsed
    alarms, verdicts = guardrail_alarms(spec, args.endpoint), guardrail_verdicts(spec, args.endpoint)
    names = [*alarms, *verdicts]
    if not names:
        endpoints = dict.fromkeys([*(e.name for e in spec.endpoints), *(c.endpoint for c in spec.comparisons)])
        print(
            f"rollguard guardrail: spec {args.spec} has no guardrail alarms or comparisons for endpoint "
            f"{args.endpoint} (endpoints in it: {', '.join(endpoints)})",
            file=err,
        )
        return 2
    if len(names) > MAX_ALARMS:
        print(
            f"rollguard guardrail: spec {args.spec} has {len(names)} guardrail alarms for endpoint {args.endpoint} "
            f"({len(alarms)} alarms, {len(verdicts)} comparison verdicts: {', '.join(names)}), but SageMaker's "
            f"AutoRollbackConfiguration takes at most {MAX_ALARMS}; set guardrail: false on the alarms or "
            "comparisons this deploy need not roll back on",
            file=err,
        )
        return 2
    try:
        request = build_update_endpoint(
            args.endpoint,
            args.endpoint_config,
            names,
            canary_pct=args.canary,
            linear_pct=args.linear,
            wait_s=args.wait,
            termination_wait_s=args.termination_wait,
            max_execution_timeout_s=args.max_execution_timeout,
        )
    except GuardrailError as exc:
        print(f"rollguard guardrail: {exc}", file=err)
        return 2
    resolved = settings() if args.apply else None  # a wrong setting stops --apply before any output
    print(json.dumps(request, indent=2), file=out)
    if resolved is None:
        return 0
    try:
        sagemaker, cloudwatch = clients(resolved)
        # SageMaker only learns of a missing alarm mid-deploy; better to refuse now
        pages = cloudwatch.get_paginator("describe_alarms").paginate(AlarmNames=names)
        found = {a["AlarmName"] for page in pages for a in page.get("MetricAlarms", [])}
        missing = sorted(set(names) - found)
        if missing:
            print(
                f"rollguard guardrail: alarms missing in CloudWatch: {', '.join(missing)}; "
                f"run `rollguard alarms apply --spec {args.spec}` first",
                file=err,
            )
            return 1
        response = sagemaker.update_endpoint(**request)
    except Exception as exc:  # botocore errors: one line, not a traceback
        print(f"rollguard guardrail: AWS call failed: {command.aws_failure(exc)}", file=err)
        return 1
    print(f"rollguard guardrail: deploying {args.endpoint_config} to {response.get('EndpointArn', args.endpoint)}", file=err)
    return 0
