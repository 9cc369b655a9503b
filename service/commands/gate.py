"""`rollguard gate --spec S --comparison NAME [--json]`: the pre-deploy check after a shadow phase.

Reads every partition's comparison counts from the state location (``ROLLGUARD_STATE_DIR``, a
directory or ``s3://bucket/prefix``: service/verdicts.py), judges the comparison once and
exits with its state, so a deploy pipeline can gate on it. It needs no running daemon, only
the objects the daemons write.

Exit codes: 0 PASS, 1 FAIL, 2 INCONCLUSIVE (also: no counts yet), 3 could not judge (bad
arguments or settings, unreadable spec, unknown comparison, unreadable state location). 3
rather than argparse's 2, which would read as INCONCLUSIVE.
"""
from __future__ import annotations

import argparse
import json
import sys
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any, TextIO

from alarms import command
from alarms import spec as alarm_spec
from pipelines.comparison.config import Comparison
from pipelines.comparison.report import render, verdict_json
from pipelines.verdict import State, Verdict
from service import aws, checkpoint, verdicts
from service.checkpoint import CheckpointStore
from service.commands import base
from service.settings import Settings

PROG = "rollguard gate"
EXIT_CODES: dict[State, int] = {State.PASS: 0, State.FAIL: 1, State.INCONCLUSIVE: 2}
USAGE = 3  # could not judge: argparse's own 2 would read as INCONCLUSIVE
EXIT_HELP = ("exit codes: 0 PASS, 1 FAIL, 2 INCONCLUSIVE (including: no counts yet), "
             "3 could not judge (arguments, settings, spec, unknown comparison, unreadable state location)")


class CannotJudge(Exception):
    """One line saying why a comparison could not be judged (exit code 3)."""


def load_comparisons(path: str) -> tuple[Comparison, ...]:
    """The spec's comparisons; raises alarms.spec.SpecError."""
    return tuple(alarm_spec.comparisons(alarm_spec.load_spec(path)))


def find_comparison(path: str, name: str,
                    load: Callable[[str], Sequence[Comparison]] = load_comparisons) -> Comparison:
    """The comparison ``name`` of spec ``path``; CannotJudge naming the spec's problem or its comparisons."""
    try:
        comparisons = load(path)
    except alarm_spec.SpecError as ex:
        lines = [line for line in str(ex).splitlines() if line.strip()] or [f"{path}: unusable spec"]
        more = f" (and {len(lines) - 1} more problems)" if len(lines) > 1 else ""
        raise CannotJudge(f"spec {lines[0]}{more}") from None
    for comparison in comparisons:
        if comparison.name == name:
            return comparison
    known = ", ".join(c.name for c in comparisons) or "none"
    raise CannotJudge(f"spec {path} has no comparison {name!r} (comparisons in it: {known})")


class _MissingDirectory:
    """A local state directory that does not exist: no counts, and nothing created by looking."""

    def load(self, name: str) -> bytes | None:
        return None

    def save(self, name: str, data: bytes) -> None:
        raise OSError("read-only: the state directory does not exist")

    def names(self, prefix: str) -> list[str]:
        return []


def state_store(settings: Settings) -> CheckpointStore:
    """The state location of ``settings``, read only (a missing local directory is not created)."""
    if not settings.state_dir.startswith("s3://") and not Path(settings.state_dir).is_dir():
        return _MissingDirectory()
    return checkpoint.open_store(settings.state_dir, lambda: aws.client("s3", settings))


@dataclass(frozen=True)
class Look:
    """One judgement of a comparison from every partition's counts."""

    comparison: Comparison
    evidence: verdicts.Evidence
    verdict: Verdict
    problems: tuple[str, ...]  # stale or unreadable objects, no counts at all: warnings

    def to_json(self) -> dict[str, Any]:
        return {**verdict_json(self.comparison, self.verdict), "evidence": verdicts.plain(self.evidence),
                "problems": list(self.problems)}


