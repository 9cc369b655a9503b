"""`rollguard dashboard`: a CloudWatch dashboard overlaying the fleets of one endpoint.

One line per fleet in every widget: each variant (production and shadow), and with
``--model-version`` each variant's new-fleet copy (the ``ModelVersion`` dimension), so a
blue/green or linear shift shows old and new side by side. Rates are metric math over the
``Sum`` of the published counts, exactly as the alarms compute them (alarms.spec.RATES):
the counts are hidden metrics with an ``id``, the visible line is the expression. Latency
is CloudWatch's own percentile statistic of the ``Latency`` distribution.

:func:`dashboard_body` is pure; :func:`main` adds variant discovery (ListMetrics) and
PutDashboard.
"""
from __future__ import annotations

import argparse
import json
import re
import sys
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Protocol

from alarms.spec import COUNT_METRICS, RATES

DEFAULT_NAMESPACE = "Rollguard"
DEFAULT_PERIOD = 60
WIDGET_WIDTH = 12  # two widgets per row of the 24-unit grid
WIDGET_HEIGHT = 6
_DASHBOARD_NAME_RE = re.compile(r"^[A-Za-z0-9_-]{1,255}$")


@dataclass(frozen=True, slots=True)
class Fleet:
    """One line on every widget: a label and the exact dimension set it reads."""

    label: str
    dimensions: tuple[tuple[str, str], ...]


@dataclass(frozen=True, slots=True)
class RatePanel:
    """A widget of one rate per fleet; ``rate`` names an alarms.spec.RATES entry."""

    title: str
    rate: str


@dataclass(frozen=True, slots=True)
class StatPanel:
    """A widget of one statistic of one metric per fleet (no math)."""

    title: str
    metric: str
    stat: str
    unit: str  # the y axis label


Panel = RatePanel | StatPanel

PANELS: tuple[Panel, ...] = (
    RatePanel("Precision  tp/(tp+fp)", "precision"),
    RatePanel("Recall  tp/(tp+fn)", "recall"),
    StatPanel("Latency p99 (ms)", "Latency", "p99", "ms"),
    RatePanel("Error rate  errors/invocations", "error_rate"),
    RatePanel("Label coverage  labeled/invocations", "label_coverage"),
    RatePanel("Shadow agreement  agreements/comparisons", "shadow_agreement"),
    StatPanel("Labeled outcomes per period (the rates' sample)", "Labeled", "Sum", "count"),
    StatPanel("Invocations per period", "Invocations", "Sum", "count"),
)


def fleets(endpoint: str, variants: Sequence[str], model_version: str | None = None) -> list[Fleet]:
    """Each variant, then (with ``model_version``) each variant's new-fleet copy."""
    out = [Fleet(v, (("EndpointName", endpoint), ("VariantName", v))) for v in variants]
    if model_version:
        out += [Fleet(f"{v} {model_version}", (("EndpointName", endpoint), ("VariantName", v),
                                                ("ModelVersion", model_version))) for v in variants]
    return out


def _metric_row(namespace: str, metric: str, fleet: Fleet, options: Mapping[str, Any]) -> list[Any]:
    row: list[Any] = [namespace, metric]
    for name, value in fleet.dimensions:
        row += [name, value]
    return row + [dict(options)]


def rate_expression(rate: str, suffix: str) -> tuple[str, str, dict[str, str]]:
    """``(expression, sample expression, {count id: query id})`` of an alarms.spec rate, ids suffixed.

    Counts are used bare (no FILL): in metric math between series a missing value is 0, and
    a period whose denominator is 0 is dropped, i.e. shows as a gap.
    """
    r = RATES[rate]
    ids = {cid: f"{cid}{suffix}" for cid in COUNT_METRICS}
    used = {cid: ids[cid] for cid in COUNT_METRICS if "{" + cid + "}" in r.numerator + r.denominator + r.sample}
    num, den = r.numerator.format(**ids), r.denominator.format(**ids)
    return f"({num})/({den})" if "+" in num else f"{num}/({den})", r.sample.format(**ids), used


