"""``rollguard alarms plan|apply|show|simulate``: keep CloudWatch alarms in line with a spec file.

Exit codes:

- ``plan``: 0 = CloudWatch already matches the spec, 1 = apply would make changes, 2 = error
  (bad spec, a conflict with an alarm the spec does not own, AWS error). Like ``terraform
  plan -detailed-exitcode``, so CI can fail on drift.
- ``apply``: 0 = CloudWatch now matches the spec (whether or not anything changed), 2 = error.
- ``show``: prints the PutMetricAlarm requests as JSON without calling AWS; 0, or 2 on error.
- ``simulate``: whatever ``alarms.simulate:main`` returns.
"""
from __future__ import annotations

import argparse
import importlib
import json
import os
import sys
from collections.abc import Callable, Sequence
from typing import Any, TextIO

from alarms.spec import SpecError, expand, load_spec, to_put_metric_alarm
from alarms.sync import AlarmClient, Change, SyncError, apply, plan

DEFAULT_NAMESPACE = "Rollguard"
_HINTS = {
    "NoRegionError": " (set AWS_REGION)",
    "NoCredentialsError": " (set AWS credentials, e.g. AWS_ACCESS_KEY_ID / AWS_SECRET_ACCESS_KEY or AWS_PROFILE)",
}


def aws_client(service: str) -> Any:
    """A boto3 client for ``service``: credentials from boto3's chain, region from ``AWS_REGION``
    (else boto3's chain), endpoint from ``ROLLGUARD_AWS_ENDPOINT_URL`` when set (a local AWS API).
    One place, so it can move to the settings object."""
    import boto3  # imported here so `rollguard alarms show` and --help work without AWS set up

    return boto3.client(
        service,
        # botocore itself reads only AWS_DEFAULT_REGION; the other SDKs (and our SPEC) honour AWS_REGION first
        region_name=os.environ.get("AWS_REGION") or None,
        endpoint_url=os.environ.get("ROLLGUARD_AWS_ENDPOINT_URL") or None,
    )


def cloudwatch_from_env() -> tuple[Any, str]:
    """The CloudWatch client and the metric namespace (``ROLLGUARD_NAMESPACE``, default Rollguard)."""
    return aws_client("cloudwatch"), os.environ.get("ROLLGUARD_NAMESPACE") or DEFAULT_NAMESPACE


def _parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(prog="rollguard alarms", description="CloudWatch alarms from a spec file")
    sub = parser.add_subparsers(dest="command", required=True, metavar="{plan,apply,show,simulate}")
    for name, help_ in (
        ("plan", "show what apply would create, update and delete (exit 1 when anything)"),
        ("apply", "create/update the spec's alarms and delete the ones it owns that left it"),
        ("show", "print the PutMetricAlarm requests as JSON (no AWS calls)"),
    ):
        p = sub.add_parser(name, help=help_)
        p.add_argument("--spec", required=True, help="alarm spec file (.yaml, .yml or .toml)")
    sub.add_parser("simulate", help="simulate alarms (see `rollguard alarms simulate --help`)", add_help=False)
    return parser


def main(
    argv: Sequence[str] | None = None,
    *,
    client_factory: Callable[[], tuple[AlarmClient, str]] = cloudwatch_from_env,
    out: TextIO | None = None,
    err: TextIO | None = None,
) -> int:
    """Run ``rollguard alarms ...``; returns the exit code (see the module docstring)."""
    args_list = list(sys.argv[1:] if argv is None else argv)
    out = out or sys.stdout
    err = err or sys.stderr
    if args_list and args_list[0] == "simulate":
        # another module owns simulation; import it only when asked, so plan/apply never depend on it
        simulate = importlib.import_module("alarms.simulate")
        return int(simulate.main(args_list[1:]) or 0)
    try:
        args = _parser().parse_args(args_list)
    except SystemExit as exc:  # argparse already printed the usage
        return 0 if exc.code in (0, None) else 2
    try:
        spec = load_spec(args.spec)
    except SpecError as exc:
        print(str(exc), file=err)
        return 2
    if args.command == "show":
        try:
            namespace = os.environ.get("ROLLGUARD_NAMESPACE") or DEFAULT_NAMESPACE
            requests = [to_put_metric_alarm(a, namespace) for a in expand(spec)]
        except ValueError as exc:
            print(f"rollguard alarms: {exc}", file=err)
            return 2
        print(json.dumps(requests, indent=2), file=out)
        return 0
    try:
        client, namespace = client_factory()
        if args.command == "plan":
            return _plan(spec, client, namespace, out, err)
        return _apply(spec, client, namespace, out, err)
    except SyncError as exc:
        print(f"rollguard alarms: {exc}", file=err)
        return 2
    except Exception as exc:  # boto3/botocore errors: one line, not a traceback
        hint = _HINTS.get(type(exc).__name__, "")
        print(f"rollguard alarms {args.command}: AWS call failed: {type(exc).__name__}: {exc}{hint}", file=err)
        return 2


def _summary(changes: Sequence[Change], verbs: dict[str, str]) -> str:
    counts = {a: sum(1 for c in changes if c.action == a) for a in verbs}
    return ", ".join(f"{counts[a]} {verb}" for a, verb in verbs.items() if counts[a] or a != "conflict")


def _plan(spec: Any, client: AlarmClient, namespace: str, out: TextIO, err: TextIO) -> int:
    changes = plan(spec, client, namespace)
    for change in changes:
        print(change.describe(), file=out)
    verbs = {"create": "to create", "update": "to update", "delete": "to delete", "unchanged": "unchanged", "conflict": "in conflict"}
    print(f"plan ({spec.name}): {_summary(changes, verbs)}", file=out)
    if any(c.action == "conflict" for c in changes):
        print("rollguard alarms plan: conflicts must be resolved by hand before apply", file=err)
        return 2
    return 1 if any(c.action in ("create", "update", "delete") for c in changes) else 0


def _apply(spec: Any, client: AlarmClient, namespace: str, out: TextIO, err: TextIO) -> int:
    done = apply(spec, client, namespace)
    past = {"create": "created", "update": "updated", "delete": "deleted"}
    for change in done:
        print(change.describe(past[change.action]), file=out)
    print(f"apply ({spec.name}): {_summary(done, {'create': 'created', 'update': 'updated', 'delete': 'deleted'})}", file=out)
    return 0
