"""`rollguard watch --comparison NAME --rollback-config OLD [--apply]`: judge a comparison after
the deploy, every ``--interval`` seconds, and roll the endpoint back with UpdateEndpoint on FAIL.

The rollback request is exactly ``{"EndpointName": <the comparison's endpoint>,
"EndpointConfigName": OLD}``. Nothing else, on purpose: ``RetainAllVariantProperties``
defaults to false, so the old config's own variants, weights and instance counts come back
(true would keep the failing deploy's weights). Without ``DeploymentConfig`` SageMaker uses
its default, blue/green with all traffic shifted at once, which is what a rollback wants (a
canary or linear rollback would keep serving the worse model while it bakes), and attaches
no auto-rollback alarms to the rollback itself (the guardrail's Verdict alarm is in ALARM
and would roll the rollback back).

Before sending, DescribeEndpoint: an endpoint already on OLD (SageMaker's own auto-rollback
got there first, or an earlier watch) is left alone, and one still Updating (a deploy in
progress, where UpdateEndpoint is refused) is waited for, look after look (``--once``: exit 4).
Throttling and 5xx answers are retried by botocore (standard mode, ``ROLLBACK_RETRIES``).

Exit codes: 1 FAIL (rolled back with --apply; the request printed without), with ``--once``
also 0 PASS and 2 INCONCLUSIVE (gate's codes); 3 could not run (arguments, settings, spec,
unknown comparison, unreadable state location with --once); 4 FAIL but not rolled back
(UpdateEndpoint refused or failed after retries, or the endpoint busy with --once);
130 interrupted.
"""
from __future__ import annotations

import argparse
import json
import sys
import time
from collections.abc import Callable, Sequence
from datetime import datetime, timezone
from typing import Any, TextIO

from alarms import aws_clients, command
from alarms.spec.schema import SAGEMAKER_NAME_RE
from pipelines.comparison.config import Comparison
from pipelines.comparison.report import header, render, verdict_json
from pipelines.verdict import State
from service.checkpoint import CheckpointStore
from service.commands import base, gate
from service.settings import Settings

PROG = "rollguard watch"
NOT_ROLLED_BACK = 4
INTERRUPTED = 130
#: botocore retries for the rollback: standard mode retries throttling and 5xx with exponential
#: backoff (capped at 20 s); 8 attempts is about a minute of trying before giving up
ROLLBACK_RETRIES: dict[str, Any] = {"mode": "standard", "max_attempts": 8}
#: endpoint states in which SageMaker refuses UpdateEndpoint: wait for them to end
BUSY = frozenset({"Creating", "Updating", "SystemUpdating", "RollingBack", "Deleting"})
EXIT_HELP = ("exit codes: 1 FAIL (rolled back with --apply, else the request printed); with --once also "
             "0 PASS, 2 INCONCLUSIVE; 3 could not run (arguments, settings, spec, unknown comparison); "
             "4 FAIL but not rolled back (UpdateEndpoint refused or failed, or the endpoint busy with --once); "
             "130 interrupted")


def rollback_request(endpoint: str, endpoint_config: str) -> dict[str, Any]:
    """The UpdateEndpoint request back to ``endpoint_config`` (see the module docstring for why no more)."""
    return {"EndpointName": endpoint, "EndpointConfigName": endpoint_config}


def sagemaker_client(settings: Settings) -> Any:
    """The SageMaker client of ``settings`` (ROLLGUARD_AWS_ENDPOINT_URL, region), retrying harder."""
    return aws_clients.client_for("sagemaker", settings, retries=ROLLBACK_RETRIES)


def _config_name(text: str) -> str:
    if not SAGEMAKER_NAME_RE.match(text):
        raise argparse.ArgumentTypeError(
            f"--rollback-config must be an endpoint config name (1-63 letters, digits and hyphens), got {text!r}")
    return text


def _interval(text: str) -> float:
    try:
        value = float(text)
    except ValueError:
        value = float("nan")
    if not 0 < value <= 86_400:
        raise argparse.ArgumentTypeError(f"--interval must be seconds in (0, 86400], got {text!r}")
    return value


def parser() -> argparse.ArgumentParser:
    p = argparse.ArgumentParser(
        prog=PROG, epilog=EXIT_HELP,
        description="Judge a comparison after the deploy from every partition's counts in ROLLGUARD_STATE_DIR; "
                    "on FAIL print (or --apply) the UpdateEndpoint request back to the old endpoint config.")
    p.add_argument("--comparison", required=True, metavar="NAME", help="the comparison's name in the spec")
    p.add_argument("--rollback-config", required=True, type=_config_name, metavar="OLD",
                   help="the endpoint config to roll back to (the one before this deploy)")
    p.add_argument("--apply", action="store_true", help="send the UpdateEndpoint request on FAIL (default: print it)")
    p.add_argument("--spec", help="alarm spec file with the comparison (default: ROLLGUARD_SPEC)")
    p.add_argument("--interval", type=_interval, metavar="SECONDS",
                   help="seconds between looks (default: ROLLGUARD_TICK_SECONDS, 60)")
    p.add_argument("--once", action="store_true", help="judge once and exit with gate's codes (after rolling back on FAIL)")
    return p


def _stamp(now: float) -> str:
    return datetime.fromtimestamp(now, timezone.utc).strftime("%Y-%m-%dT%H:%M:%SZ")