def widget(panel: Panel, fleet_list: Sequence[Fleet], namespace: str, region: str, period: int) -> dict[str, Any]:
    """One metric widget's ``properties`` plus ``type``; ids are unique within the widget."""
    metrics: list[list[Any]] = []
    y_axis: dict[str, Any]
    if isinstance(panel, RatePanel):
        for i, fleet in enumerate(fleet_list):
            expression, _, used = rate_expression(panel.rate, str(i))
            metrics.append([{"expression": expression, "label": fleet.label, "id": f"rate{i}"}])
            for cid, qid in used.items():
                metrics.append(_metric_row(namespace, COUNT_METRICS[cid], fleet,
                                           {"id": qid, "stat": "Sum", "visible": False}))
        y_axis = {"left": {"min": 0, "max": 1, "showUnits": False}}
    else:
        for i, fleet in enumerate(fleet_list):
            metrics.append(_metric_row(namespace, panel.metric, fleet,
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
            "metrics": metrics,
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
    if period not in (1, 5, 10, 30) and (period < 60 or period % 60):
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
    def put_dashboard(self, *, DashboardName: str, DashboardBody: str) -> Mapping[str, Any]: ...

    def list_metrics(self, **kwargs: Any) -> Mapping[str, Any]: ...


def discover_variants(client: DashboardClient, namespace: str, endpoint: str) -> list[str]:
    """Variant names that published Invocations for ``endpoint`` (ListMetrics: the last two weeks)."""
    found: set[str] = set()
    token: str | None = None
    while True:
        kwargs: dict[str, Any] = {"Namespace": namespace, "MetricName": "Invocations",
                                  "Dimensions": [{"Name": "EndpointName", "Value": endpoint}]}
        if token:
            kwargs["NextToken"] = token
        page = client.list_metrics(**kwargs)
        for metric in page.get("Metrics", []):
            for dim in metric.get("Dimensions", []):
                if dim.get("Name") == "VariantName":
                    found.add(str(dim.get("Value")))
        token = page.get("NextToken")
        if not token:
            return sorted(found)


def main(argv: list[str], *, client: DashboardClient | None = None) -> int:
    """`rollguard dashboard ...`; ``client`` is for tests (default: boto3 from settings)."""
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
    args = parser.parse_args(argv)
    name = args.name or f"rollguard-{args.endpoint}"
    if not _DASHBOARD_NAME_RE.match(name):
        parser.error(f"dashboard name {name!r} must be 1-255 of A-Z a-z 0-9 - _")

    from service.settings import load_or_exit

    settings = load_or_exit("rollguard dashboard")
    namespace = args.namespace or settings.namespace
    region = args.region or settings.aws_region or _default_region()
    if not region:
        print("rollguard dashboard: no region for the widgets: pass --region or set AWS_REGION", file=sys.stderr)
        return 2
    variants: list[str] = list(dict.fromkeys(args.variant))
    if client is None and (args.apply or not variants):
        from service import aws

        client = aws.client("cloudwatch", settings)
    if not variants:
        assert client is not None
        try:
            variants = discover_variants(client, namespace, args.endpoint)
        except Exception as ex:  # noqa: BLE001 - one clear line
            print(f"rollguard dashboard: cannot list variants (pass --variant): {type(ex).__name__}: {ex}",
                  file=sys.stderr)
            return 1
        if not variants:
            print(f"rollguard dashboard: no variant of {args.endpoint!r} published Invocations in namespace "
                  f"{namespace!r} in the last two weeks; pass --variant", file=sys.stderr)
            return 2
    try:
        body = dashboard_body(args.endpoint, variants, model_version=args.model_version, namespace=namespace,
                              region=region, period=args.period)
    except ValueError as ex:
        parser.error(str(ex))
    text = json.dumps(body, indent=2)
    if args.out:
        args.out.write_text(text + "\n")
    elif not args.apply:
        print(text)
    if args.apply:
        assert client is not None
        try:
            resp = client.put_dashboard(DashboardName=name, DashboardBody=json.dumps(body))
        except Exception as ex:  # noqa: BLE001 - one clear line
            print(f"rollguard dashboard: PutDashboard {name} failed: {type(ex).__name__}: {ex}", file=sys.stderr)
            return 1
        for msg in resp.get("DashboardValidationMessages", []):
            print(f"rollguard dashboard: {msg.get('DataPath', '')}: {msg.get('Message', '')}", file=sys.stderr)
        print(f"put dashboard {name} ({len(body['widgets'])} widgets, fleets: "
              f"{', '.join(f.label for f in fleets(args.endpoint, variants, args.model_version))})")
    return 0


def _default_region() -> str | None:
    import boto3

    region = boto3.session.Session().region_name
    return str(region) if region else None


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
