"""``rollguard alarms simulate``: the state a CloudWatch alarm would be in at time T.

    rollguard alarms simulate --alarm ALARM.json --datapoints POINTS.json --at T
        [--initial-state OK|ALARM|INSUFFICIENT_DATA] [--evaluation-range R] [--publish-lag S] [--json]

ALARM.json is a PutMetricAlarm request as ``aws cloudwatch put-metric-alarm
--cli-input-json`` takes it. POINTS.json is a JSON object keyed by metric name
(single-metric alarm) or by MetricStat id (math alarm), each a list of
MetricDatum objects (``Timestamp`` plus ``Value``, ``Values``/``Counts`` or
``StatisticValues``). T is ISO 8601 or epoch seconds. ``EvaluationInterval``, as DescribeAlarms
reports it, sets how often the alarm is evaluated.

Publishing lag (`alarms.publish_lag`): the datapoints are what rollguard publishes, and a datum
reaches CloudWatch S seconds after the end of the minute it is stamped in (default 70: with the
default 60 s tick a minute's counts wait up to one tick for the next publish, plus 10 s to be sent
and stored). The evaluation at T sees only the datums arrived by then. ``--publish-lag 0``: data
already in CloudWatch.

Exit codes: 0 the state was computed, 2 bad arguments or input files (one
line on stderr naming the file and what is wrong).
"""
from __future__ import annotations

import argparse
import json
import sys
from collections.abc import Mapping, Sequence
from pathlib import Path
from typing import Any, NoReturn, TextIO

from alarms.evaluator import (
    Alarm,
    AlarmConfigError,
    Datum,
    DatumError,
    Evaluation,
    State,
    evaluate,
    format_time,
    parse_datapoints,
    parse_time,
)
from alarms.publish_lag import arriving, minute_end, publish_lag_s

PROG = "rollguard alarms simulate"
DEFAULT_TICK_S = 60.0  # ROLLGUARD_TICK_SECONDS's default


class UsageError(Exception):
    """Bad input: one line for the user, exit code 2."""


class _Parser(argparse.ArgumentParser):
    def error(self, message: str) -> NoReturn:
        raise UsageError(message)


def _parser() -> _Parser:
    parser = _Parser(prog=PROG, description="Evaluate a CloudWatch alarm definition against datapoints at a time.")
    parser.add_argument("--alarm", required=True, type=Path, help="PutMetricAlarm request JSON (--cli-input-json form)")
    parser.add_argument("--datapoints", required=True, type=Path, help="JSON object: metric name or id -> MetricDatum list")
    parser.add_argument("--at", required=True, help="evaluation time: ISO 8601 or epoch seconds")
    parser.add_argument(
        "--initial-state",
        default=State.INSUFFICIENT_DATA.value,
        choices=[s.value for s in State],
        help="the alarm's state before this evaluation (default: INSUFFICIENT_DATA, a new alarm)",
    )
    parser.add_argument(
        "--evaluation-range",
        type=int,
        default=None,
        help="periods CloudWatch looks back when data is missing (default: EvaluationPeriods + 2)",
    )
    parser.add_argument(
        "--publish-lag",
        type=float,
        default=publish_lag_s(DEFAULT_TICK_S),
        metavar="S",
        help="seconds after the end of its minute a datum reaches CloudWatch (default: %(default)g, rollguard's "
             "worst case with a 60 s tick; 0 for data already in CloudWatch)",
    )
    parser.add_argument("--json", action="store_true", help="print {state, reason, evaluated} as JSON")
    return parser


def _read_json(path: Path) -> Any:
    try:
        text = path.read_text(encoding="utf-8")
    except FileNotFoundError:
        raise UsageError(f"{path}: no such file") from None
    except (OSError, UnicodeDecodeError) as exc:
        raise UsageError(f"{path}: can't read it ({exc})") from None
    try:
        return json.loads(text)
    except json.JSONDecodeError as exc:
        raise UsageError(f"{path}: not valid JSON ({exc.msg} at line {exc.lineno} column {exc.colno})") from None


def load_alarm(path: Path) -> Alarm:
    """The alarm in ``path``; UsageError naming the file if CloudWatch would reject it."""
    raw = _read_json(path)
    if not isinstance(raw, Mapping):
        raise UsageError(f"{path}: expected a JSON object (a PutMetricAlarm request), got {type(raw).__name__}")
    try:
        return Alarm.from_request(raw)
    except AlarmConfigError as exc:
        raise UsageError(f"{path}: {exc}") from None


