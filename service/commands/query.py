"""`rollguard query`: metric history from CloudWatch, rates computed from the sums (service.query);
with ``--comparison NAME`` instead of ``--variant``/``--metric``, a comparison's Verdict history."""
from __future__ import annotations

import argparse
import json
import sys
from datetime import datetime, timezone
from typing import Any

from pipelines.metrics import VERDICT
from service import aws
from service.commands.base import fail, load_or_exit
from service.query import (
    DEFAULT_PERIOD,
    METRIC_NAMES,
    MetricDataClient,
    align_range,
    count_ids,
    dimensions,
    expand_metrics,
    iso,
    parse_time,
    render_table,
    render_verdict_table,
    retention_note,
    run_query,
    run_verdict_query,
    summarise,
    verdict_dimensions,
    verdict_periods,
    verdict_summary,
)

PROG = "rollguard query"


def _segment(text: str) -> tuple[str, str]:
    name, sep, value = text.partition("=")
    if not sep or not name.strip() or not value:
        raise argparse.ArgumentTypeError(f"--segment must be ATTRIBUTE=VALUE (e.g. merchant_category=5411), got {text!r}")
    return name.strip(), value


def build_parser() -> argparse.ArgumentParser:
    p = argparse.ArgumentParser(
        prog=PROG,
        description="Metric history from CloudWatch; rates computed from the published sums (works with the daemon down). "
                    "With --comparison NAME instead of --variant/--metric: that comparison's Verdict per period.",
    )
    p.add_argument("--endpoint", required=True, help="EndpointName")
    p.add_argument("--variant", help="VariantName (with --metric)")
    p.add_argument("--metric", action="append",
                   help=f"one or more (comma list or repeated): {', '.join(METRIC_NAMES)}; or 'latency', 'all'")
    p.add_argument("--comparison", metavar="NAME",
                   help="instead of --variant/--metric: the comparison's Verdict history (PASS, INCONCLUSIVE, "
                        "FAIL per period, the Maximum of what the instances published; MISSING where none did)")
    p.add_argument("--since", default="1h", help="start: 30m, 6h, 2d, 1w before now, or ISO 8601 (default 1h)")
    p.add_argument("--until", default="now", help="end: same forms as --since (default now)")
    p.add_argument("--period", type=int, default=DEFAULT_PERIOD, help="seconds per row, a multiple of 60 (default 300)")
    p.add_argument("--segment", type=_segment, help="one segment dimension, ATTRIBUTE=VALUE (segment copies carry "
                   "ModelVersion when the captures do: give --model-version too)")
    p.add_argument("--model-version", help="only this model version (the ModelVersion dimension)")
    p.add_argument("--namespace", help="CloudWatch namespace (default ROLLGUARD_NAMESPACE, Rollguard)")
    p.add_argument("--json", action="store_true", help="print JSON instead of a table")
    return p


def main(argv: list[str], *, client: MetricDataClient | None = None, now: datetime | None = None) -> int:
    """``client`` and ``now`` are for tests (default: boto3 from settings, the clock)."""
    parser = build_parser()
    args = parser.parse_args(argv)
    now = now or datetime.now(timezone.utc)
    if args.comparison is not None:
        given = [flag for flag, value in (("--variant", args.variant), ("--metric", args.metric),
                                          ("--segment", args.segment), ("--model-version", args.model_version))
                 if value is not None]
        if given:
            parser.error(f"--comparison reads the Verdict metric (dimensions EndpointName, Comparison) and takes "
                         f"no {'/'.join(given)}")
        if not args.comparison.strip():
            parser.error("--comparison needs the comparison's name")
    elif args.variant is None or args.metric is None:
        missing = " and ".join(f for f, v in (("--variant", args.variant), ("--metric", args.metric)) if v is None)
        verb = "are" if " and " in missing else "is"
        parser.error(f"{missing} {verb} required (or --comparison NAME for a comparison's Verdict history)")
    try:
        names = expand_metrics(args.metric) if args.comparison is None else ()
        start, end = parse_time(args.since, now), parse_time(args.until, now)
    except ValueError as ex:
        parser.error(str(ex))
    if args.period < 60 or args.period % 60:
        parser.error(f"--period must be a positive multiple of 60 seconds, got {args.period}")
    if end <= start:
        parser.error(f"--since ({iso(start)}) must be before --until ({iso(end)})")
    start, end = align_range(start, end, args.period)
    if (end - start).total_seconds() / args.period > 100_000:
        parser.error("that range has more than 100,000 periods; use a larger --period")

    settings = load_or_exit(PROG)
    namespace = args.namespace or settings.namespace
    if client is None:
        client = aws.client("cloudwatch", settings)
    if args.comparison is not None:
        return _verdict_history(args, client, namespace, start, end, now)
    dims = dimensions(args.endpoint, args.variant, args.model_version, args.segment)
    try:
        fetched = run_query(client, namespace, dims, names, start, end, args.period)
    except Exception as ex:  # noqa: BLE001 - one clear line: credentials, region, endpoint, throttling
        return fail(PROG, f"GetMetricData failed: {type(ex).__name__}: {str(ex).splitlines()[0] if str(ex) else ''}", 1)
    note = retention_note(start, args.period, now)
    if note:
        fetched.notes.append(note)
    rows, total = summarise(fetched, names, count_ids(names))
    result: dict[str, Any] = {
        "namespace": namespace,
        "dimensions": {d["Name"]: d["Value"] for d in dims},
        "start": iso(start),
        "end": iso(end),
        "period": args.period,
        "metrics": list(names),
        "periods": [r.as_dict() for r in rows],
        "total": total.as_dict(),
        "notes": fetched.notes,
    }
    if args.json:
        print(json.dumps(result, indent=2))
    else:
        sys.stdout.write(render_table(result, rows, total, names))
    return 0


def _verdict_history(args: argparse.Namespace, client: MetricDataClient, namespace: str,
                     start: datetime, end: datetime, now: datetime) -> int:
    dims = verdict_dimensions(args.endpoint, args.comparison)
    try:
        series = run_verdict_query(client, namespace, dims, start, end, args.period)
    except Exception as ex:  # noqa: BLE001 - one clear line: credentials, region, endpoint, throttling
        return fail(PROG, f"GetMetricData failed: {type(ex).__name__}: {str(ex).splitlines()[0] if str(ex) else ''}", 1)
    periods = verdict_periods(series, start, end, args.period)
    note = retention_note(start, args.period, now)
    result: dict[str, Any] = {
        "namespace": namespace,
        "metric": VERDICT,
        "statistic": "Maximum",
        "dimensions": {d["Name"]: d["Value"] for d in dims},
        "start": iso(start),
        "end": iso(end),
        "period": args.period,
        "periods": [p.as_dict() for p in periods],
        "summary": verdict_summary(periods),
        "notes": [note] if note else [],
    }
    if args.json:
        print(json.dumps(result, indent=2))
    else:
        sys.stdout.write(render_verdict_table(result, periods))
    return 0
