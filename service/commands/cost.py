"""`rollguard cost [--spec S]`: the CloudWatch metric count per kind and the monthly estimate for the
current settings and spec (alarms/cost.py does the counting)."""
from __future__ import annotations

import argparse
import json
import sys
from collections.abc import Sequence
from typing import Any, TextIO

from alarms import cost
from alarms.sync import desired_requests
from alarms import spec as alarm_spec
from pipelines.series import OTHER, dimension_value
from service.commands import base
from service.settings import Settings

PROG = "rollguard cost"


def _parser() -> argparse.ArgumentParser:
    p = argparse.ArgumentParser(prog=PROG, description="CloudWatch metrics and monthly cost of the current settings "
                                                       "and alarm spec, at list price")
    p.add_argument("--spec", help="alarm spec file: its endpoints and variants, and its alarms")
    p.add_argument("--variants", type=int, default=2,
                   help="variants per endpoint without --spec (default 2: production and the new one)")
    p.add_argument("--model-versions", type=int,
                   help="model versions live per variant at once (default: 1 where the spec names one, "
                        "0 elsewhere; 1 without --spec)")
    p.add_argument("--instances", type=int, default=1, help="daemon instances (PutMetricData requests scale with it)")
    p.add_argument("--json", action="store_true")
    return p


def segment_values(settings: Settings) -> dict[str, tuple[str, ...]]:
    """Each segment attribute's dimension values: its allow-list, else the cap's worth; plus `__other__`."""
    out: dict[str, tuple[str, ...]] = {}
    for attr in settings.segment_attributes:
        listed = settings.segment_values.get(attr)
        if listed is not None:
            values = tuple(dict.fromkeys(dimension_value(v) for v in listed))
        else:
            values = tuple(f"value-{i}" for i in range(1, settings.segment_cardinality_cap + 1))
        out[attr] = values + (OTHER,)
    return out


def _versions(name: str | None, n: int) -> tuple[str, ...]:
    first = name or "version-1"
    return (first, *(f"{first}-{i}" for i in range(2, n + 1)))[:n]


def fleets_of(spec: alarm_spec.SpecFile, requests: Sequence[dict[str, Any]],
              model_versions: int | None) -> tuple[cost.Fleet, ...]:
    """The spec's endpoint variants; a variant an alarm reads shadow counts of is a shadow one."""
    declared = {ep.name: ep.model_version for ep in spec.endpoints}
    shadow: set[tuple[str, str]] = set()
    for alarm, request in zip(alarm_spec.expand(spec), requests):
        stats = [q["MetricStat"]["Metric"] for q in request.get("Metrics", ()) if "MetricStat" in q] or [request]
        if any(s.get("MetricName") in cost.SHADOW_COUNTS | cost.SHADOW_GAUGES for s in stats):
            shadow.add((alarm.endpoint, alarm.variant))
    fleets = []
    for endpoint, variant in dict.fromkeys((a.endpoint, a.variant) for a in alarm_spec.expand(spec)):
        n = model_versions if model_versions is not None else int(declared.get(endpoint) is not None)
        fleets.append(cost.Fleet(endpoint, variant, _versions(declared.get(endpoint), n), (endpoint, variant) in shadow))
    return tuple(fleets)


def notes(settings: Settings, spec: alarm_spec.SpecFile | None) -> list[str]:
    """Segment alarms of the spec the settings (or the dimension sets) would leave without data."""
    if spec is None:
        return []
    declared = {ep.name: ep.model_version for ep in spec.endpoints}
    out = []
    for alarm in alarm_spec.expand(spec):
        if alarm.segment is None:
            continue
        attr, value = alarm.segment
        if alarm.model_version is None and declared.get(alarm.endpoint) is not None:
            out.append(f"{alarm.name} reads a segment without ModelVersion, but segment copies carry ModelVersion "
                       "when the captures do: use scope: model_version")
        elif attr not in settings.segment_attributes:
            out.append(f"{alarm.name} reads segment attribute {attr!r}, which ROLLGUARD_SEGMENT_ATTRIBUTES does not list")
        elif attr in settings.segment_values and value not in segment_values(settings)[attr]:
            out.append(f"{alarm.name} reads {attr}={value}, which ROLLGUARD_SEGMENT_VALUES does not list (it is {OTHER})")
        elif alarm.kind == "gauge" and not settings.segment_gauges:
            out.append(f"{alarm.name} reads a segment gauge: set ROLLGUARD_SEGMENT_GAUGES=true to publish it")
    return out


def main(argv: Sequence[str] | None = None, *, settings: Settings | None = None,
         out: TextIO | None = None, err: TextIO | None = None) -> int:
    out, err = out or sys.stdout, err or sys.stderr
    try:
        args = _parser().parse_args(list(sys.argv[1:] if argv is None else argv))
    except SystemExit as ex:
        return 0 if ex.code in (0, None) else 2
    if min(args.variants, args.instances) < 1 or (args.model_versions or 0) < 0:
        return base.fail(PROG, "--variants and --instances must be >= 1, --model-versions >= 0", err=err)
    settings = settings or base.load_or_exit(PROG)
    requests: list[dict[str, Any]] = []
    spec: alarm_spec.SpecFile | None = None
    if args.spec:
        try:
            spec = alarm_spec.load_spec(args.spec)
            # the alarms, then one verdict alarm per comparison (fleets_of zips the first part)
            requests = list(desired_requests(spec, settings.namespace).values())
        except (alarm_spec.SpecError, alarm_spec.AlarmLimitError) as ex:
            return base.fail(PROG, str(ex).splitlines()[0], err=err)
        fleets = fleets_of(spec, requests, args.model_versions)
    else:
        endpoints = settings.endpoints or ("endpoint",)
        n = 1 if args.model_versions is None else args.model_versions
        fleets = tuple(cost.Fleet(e, f"variant-{i}", _versions(None, n))
                       for e in endpoints for i in range(1, args.variants + 1))
    judged = tuple((c.endpoint, c.name) for c in alarm_spec.comparisons(spec)) if spec is not None else ()
    shape = cost.Shape(fleets, segment_values(settings), settings.segment_gauges, settings.tick_seconds,
                       args.instances, comparisons=judged)
    est = cost.estimate(shape, requests)
    if args.json:
        print(json.dumps({**est.to_json(), "notes": notes(settings, spec)}, indent=2), file=out)
    else:
        print(cost.render(est, shape), file=out)
        for line in notes(settings, spec):
            print(f"{PROG}: note: {line}", file=err)
    return 0

