"""`rollguard backtest`: replay stored captures and labels on a simulated clock, evaluate an
alarm spec with CloudWatch's rules and report each comparison's state changes (service.backtest
has the definitions, output shapes and exit codes)."""
from __future__ import annotations

import argparse
import json
import sys
from collections.abc import Callable, Sequence
from pathlib import Path
from typing import NoReturn, TextIO

from alarms import spec as alarm_spec
from alarms.evaluator import Alarm as EvaluatorAlarm
from alarms.evaluator import AlarmConfigError, parse_time
from service.backtest.evaluation import (AlarmResult, BadInterval, added_segment_attributes, added_segment_gauges,
                                         run_backtest)
from service.backtest.inputs import InputError, InputSource, default_inputs, read_lines
from service.backtest.report import PlotError, plot_alarm, plot_name, render_comparisons, render_replay, render_table
from service.commands import base
from service.commands.base import variant_version
from service.s3_import.records import VariantTags
from service.settings import Settings, SettingsError, load_settings

PROG = "rollguard backtest"


class UsageError(ValueError):
    """Bad command-line arguments: one line, exit code 2."""


class _Parser(argparse.ArgumentParser):
    def error(self, message: str) -> NoReturn:
        raise UsageError(message)


def _time(text: str) -> float:
    try:
        return parse_time(text)
    except ValueError as ex:
        raise argparse.ArgumentTypeError(str(ex)) from None


def _parser() -> _Parser:
    p = _Parser(
        prog=PROG,
        description="Replay stored captures and labels through rollguard's pipeline on a simulated clock and "
                    "evaluate an alarm spec with CloudWatch's rules: when would each alarm have fired, and "
                    "when would each comparison have changed state?",
    )
    p.add_argument("--captures", required=True, metavar="PATH",
                   help="JSON-lines file, directory, or s3://bucket/prefix/ of captures (rollguard or Data Capture)")
    p.add_argument("--labels", required=True, metavar="PATH",
                   help="JSON-lines file, directory, or s3://bucket/prefix/ of labels (rollguard or Model Monitor)")
    p.add_argument("--spec", required=True, type=Path, metavar="F", help="alarm spec file (.yaml, .yml, .toml)")
    p.add_argument("--from", dest="start", type=_time, metavar="T",
                   help="evaluate from T (ISO 8601 or epoch seconds; default: the first event)")
    p.add_argument("--to", dest="end", type=_time, metavar="T",
                   help="evaluate up to T (default: the last event plus each alarm's evaluation window)")
    p.add_argument("--bad-from", type=_time, metavar="T", help="the history is bad from T (e.g. a known regression)")
    p.add_argument("--bad-to", type=_time, metavar="T", help="... up to T (default: to the end)")
    p.add_argument("--json", action="store_true",
                   help="print JSON: a list with one object per alarm; with comparisons in the spec, "
                        '{"alarms": [...], "comparisons": [...]}')
    p.add_argument("--plot", type=Path, metavar="DIR", help="write one PNG per alarm into DIR")
    p.add_argument("--namespace", help="CloudWatch namespace (default: ROLLGUARD_NAMESPACE)")
    p.add_argument("--model-version", action="append", default=[], type=variant_version, metavar="VARIANT=VERSION",
                   help="model version of a Data Capture variant (the key layout cannot tell); repeatable")
    p.add_argument("--shadow-variant", action="append", default=[], metavar="VARIANT",
                   help="mark Data Capture captures of this variant as shadow; repeatable")
    p.add_argument("--fail-on-false-alarm", action="store_true",
                   help="exit 1 when any alarm entered ALARM outside the bad interval")
    p.add_argument("--publish-lag", type=float, metavar="S",
                   help="seconds from the tick that drains a datum until CloudWatch has it "
                        "(default: ROLLGUARD_TICK_SECONDS + 10; 0 ignores the lag)")
    return p


def _parse_args(argv: Sequence[str]) -> argparse.Namespace:
    args = _parser().parse_args(list(argv))
    if args.bad_to is not None and args.bad_from is None:
        raise UsageError("--bad-to needs --bad-from")
    if args.bad_from is not None and args.bad_to is not None and args.bad_to < args.bad_from:
        raise UsageError("--bad-to must not be before --bad-from")
    if args.start is not None and args.end is not None and args.end < args.start:
        raise UsageError("--to must not be before --from")
    if args.publish_lag is not None and not args.publish_lag >= 0:
        raise UsageError("--publish-lag must be a number of seconds >= 0")
    return args


