"""``rollguard alarms plan|apply|show|simulate``: keep CloudWatch alarms in line with a spec file.

Exit codes:

- ``plan``: 0 = CloudWatch already matches the spec, 1 = apply would make changes, 2 = error
  (bad spec, a conflict with an alarm the spec does not own, AWS error). Like ``terraform
  plan -detailed-exitcode``, so CI can fail on drift. Warnings on stderr (an alarm whose series
  CloudWatch never received, see `alarms.published`) never change the exit code.
- ``apply``: 0 = CloudWatch now matches the spec (whether or not anything changed), 2 = error:
  nothing changed (every request is checked before the first call), or a call failed mid-way,
  and stdout/stderr list which alarms were applied and which were not.
- ``show``: prints the PutMetricAlarm requests as JSON without calling AWS; 0, or 2 on error.
- ``simulate``: whatever ``alarms.simulate:main`` returns.

The namespace, region and endpoint come from the settings the caller passes in
(``service.commands.alarms`` for the ``rollguard`` command), never from the environment directly.
"""
from __future__ import annotations

import argparse
import importlib
import json
import sys
from collections.abc import Callable, Sequence
from typing import Any, TextIO

from alarms import aws_clients, command, published
from alarms.aws_clients import AwsSettings
from alarms.spec import expand, spec_warnings, to_put_metric_alarm
from alarms.sync import AlarmClient, Change, PartialApplyError, SyncError, apply, desired_requests, plan


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
    settings: Callable[[], AwsSettings],
    client_factory: Callable[[AwsSettings], AlarmClient] = aws_clients.cloudwatch,
    out: TextIO | None = None,
    err: TextIO | None = None,
) -> int:
    """Run ``rollguard alarms ...``; returns the exit code (see the module docstring).

    ``settings`` is called only by the subcommands that need the namespace or AWS.
    """
    args_list = list(sys.argv[1:] if argv is None else argv)
    out = out or sys.stdout
    err = err or sys.stderr
    if args_list and args_list[0] == "simulate":
        # another module owns simulation; import it only when asked, so plan/apply never depend on it
        simulate = importlib.import_module("alarms.simulate")
        return int(simulate.main(args_list[1:]) or 0)
    parsed = command.parse_with_spec(_parser(), args_list, err)
    if isinstance(parsed, int):
        return parsed
    args, spec = parsed
    if args.command == "show":
        namespace = settings().namespace
        try:
            requests = list(desired_requests(spec, namespace).values())
        except ValueError as exc:
            print(f"rollguard alarms: {exc}", file=err)
            return 2
        print(json.dumps(requests, indent=2), file=out)
        return 0
    resolved = settings()
    try:
        client, namespace = client_factory(resolved), resolved.namespace
        if args.command == "plan":
            return _plan(spec, client, namespace, out, err)
        return _apply(spec, client, namespace, out, err)
    except SyncError as exc:
        print(f"rollguard alarms: {exc}", file=err)
        return 2
    except Exception as exc:  # boto3/botocore errors: one line, not a traceback
        print(f"rollguard alarms {args.command}: AWS call failed: {command.aws_failure(exc)}", file=err)
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
    for warning in spec_warnings(spec):
        print(f"rollguard alarms plan: warning: {warning}", file=err)
    _warn_unpublished(spec, changes, client, err)
    if any(c.action == "conflict" for c in changes):
        print("rollguard alarms plan: conflicts must be resolved by hand before apply", file=err)
        return 2
    return 1 if any(c.action in ("create", "update", "delete") for c in changes) else 0


def _warn_unpublished(spec: Any, changes: Sequence[Change], client: AlarmClient, err: TextIO) -> None:
    """A warning per alarm that reads only series CloudWatch never received; never changes the exit code."""
    requests = {c.alarm_name: c.request for c in changes if c.request is not None}
    try:
        found = published.never_published(expand(spec), requests, client)
    except Exception as exc:  # e.g. no cloudwatch:ListMetrics permission: the plan itself stands
        print(f"rollguard alarms plan: warning: cannot check which metrics were published: "
              f"{command.aws_failure(exc)}", file=err)
        return
    for unpublished in found:
        print(f"rollguard alarms plan: warning: {unpublished.describe()}", file=err)


def _apply(spec: Any, client: AlarmClient, namespace: str, out: TextIO, err: TextIO) -> int:
    past = {"create": "created", "update": "updated", "delete": "deleted"}
    try:
        done = apply(spec, client, namespace)
    except PartialApplyError as exc:
        for change in exc.applied:
            print(change.describe(past[change.action]), file=out)
        print(f"apply ({spec.name}): incomplete: {_summary(exc.applied, past)}; {len(exc.not_applied)} not applied",
              file=out)
        prefix = "rollguard alarms apply:"
        print(f"{prefix} {exc.what}: {command.aws_failure(exc.cause)}", file=err)
        print(f"{prefix} applied ({len(exc.applied)}): {', '.join(c.alarm_name for c in exc.applied) or '-'}", file=err)
        print(f"{prefix} not applied ({len(exc.not_applied)}): "
              f"{', '.join(f'{c.action} {c.alarm_name}' for c in exc.not_applied)}", file=err)
        print(f"{prefix} fix the cause and run apply again: it applies only what is still missing", file=err)
        return 2
    for change in done:
        print(change.describe(past[change.action]), file=out)
    print(f"apply ({spec.name}): {_summary(done, past)}", file=out)
    return 0
