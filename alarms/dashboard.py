"""`rollguard dashboard`: a CloudWatch dashboard overlaying the fleets of one endpoint.

One line per fleet in every widget: each variant (production and shadow), and with
``--model-version`` each variant's new-fleet copy (the ``ModelVersion`` dimension), so a
blue/green or linear shift shows old and new side by side. Rates are metric math over the
``Sum`` of the published counts, exactly as the alarms compute them (pipelines.metrics.RATES):
the counts are hidden metrics with an ``id``, the visible line is the expression. Latency
is CloudWatch's own percentile statistic of the ``Latency`` distribution.

:func:`dashboard_body` is pure; :func:`main` adds variant discovery (ListMetrics) and
PutDashboard, with the client and settings its caller hands it (like `alarms.cli`).
"""
from __future__ import annotations

import argparse
import json
import sys
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Protocol, TextIO

from alarms import aws_clients, command, math_text
from alarms.aws_clients import AwsSettings
from pipelines import cloudwatch_rules, metrics

DEFAULT_NAMESPACE = "Rollguard"
DEFAULT_PERIOD = 60
WIDGET_WIDTH = 12  # two widgets per row of the 24-unit grid
WIDGET_HEIGHT = 6


@dataclass(frozen=True, slots=True)
class Fleet:
    """One line on every widget: a label and the exact dimension set it reads."""

    label: str
    dimensions: tuple[tuple[str, str], ...]


@dataclass(frozen=True, slots=True)
class RatePanel:
    """A widget of one rate per fleet; ``rate`` names a pipelines.metrics.PUBLISHED_RATES entry."""

    title: str
    rate: str

    @classmethod
    def of(cls, rate: str) -> RatePanel:
        """The panel titled by the rate's label and formula, e.g. ``Precision  tp/(tp+fp)``."""
        r = metrics.PUBLISHED_RATES[rate]
        bare = {cid: cid for cid in r.ids()}
        num, den = math_text.template(r.numerator).format(**bare), math_text.template(r.denominator).format(**bare)
        return cls(f"{r.label[0].upper()}{r.label[1:]}  {_ratio(num, den, den_parens='+' in den)}", rate)


@dataclass(frozen=True, slots=True)
class StatPanel:
    """A widget of one statistic of one metric per fleet (no math)."""

    title: str
    metric: str
    stat: str
    unit: str  # the y axis label


Panel = RatePanel | StatPanel

def _ratio(num: str, den: str, *, den_parens: bool) -> str:
    return ("(" + num + ")" if "+" in num else num) + "/" + ("(" + den + ")" if den_parens else den)


PANELS: tuple[Panel, ...] = (
    RatePanel.of("precision"),
    RatePanel.of("recall"),
    StatPanel("Latency p99 (ms)", metrics.LATENCY, "p99", "ms"),
    RatePanel.of("error_rate"),
    RatePanel.of("label_coverage"),
    RatePanel.of("shadow_agreement"),
    StatPanel("Labeled outcomes per period (the rates' sample)", metrics.LABELED, "Sum", "count"),
    StatPanel("Invocations per period", metrics.INVOCATIONS, "Sum", "count"),
)


def fleets(endpoint: str, variants: Sequence[str], model_version: str | None = None) -> list[Fleet]:
    """Each variant, then (with ``model_version``) each variant's new-fleet copy."""
    out = [Fleet(v, ((metrics.ENDPOINT_NAME, endpoint), (metrics.VARIANT_NAME, v))) for v in variants]
    if model_version:
        out += [Fleet(f"{v} {model_version}", ((metrics.ENDPOINT_NAME, endpoint), (metrics.VARIANT_NAME, v),
                                                (metrics.MODEL_VERSION, model_version))) for v in variants]
    return out


def _metric_row(namespace: str, metric: str, fleet: Fleet, options: Mapping[str, Any]) -> list[Any]:
    row: list[Any] = [namespace, metric]
    for name, value in fleet.dimensions:
        row += [name, value]
    return row + [dict(options)]


