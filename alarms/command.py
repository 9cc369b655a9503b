"""What the alarms package's commands (`alarms`, `guardrail`, `dashboard`) share: argv to
arguments or an exit code, a spec loaded or its errors printed, and an AWS failure as one line.

Exit codes follow every `rollguard` command: 0 done, 1 the command ran and AWS refused or
failed, 2 it could not run as asked (usage, spec, limits).
"""
from __future__ import annotations

import argparse
import sys
from collections.abc import Sequence
from typing import TextIO

from alarms.spec import SpecError, SpecFile, load_spec

#: what to do about the errors boto3 raises before any call is made
HINTS = {
    "NoRegionError": " (set AWS_REGION)",
    "NoCredentialsError": " (set AWS credentials, e.g. AWS_ACCESS_KEY_ID / AWS_SECRET_ACCESS_KEY or AWS_PROFILE)",
}
MAX_DETAIL = 300


def parse_args(parser: argparse.ArgumentParser, argv: Sequence[str] | None) -> argparse.Namespace | int:
    """``argv`` (default ``sys.argv[1:]``) parsed, or the exit code once argparse has printed
    help (0) or a usage error (2)."""
    try:
        return parser.parse_args(list(sys.argv[1:] if argv is None else argv))
    except SystemExit as exc:
        return 0 if exc.code in (0, None) else 2


def usage_error(parser: argparse.ArgumentParser, message: str) -> int:
    """Print the usage and ``message`` as argparse does; returns 2."""
    try:
        parser.error(message)
    except SystemExit:
        pass
    return 2


def parse_with_spec(
    parser: argparse.ArgumentParser, argv: Sequence[str] | None, err: TextIO
) -> tuple[argparse.Namespace, SpecFile] | int:
    """:func:`parse_args`, then the spec of ``--spec`` loaded; or the exit code, 2 after printing
    the spec's problems (one per line) on ``err``."""
    args = parse_args(parser, argv)
    if isinstance(args, int):
        return args
    try:
        return args, load_spec(args.spec)
    except SpecError as exc:
        print(str(exc), file=err)
        return 2


def aws_failure(exc: BaseException) -> str:
    """``Type: message`` on one line (error bodies can be multi-line HTML from a local API),
    at most 300 characters of message, plus what to do when boto3 has no region or credentials."""
    detail = " ".join(str(exc).split())
    detail = detail if len(detail) <= MAX_DETAIL else detail[: MAX_DETAIL - 3] + "..."
    return f"{type(exc).__name__}: {detail}{HINTS.get(type(exc).__name__, '')}"