class _Rollback:
    """Sends the rollback once the verdict is FAIL; ``None`` from `attempt` means wait and look again."""

    def __init__(self, settings: Settings, comparison: Comparison, old: str,
                 client: Callable[[Settings], Any], err: TextIO) -> None:
        self.settings, self.comparison, self.old, self.err = settings, comparison, old, err
        self._factory = client
        self._client: Any = None

    def _say(self, text: str) -> None:
        print(f"{PROG}: {text}", file=self.err, flush=True)

    def attempt(self, once: bool) -> int | None:
        endpoint, request = self.comparison.endpoint, rollback_request(self.comparison.endpoint, self.old)
        try:
            if self._client is None:
                self._client = self._factory(self.settings)
            sagemaker = self._client
        except Exception as ex:  # noqa: BLE001 - no region, no credentials: one line
            self._say(f"NOT rolled back: cannot build the SageMaker client: {command.aws_failure(ex)}")
            return NOT_ROLLED_BACK
        try:
            current = sagemaker.describe_endpoint(EndpointName=endpoint)
        except Exception as ex:  # noqa: BLE001 - a describe we may not be allowed must not stop the rollback
            self._say(f"DescribeEndpoint failed ({command.aws_failure(ex)}); sending UpdateEndpoint anyway")
            current = {}
        if current.get("EndpointConfigName") == self.old and current.get("EndpointStatus") not in BUSY:
            self._say(f"{endpoint} already serves endpoint config {self.old}; nothing sent")
            return 1
        status = current.get("EndpointStatus")
        if status in BUSY:
            text = (f"{endpoint} is {status} (a deploy in progress?): SageMaker refuses UpdateEndpoint until it "
                    "ends; its guardrail alarms (the fail-safe Verdict alarm) roll back an in-progress deploy")
            if once:
                self._say(f"NOT rolled back: {text}")
                return NOT_ROLLED_BACK
            self._say(f"waiting: {text}")
            return None
        try:
            response = sagemaker.update_endpoint(**request)
        except Exception as ex:  # noqa: BLE001 - botocore errors: one line, not a traceback
            self._say(f"NOT rolled back: UpdateEndpoint failed: {command.aws_failure(ex)}")
            return NOT_ROLLED_BACK
        self._say(f"rolling {endpoint} back to endpoint config {self.old} ({response.get('EndpointArn', endpoint)})")
        return 1


def main(argv: Sequence[str] | None = None, *, settings: Settings | None = None,
         comparisons: Callable[[str], Sequence[Comparison]] = gate.load_comparisons,
         store: Callable[[Settings], CheckpointStore] = gate.state_store,
         sagemaker: Callable[[Settings], Any] = sagemaker_client,
         clock: Callable[[], float] = time.time, sleep: Callable[[float], None] = time.sleep,
         out: TextIO | None = None, err: TextIO | None = None) -> int:
    """``settings``, ``comparisons`` (spec path -> its comparisons), ``store`` (settings -> the state
    location), ``sagemaker`` (settings -> a boto3 SageMaker client), ``clock`` and ``sleep`` are for tests."""
    out, err = out or sys.stdout, err or sys.stderr
    args = gate.parse(parser(), argv)
    if isinstance(args, int):
        return args
    resolved = gate.settings_or_usage(PROG, settings)
    if isinstance(resolved, int):
        return resolved
    spec = args.spec or resolved.spec
    if not spec:
        return base.fail(PROG, "name the spec with the comparison: --spec S or ROLLGUARD_SPEC", gate.USAGE, err=err)
    interval = args.interval if args.interval is not None else float(resolved.tick_seconds)
    try:
        comparison = gate.find_comparison(spec, args.comparison, comparisons)
        state = gate.open_state(store, resolved)
    except gate.CannotJudge as ex:
        return base.fail(PROG, str(ex), gate.USAGE, err=err)
    rollback = _Rollback(resolved, comparison, args.rollback_config, sagemaker, err)
    last_state: State | None = None
    last_problems: tuple[str, ...] = ()
    try:
        while True:
            try:
                result = gate.look(state, resolved, comparison)
            except gate.CannotJudge as ex:
                if args.once:
                    return base.fail(PROG, str(ex), gate.USAGE, err=err)
                base.fail(PROG, f"warning: {ex}; looking again in {interval:g} s", err=err)
                sleep(interval)
                continue
            if result.problems != last_problems:
                gate.warn(PROG, result.problems, err)
                last_problems = result.problems
            verdict = result.verdict
            if verdict.state is not last_state:
                print(f"{_stamp(clock())} {header(verdict_json(comparison, verdict))}", file=out, flush=True)
                last_state = verdict.state
            if verdict.state is State.FAIL:
                break
            if args.once:
                return gate.EXIT_CODES[verdict.state]
            sleep(interval)
        # FAIL is latched: the event "ever FAIL" is what the test controls (docs/deciding.md)
        out.write(render(comparison, verdict))
        print(json.dumps(rollback_request(comparison.endpoint, args.rollback_config), indent=2), file=out, flush=True)
        if not args.apply:
            print(f"{PROG}: FAIL: the UpdateEndpoint request above was not sent (add --apply to send it)",
                  file=err, flush=True)
            return 1
        while (code := rollback.attempt(args.once)) is None:
            sleep(interval)
        return code
    except KeyboardInterrupt:
        print(f"{PROG}: interrupted (last state {last_state.value if last_state else 'none'})", file=err, flush=True)
        return INTERRUPTED