def open_state(store: Callable[[Settings], CheckpointStore], settings: Settings) -> CheckpointStore:
    """``store(settings)``; CannotJudge, in one line, for a location that cannot be opened."""
    try:
        return store(settings)
    except Exception as ex:  # noqa: BLE001 - a bad s3:// location, no region or credentials
        raise CannotJudge(f"cannot open ROLLGUARD_STATE_DIR={settings.state_dir!r}: {command.aws_failure(ex)}") from None


def look(store: CheckpointStore, settings: Settings, comparison: Comparison) -> Look:
    """Gather the counts and judge; raises CannotJudge when the state location cannot be read."""
    group_prefix = verdicts.prefix(settings.group_id, settings.captures_topic, settings.labels_topic)
    try:
        evidence = verdicts.gather(store, group_prefix, [comparison])
    except Exception as ex:  # noqa: BLE001 - botocore, OSError: one line, not a traceback
        raise CannotJudge(f"cannot read comparison counts from {settings.state_dir}: {command.aws_failure(ex)}") from None
    problems = verdicts.describe_problems(evidence)
    if evidence.partitions == 0:
        problems.append(f"no comparison counts under {settings.state_dir} (objects {group_prefix}<N>{verdicts.SUFFIX}): "
                        "INCONCLUSIVE, no labels yet; is a daemon with this comparison in its spec running?")
    elif comparison.name not in evidence.tallies and comparison.name not in evidence.stale:
        problems.append(f"none of the {evidence.partitions} partition(s) counted comparison {comparison.name}: "
                        "is the daemon running with this spec?")
    return Look(comparison, evidence, evidence.verdict(comparison), tuple(problems))


def parser() -> argparse.ArgumentParser:
    p = argparse.ArgumentParser(
        prog=PROG, epilog=EXIT_HELP,
        description="Judge a comparison once from every partition's counts in ROLLGUARD_STATE_DIR "
                    "(the pre-deploy check after a shadow phase).")
    p.add_argument("--spec", required=True, help="alarm spec file with the comparison (its top-level comparisons:)")
    p.add_argument("--comparison", required=True, metavar="NAME", help="the comparison's name in the spec")
    p.add_argument("--json", action="store_true", help="print the verdict and the evidence's problems as JSON")
    return p


def parse(p: argparse.ArgumentParser, argv: Sequence[str] | None) -> argparse.Namespace | int:
    """The arguments, or 0 after --help, or USAGE after argparse's own usage error."""
    try:
        return p.parse_args(list(sys.argv[1:] if argv is None else argv))
    except SystemExit as ex:
        return 0 if ex.code in (0, None) else USAGE


def settings_or_usage(prog: str, settings: Settings | None) -> Settings | int:
    """``settings``, else loaded from the environment; USAGE after the one-line error."""
    if settings is not None:
        return settings
    try:
        return base.load_or_exit(prog)
    except SystemExit:
        return USAGE


def warn(prog: str, problems: Sequence[str], err: TextIO) -> None:
    for line in problems:
        print(f"{prog}: warning: {line}", file=err, flush=True)


def main(argv: Sequence[str] | None = None, *, settings: Settings | None = None,
         comparisons: Callable[[str], Sequence[Comparison]] = load_comparisons,
         store: Callable[[Settings], CheckpointStore] = state_store,
         out: TextIO | None = None, err: TextIO | None = None) -> int:
    """``settings`` (default: the environment), ``comparisons`` (spec path -> its comparisons) and
    ``store`` (settings -> the state location) are for tests."""
    out, err = out or sys.stdout, err or sys.stderr
    args = parse(parser(), argv)
    if isinstance(args, int):
        return args
    resolved = settings_or_usage(PROG, settings)
    if isinstance(resolved, int):
        return resolved
    try:
        comparison = find_comparison(args.spec, args.comparison, comparisons)
        result = look(open_state(store, resolved), resolved, comparison)
    except CannotJudge as ex:
        return base.fail(PROG, str(ex), USAGE, err=err)
    warn(PROG, result.problems, err)
    if args.json:
        print(json.dumps(result.to_json(), indent=2), file=out)
    else:
        out.write(render(comparison, result.verdict))
    return EXIT_CODES[result.verdict.state]