def main(
    argv: Sequence[str] | None = None, *, settings: Settings | None = None, inputs: InputSource | None = None,
    plotter: Callable[[AlarmResult, Path], None] = plot_alarm, stdout: TextIO | None = None,
    stderr: TextIO | None = None,
) -> int:
    """Run the backtest; returns the exit code (module doc). ``inputs`` defaults to :func:`default_inputs`."""
    out = stdout or sys.stdout
    err = stderr or sys.stderr

    def fail(message: str) -> int:
        return base.fail(PROG, message, err=err)

    try:
        args = _parse_args(sys.argv[1:] if argv is None else argv)
    except UsageError as ex:
        print(_parser().format_usage().rstrip(), file=err)
        return fail(str(ex))
    try:
        settings = settings or load_settings()
    except SettingsError as ex:
        return fail(str(ex))
    namespace = args.namespace or settings.namespace
    try:
        spec = alarm_spec.load_spec(args.spec)
        alarms = alarm_spec.expand(spec)
        for alarm in alarms:  # refuse the spec before reading any input
            EvaluatorAlarm.from_request(alarm_spec.to_put_metric_alarm(alarm, namespace))
        comparisons = alarm_spec.comparisons(spec)
    except (alarm_spec.SpecError, alarm_spec.AlarmLimitError, AlarmConfigError, ValueError) as ex:
        return fail(str(ex).splitlines()[0] if str(ex) else type(ex).__name__)

    for warning in alarm_spec.spec_warnings(spec):
        print(f"{PROG}: warning: {warning}", file=err)
    added = added_segment_attributes(settings, alarms, comparisons)
    if added:
        print(f"{PROG}: note: segment attribute(s) {', '.join(added)} added for this replay; the daemon needs "
              f"them in ROLLGUARD_SEGMENT_ATTRIBUTES to publish what these alarms read and to judge these "
              "comparisons' segments", file=err)
    if added_segment_gauges(settings, alarms):
        print(f"{PROG}: note: segment gauges kept for this replay; the daemon needs ROLLGUARD_SEGMENT_GAUGES=true "
              "to publish the segment gauges these alarms read", file=err)
    tags = VariantTags(frozenset(args.shadow_variant), dict(args.model_version))
    source = inputs or default_inputs(settings)
    try:
        lines = read_lines(source, args.captures, "capture", tags) + read_lines(source, args.labels, "label", tags)
    except InputError as ex:
        return fail(str(ex))
    bad = None if args.bad_from is None else BadInterval(args.bad_from, args.bad_to)
    try:
        done = run_backtest(alarms, lines, settings, namespace=namespace, start=args.start, end=args.end, bad=bad,
                            publish_lag_s=args.publish_lag, comparisons=comparisons)
    except ValueError as ex:
        return fail(str(ex))
    print(render_replay(done.replay, settings.tick_seconds), file=err if args.json else out)
    results = done.results
    if results or not comparisons:
        lag = results[0].publish_lag_s if results else 0.0
        print(f"publishing lag: each datum reaches CloudWatch {lag:g} s after the tick that drains it "
              "(--publish-lag); an evaluation sees only what has arrived", file=err if args.json else out)

    if args.json:
        alarm_reports = [r.to_json() for r in results]
        # without comparisons the output stays the list it has always been
        doc: object = alarm_reports
        if comparisons:
            doc = {"alarms": alarm_reports, "comparisons": [c.to_json() for c in done.comparisons]}
        json.dump(doc, out, indent=2)
        out.write("\n")
    else:
        if results or not comparisons:
            print("", file=out)
            print(render_table(results), file=out)
        if comparisons:
            print("", file=out)
            print(render_comparisons(done.comparisons), file=out)
    if args.plot is not None:
        try:
            for r in results:
                plotter(r, args.plot / plot_name(r.alarm))
        except (PlotError, OSError) as ex:
            return fail(f"--plot {args.plot}: {ex}")
        print(f"{PROG}: wrote {len(results)} plot(s) to {args.plot}", file=err)
    if args.fail_on_false_alarm and any(r.outcome.false_alarms for r in results):
        return 1
    return 0
