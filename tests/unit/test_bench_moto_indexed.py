"""bench/moto_indexed.py's reads answer exactly as moto's own: the same puts, read with moto's
stock backend and with the indexed one, give equal responses (values, timestamps, order)."""
from __future__ import annotations

from collections.abc import Iterator
from datetime import datetime, timedelta, timezone
from typing import Any

import pytest

moto = pytest.importorskip("moto")
boto3 = pytest.importorskip("boto3")

from bench import moto_indexed  # noqa: E402

NOW = datetime.now(timezone.utc).replace(second=0, microsecond=0) - timedelta(minutes=10)


def dims(**kv: str) -> list[dict[str, str]]:
    return [{"Name": k, "Value": v} for k, v in kv.items()]


@pytest.fixture
def cloudwatch() -> Iterator[Any]:
    with moto.mock_aws():
        yield boto3.client("cloudwatch", region_name="us-east-1", aws_access_key_id="testing",
                           aws_secret_access_key="testing")
    moto_indexed.uninstall()


def put_some(cw: Any, offset_s: int = 0) -> None:
    at = lambda s: NOW + timedelta(seconds=s + offset_s)  # noqa: E731
    for ns in ("A", "B"):  # the same dimensions in two namespaces: moto's GetMetricData matches both
        cw.put_metric_data(Namespace=ns, MetricData=[
            {"MetricName": "Labeled", "Dimensions": dims(EndpointName="ep", VariantName="v1"), "Value": 1.0,
             "Timestamp": at(5)},
            {"MetricName": "Labeled", "Dimensions": dims(VariantName="v1", EndpointName="ep"), "Value": 2.5,
             "Timestamp": at(70)},
            {"MetricName": "Labeled", "Dimensions": dims(EndpointName="ep", VariantName="v2"), "Value": 4.0,
             "Timestamp": at(10)},
            {"MetricName": "Labeled", "Dimensions": dims(EndpointName="ep", VariantName="v1", ModelVersion="m"),
             "Value": 8.0, "Timestamp": at(20)},
            {"MetricName": "Latency", "Dimensions": dims(EndpointName="ep", VariantName="v1"), "Unit": "Milliseconds",
             "Values": [0.1, 0.7, 3.0], "Counts": [2, 1, 3], "Timestamp": at(30)},
            {"MetricName": "Errors", "Value": 3.0, "Timestamp": at(40)},
            {"MetricName": "Errors", "StatisticValues": {"SampleCount": 4, "Sum": 6, "Minimum": 1, "Maximum": 3},
             "Timestamp": at(100)},
        ])


def data_query(metric: str, namespace: str = "A", stat: str = "Sum", period: int = 60, qid: str = "m",
               unit: str | None = None, **kv: str) -> dict[str, Any]:
    stat_spec: dict[str, Any] = {"Metric": {"Namespace": namespace, "MetricName": metric, "Dimensions": dims(**kv)},
                                 "Period": period, "Stat": stat}
    if unit:
        stat_spec["Unit"] = unit
    return {"Id": qid, "ReturnData": True, "MetricStat": stat_spec}


QUERIES: list[list[dict[str, Any]]] = [
    [data_query("Labeled", EndpointName="ep", VariantName="v1")],
    [data_query("Labeled", VariantName="v1", EndpointName="ep", stat="SampleCount")],
    [data_query("Labeled", EndpointName="ep")],  # a subset of a series' dimensions: moto matches none
    [data_query("Labeled", namespace="B")],  # no dimensions: namespace and name
    [data_query("Latency", stat="Average", unit="Milliseconds", EndpointName="ep", VariantName="v1")],
    [data_query("Errors", stat="Maximum", period=300)],
    [data_query("Labeled", qid="a", EndpointName="ep", VariantName="v1"),
     data_query("Labeled", qid="b", EndpointName="ep", VariantName="v2"),
     {"Id": "c", "Expression": "a + b", "ReturnData": True}],
    [data_query("Nothing", EndpointName="ep")],
]

STATISTICS: list[dict[str, Any]] = [
    {"Namespace": "A", "MetricName": "Labeled", "Dimensions": dims(EndpointName="ep", VariantName="v1")},
    {"Namespace": "A", "MetricName": "Labeled", "Dimensions": dims(EndpointName="ep")},  # a subset matches
    {"Namespace": "B", "MetricName": "Labeled", "Dimensions": []},
    {"Namespace": "A", "MetricName": "Errors", "Dimensions": []},
    {"Namespace": "A", "MetricName": "Latency", "Dimensions": [], "Unit": "Milliseconds"},
]


def read_all(cw: Any) -> list[Any]:
    out: list[Any] = []
    for queries in QUERIES:
        resp = cw.get_metric_data(MetricDataQueries=queries, StartTime=NOW - timedelta(minutes=5),
                                  EndTime=NOW + timedelta(minutes=10))
        out.append(resp["MetricDataResults"])
    for spec in STATISTICS:
        resp = cw.get_metric_statistics(StartTime=NOW - timedelta(minutes=5), EndTime=NOW + timedelta(minutes=10),
                                        Period=60, Statistics=["Sum", "SampleCount", "Average", "Minimum", "Maximum"],
                                        **spec)
        out.append(sorted(resp["Datapoints"], key=lambda p: p["Timestamp"]))
    return out


def test_indexed_reads_equal_motos_own(cloudwatch: Any) -> None:
    put_some(cloudwatch)
    stock = read_all(cloudwatch)
    assert any(r[0]["Values"] for r in stock[:len(QUERIES)])  # the cases read something
    moto_indexed.install()
    assert read_all(cloudwatch) == stock


def test_datums_put_after_a_read_are_read_next_time(cloudwatch: Any) -> None:
    moto_indexed.install()
    put_some(cloudwatch)
    read_all(cloudwatch)  # the index is built here
    put_some(cloudwatch, offset_s=17)
    indexed = read_all(cloudwatch)
    moto_indexed.uninstall()
    assert indexed == read_all(cloudwatch)


def test_series_key_ignores_dimension_order() -> None:
    assert moto_indexed.series_key("M", [("b", "2"), ("a", "1")]) == moto_indexed.series_key("M", [("a", "1"), ("b", "2")])
    assert moto_indexed.series_key("M", [("a", "1")]) != moto_indexed.series_key("M", [("a", "1"), ("b", "2")])