def rate_expression(rate: str, suffix: str) -> tuple[str, str, dict[str, str]]:
    """``(expression, sample expression, {count id: query id})`` of a published rate, ids suffixed.

    Counts are used bare (no FILL): in metric math between series a missing value is 0, and
    a period whose denominator is 0 is dropped, i.e. shows as a gap.
    """
    r = metrics.PUBLISHED_RATES[rate]
    used = {cid: f"{cid}{suffix}" for cid in math_text.rate_ids(r)}
    num, den = math_text.template(r.numerator).format(**used), math_text.template(r.denominator).format(**used)
    return _ratio(num, den, den_parens=True), math_text.template(r.sample).format(**used), used


def widget(panel: Panel, fleet_list: Sequence[Fleet], namespace: str, region: str, period: int) -> dict[str, Any]:
    """One metric widget's ``properties`` plus ``type``; ids are unique within the widget."""
    rows: list[list[Any]] = []
    y_axis: dict[str, Any]
    if isinstance(panel, RatePanel):
        for i, fleet in enumerate(fleet_list):
            expression, _, used = rate_expression(panel.rate, str(i))
            rows.append([{"expression": expression, "label": fleet.label, "id": f"rate{i}"}])
            for cid, qid in used.items():
                rows.append(_metric_row(namespace, metrics.COUNT_IDS[cid], fleet,
                                        {"id": qid, "stat": "Sum", "visible": False}))
        y_axis = {"left": {"min": 0, "max": 1, "showUnits": False}}
    else:
        for i, fleet in enumerate(fleet_list):
            rows.append(_metric_row(namespace, panel.metric, fleet,
                                    {"id": f"m{i}", "stat": panel.stat, "label": fleet.label}))
        y_axis = {"left": {"min": 0, "label": panel.unit, "showUnits": False}}
    return {
        "type": "metric",
        "properties": {
            "title": panel.title,
            "view": "timeSeries",
            "stacked": False,
            "region": region,
            "period": period,
            "stat": "Sum",
            "metrics": rows,
            "yAxis": y_axis,
        },
    }