def load_datapoints(path: Path, alarm: Alarm) -> dict[str, tuple[Datum, ...]]:
    """The datapoints in ``path``, checked against what ``alarm`` reads; UsageError if wrong."""
    raw = _read_json(path)
    if not isinstance(raw, Mapping):
        raise UsageError(f"{path}: expected a JSON object keyed by metric name or id, got {type(raw).__name__}")
    expected = set(alarm.data_keys)
    unknown = sorted(set(raw) - expected)
    if unknown:
        what = "MetricStat ids" if alarm.is_math else "the metric name"
        raise UsageError(
            f"{path}: key(s) {', '.join(map(repr, unknown))} are not read by the alarm; expected {what}: "
            f"{', '.join(map(repr, alarm.data_keys))}"
        )
    try:
        data = parse_datapoints(raw)
    except DatumError as exc:
        raise UsageError(f"{path}: {exc}") from None
    _check_metric_names(path, raw, alarm)
    return data


def _check_metric_names(path: Path, raw: Mapping[str, Any], alarm: Alarm) -> None:
    """A datum that names another metric or other dimensions would not be read by this alarm."""
    for metric in alarm.metrics:
        for i, item in enumerate(raw.get(metric.key, [])):
            name = item.get("MetricName")
            if name is not None and name != metric.metric_name:
                raise UsageError(
                    f"{path}: {metric.key}[{i}].MetricName is {name!r} but the alarm reads {metric.metric_name!r}"
                )
            dims = item.get("Dimensions")
            if dims is not None and sorted((d["Name"], d["Value"]) for d in dims) != sorted(metric.dimensions):
                raise UsageError(
                    f"{path}: {metric.key}[{i}].Dimensions differ from the alarm's, so CloudWatch would treat "
                    "it as another metric"
                )


def render_text(evaluation: Evaluation, alarm: Alarm, publish_lag: float = 0.0) -> str:
    """The human form: state, reason, the publishing lag modelled, and the evaluation range newest first."""
    lines = [
        f"{alarm.name}: {evaluation.state.value} at {format_time(evaluation.at)}",
        evaluation.reason,
        f"(each datum taken to reach CloudWatch {publish_lag:g} s after the end of its minute: --publish-lag)",
        "",
        f"{'period start':<22}{'value':>16}  breaching  evaluated",
    ]
    for period in reversed(evaluation.evaluated):
        value = "-" if period.value is None else f"{period.value:.6g}"
        breaching = {True: "yes", False: "no", None: "-"}[period.breaching]
        used = "yes" if period.used else ("filled" if period.filled else "")
        lines.append(f"{format_time(period.start):<22}{value:>16}  {breaching:<9}  {used}")
    return "\n".join(lines)


def main(argv: Sequence[str] | None = None, stdout: TextIO | None = None, stderr: TextIO | None = None) -> int:
    """Run the command; returns the exit code (0 ok, 2 bad arguments or input)."""
    out = stdout if stdout is not None else sys.stdout
    err = stderr if stderr is not None else sys.stderr
    args_list = list(sys.argv[1:] if argv is None else argv)
    if "-h" in args_list or "--help" in args_list:
        _parser().print_help(out)
        return 0
    try:
        args = _parser().parse_args(args_list)
        try:
            at = parse_time(args.at)
        except ValueError as exc:
            raise UsageError(f"--at: {exc}") from None
        if not args.publish_lag >= 0:
            raise UsageError(f"--publish-lag: must be a number of seconds >= 0, got {args.publish_lag:g}")
        alarm = load_alarm(args.alarm)
        data = {
            key: tuple(arriving(d, minute_end(d), args.publish_lag) for d in items)
            for key, items in load_datapoints(args.datapoints, alarm).items()
        }
        try:
            evaluation = evaluate(alarm, data, at, State(args.initial_state), args.evaluation_range)
        except AlarmConfigError as exc:
            raise UsageError(f"--evaluation-range: {exc}") from None
    except UsageError as exc:
        print(f"{PROG}: {exc}", file=err)
        return 2
    if args.json:
        print(json.dumps(evaluation.to_json(), indent=2), file=out)
    else:
        print(render_text(evaluation, alarm, args.publish_lag), file=out)
    return 0


if __name__ == "__main__":
    sys.exit(main())