def dashboard_body(endpoint: str, variants: Sequence[str], *, model_version: str | None = None,
                   namespace: str = DEFAULT_NAMESPACE, region: str, period: int = DEFAULT_PERIOD,
                   start: str = "-PT6H") -> dict[str, Any]:
    """The DashboardBody (as data): a text header, then :data:`PANELS` two per row.

    Raises ValueError without variants or with a period CloudWatch would not graph.
    """
    if not variants:
        raise ValueError("a dashboard needs at least one variant")
    if not cloudwatch_rules.valid_graph_period(period):
        raise ValueError(f"period must be 1, 5, 10, 30 or a multiple of 60 seconds, got {period}")
    fleet_list = fleets(endpoint, variants, model_version)
    header = (f"## rollguard: {endpoint}\n"
              f"Fleets: {', '.join(f.label for f in fleet_list)}. Namespace `{namespace}`. "
              "Rates are metric math over the Sum of the published counts (the alarms' math); "
              "a gap is a period without a sample.")
    widgets: list[dict[str, Any]] = [
        {"type": "text", "x": 0, "y": 0, "width": 24, "height": 2, "properties": {"markdown": header}}
    ]
    for n, panel in enumerate(PANELS):
        w = widget(panel, fleet_list, namespace, region, period)
        w.update(x=(n % 2) * WIDGET_WIDTH, y=2 + (n // 2) * WIDGET_HEIGHT, width=WIDGET_WIDTH, height=WIDGET_HEIGHT)
        widgets.append(w)
    return {"start": start, "periodOverride": "inherit", "widgets": widgets}


# -- the command --------------------------------------------------------------------------


class DashboardClient(Protocol):
    """The part of a boto3 CloudWatch client the command uses."""

    def put_dashboard(self, *, DashboardName: str, DashboardBody: str) -> Mapping[str, Any]: ...

    def get_paginator(self, operation_name: str) -> Any: ...


def discover_variants(client: DashboardClient, namespace: str, endpoint: str) -> list[str]:
    """Variant names that published Invocations for ``endpoint`` (ListMetrics: the last two weeks)."""
    found: set[str] = set()
    pages = client.get_paginator("list_metrics").paginate(
        Namespace=namespace, MetricName=metrics.INVOCATIONS,
        Dimensions=[{"Name": metrics.ENDPOINT_NAME, "Value": endpoint}],
    )
    for page in pages:
        for metric in page.get("Metrics", []):
            for dim in metric.get("Dimensions", []):
                if dim.get("Name") == metrics.VARIANT_NAME:
                    found.add(str(dim.get("Value")))
    return sorted(found)


def _parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(
        prog="rollguard dashboard",
        description="Write (or, with --apply, put) a CloudWatch dashboard overlaying an endpoint's fleets.",
    )
    parser.add_argument("--endpoint", required=True)
    parser.add_argument("--variant", action="append", default=[],
                        help="a variant to show (repeat; default: every variant that published Invocations)")
    parser.add_argument("--model-version", help="also show each variant's new fleet (the ModelVersion dimension)")
    parser.add_argument("--name", help="dashboard name (default rollguard-ENDPOINT)")
    parser.add_argument("--namespace", help="CloudWatch namespace (default ROLLGUARD_NAMESPACE, Rollguard)")
    parser.add_argument("--region", help="region the widgets read (default ROLLGUARD_AWS_REGION / AWS_REGION)")
    parser.add_argument("--period", type=int, default=DEFAULT_PERIOD, help="seconds per point (default 60)")
    parser.add_argument("--out", type=Path, help="write the body JSON here instead of stdout")
    parser.add_argument("--apply", action="store_true",
                        help="PutDashboard (the body is then written only with --out)")
    return parser


def main(
    argv: Sequence[str] | None = None,
    *,
    settings: Callable[[], AwsSettings],
    client_factory: Callable[[AwsSettings], DashboardClient] = aws_clients.cloudwatch,
    out: TextIO | None = None,
    err: TextIO | None = None,
) -> int:
    """Run ``rollguard dashboard ...``; 0 done, 1 AWS failed, 2 usage or nothing to show.

    ``settings`` gives the namespace, region and endpoint; ``client_factory`` makes the CloudWatch
    client from them, only for --apply or variant discovery.
    """
    out = out or sys.stdout
    err = err or sys.stderr
    parser = _parser()
    args = command.parse_args(parser, argv)
    if isinstance(args, int):
        return args
    name = args.name or f"rollguard-{args.endpoint}"
    if not cloudwatch_rules.DASHBOARD_NAME_RE.match(name):
        return command.usage_error(parser, f"dashboard name {name!r} must be 1-255 of A-Z a-z 0-9 - _")
    resolved = settings()
    namespace = args.namespace or resolved.namespace
    region = args.region or aws_clients.region_for(resolved)
    if not region:
        print("rollguard dashboard: no region for the widgets: pass --region or set AWS_REGION", file=err)
        return 2
    variants: list[str] = list(dict.fromkeys(args.variant))
    client = client_factory(resolved) if args.apply or not variants else None
    if not variants:
        assert client is not None
        try:
            variants = discover_variants(client, namespace, args.endpoint)
        except Exception as ex:  # noqa: BLE001 - one clear line
            print(f"rollguard dashboard: cannot list variants (pass --variant): {command.aws_failure(ex)}", file=err)
            return 1
        if not variants:
            print(f"rollguard dashboard: no variant of {args.endpoint!r} published Invocations in namespace "
                  f"{namespace!r} in the last two weeks; pass --variant", file=err)
            return 2
    try:
        body = dashboard_body(args.endpoint, variants, model_version=args.model_version, namespace=namespace,
                              region=region, period=args.period)
    except ValueError as ex:
        return command.usage_error(parser, str(ex))
    text = json.dumps(body, indent=2)
    if args.out:
        args.out.write_text(text + "\n")
    elif not args.apply:
        print(text, file=out)
    if args.apply:
        assert client is not None
        try:
            resp = client.put_dashboard(DashboardName=name, DashboardBody=json.dumps(body))
        except Exception as ex:  # noqa: BLE001 - one clear line
            print(f"rollguard dashboard: PutDashboard {name} failed: {command.aws_failure(ex)}", file=err)
            return 1
        for msg in resp.get("DashboardValidationMessages", []):
            print(f"rollguard dashboard: {msg.get('DataPath', '')}: {msg.get('Message', '')}", file=err)
        print(f"put dashboard {name} ({len(body['widgets'])} widgets, fleets: "
              f"{', '.join(f.label for f in fleets(args.endpoint, variants, args.model_version))})", file=out)
    return 0
