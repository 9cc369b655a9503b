"""`rollguard query`: rate math, time parsing, the GetMetricData requests and the output."""
from __future__ import annotations

import json
from datetime import datetime, timedelta, timezone
from typing import Any

import pytest

from pipelines.metrics import PUBLISHED_RATES as RATES
from pipelines.stats import wilson_lower_bound
from service import query
from service.commands import query as query_command
from service.query import (
    Fetched,
    align_range,
    compute,
    compute_rate,
    count_ids,
    expand_metrics,
    parse_time,
    retention_note,
    summarise,
)
from tests.unit.service.paging import Paginated

NOW = datetime(2026, 11, 21, 9, 7, 30, tzinfo=timezone.utc)
UTC = timezone.utc


# -- rate math -----------------------------------------------------------------------------


def test_precision_recall_f1_with_samples_and_bounds() -> None:
    c = {"tp": 80.0, "fp": 20.0, "fn": 40.0, "tn": 860.0}
    p = compute_rate(RATES["precision"], c)
    assert (p.value, p.sample) == (0.8, 100.0)
    assert p.lower_bound == pytest.approx(wilson_lower_bound(80, 100))
    r = compute_rate(RATES["recall"], c)
    assert r.value == pytest.approx(80 / 120) and r.sample == 120.0
    f1 = compute_rate(RATES["f1"], c)
    assert f1.value == pytest.approx(160 / 220) and f1.sample == 140.0 and f1.lower_bound is None


@pytest.mark.parametrize("metric,counts,value,sample", [
    ("error_rate", {"errors": 3, "invocations": 300}, 0.01, 300),
    ("label_coverage", {"labeled": 240, "invocations": 300}, 0.8, 300),
    ("shadow_agreement", {"agreements": 95, "comparisons": 100}, 0.95, 100),
    ("labeled", {"labeled": 7}, 7, 7),
    ("invocations", {}, 0, 0),
])
def test_other_rates_and_counts(metric: str, counts: dict[str, float], value: float, sample: float) -> None:
    v = compute(metric, counts)
    assert v.value == pytest.approx(value) and v.sample == sample


@pytest.mark.parametrize("metric,counts", [
    ("precision", {}),  # no sample at all
    ("precision", {"fn": 5, "tn": 9}),  # outcomes, but none predicted positive
    ("recall", {"fp": 3}),
    ("error_rate", {"errors": 0, "invocations": 0}),
    ("shadow_agreement", {"agreements": 0}),
    ("f1", {"tn": 10}),
])
def test_division_by_zero_gives_no_value(metric: str, counts: dict[str, float]) -> None:
    v = compute(metric, counts)
    assert v.value is None and v.lower_bound is None


def test_net_negative_counts_from_corrections_give_no_value() -> None:
    # a correction can move a count out of a period: a period may net -1 true positives
    v = compute_rate(RATES["precision"], {"tp": -1.0, "fp": 0.0})
    assert v.value is None and v.sample == -1.0
    v = compute_rate(RATES["precision"], {"tp": -1.0, "fp": 3.0})
    assert v.value == pytest.approx(-0.5) and v.lower_bound is None  # defined, but no Wilson bound


def test_latency_needs_samples() -> None:
    assert compute("p99_latency", {}, {"p99": 40.0}, 120).value == 40.0
    assert compute("p99_latency", {}, {"p99": 40.0}, 0).value is None
    assert compute("p50_latency", {}, {}, 5).value is None
    with pytest.raises(ValueError, match="unknown metric"):
        compute("bogus", {})


def test_expand_metrics() -> None:
    assert expand_metrics(["recall"]) == ("recall",)
    assert expand_metrics(["recall,precision", "latency", "recall"]) == (
        "recall", "precision", "p50_latency", "p90_latency", "p99_latency")
    assert "label_coverage" in expand_metrics(["all"])
    with pytest.raises(ValueError, match="unknown metric 'recal'; choose from precision, recall"):
        expand_metrics(["recal"])
    with pytest.raises(ValueError, match="at least one"):
        expand_metrics([" , "])


def test_count_ids_are_only_what_the_metrics_need() -> None:
    assert count_ids(["precision"]) == ("tp", "fp")
    assert count_ids(["f1", "labeled"]) == ("tp", "fp", "fn", "labeled")
    assert count_ids(["error_rate", "p99_latency"]) == ("invocations", "errors")
    assert count_ids(["p99_latency"]) == ()


# -- time ----------------------------------------------------------------------------------


@pytest.mark.parametrize("text,expected", [
    ("30m", NOW - timedelta(minutes=30)),
    ("6h", NOW - timedelta(hours=6)),
    (" 2d ", NOW - timedelta(days=2)),
    ("1w", NOW - timedelta(weeks=1)),
    ("90s", NOW - timedelta(seconds=90)),
    ("1.5h", NOW - timedelta(minutes=90)),
    ("now", NOW),
    ("2026-11-21T09:05:00Z", datetime(2026, 11, 21, 9, 5, tzinfo=UTC)),
    ("2026-11-21T09:05:00.123Z", datetime(2026, 11, 21, 9, 5, 0, 123000, tzinfo=UTC)),
    ("2026-11-21T10:05:00+01:00", datetime(2026, 11, 21, 9, 5, tzinfo=UTC)),
    ("2026-11-21T09:05", datetime(2026, 11, 21, 9, 5, tzinfo=UTC)),  # no zone: UTC
    ("2026-11-21", datetime(2026, 11, 21, tzinfo=UTC)),
])
def test_parse_time(text: str, expected: datetime) -> None:
    got = parse_time(text, NOW)
    assert got == expected and got.tzinfo is not None


@pytest.mark.parametrize("text", ["", "6 hours", "h6", "-6h", "yesterday", "2026-13-01"])
def test_parse_time_refuses_with_the_accepted_forms(text: str) -> None:
    with pytest.raises(ValueError, match=r"use a duration before now \(30m, 6h, 2d, 1w\)"):
        parse_time(text, NOW)


def test_align_range_widens_to_whole_periods() -> None:
    s, e = align_range(NOW - timedelta(hours=1), NOW, 300)
    assert (s, e) == (datetime(2026, 11, 21, 8, 5, tzinfo=UTC), datetime(2026, 11, 21, 9, 10, tzinfo=UTC))
    s, e = align_range(datetime(2026, 11, 21, 9, 0, tzinfo=UTC), datetime(2026, 11, 21, 9, 0, tzinfo=UTC), 60)
    assert e - s == timedelta(seconds=60)


def test_retention_note() -> None:
    assert retention_note(NOW - timedelta(days=3), 60, NOW) is None
    assert "use --period 300" in (retention_note(NOW - timedelta(days=20), 60, NOW) or "")
    assert retention_note(NOW - timedelta(days=20), 600, NOW) is None
    assert "use --period 3600" in (retention_note(NOW - timedelta(days=70), 300, NOW) or "")
    assert "455 days" in (retention_note(NOW - timedelta(days=500), 3600, NOW) or "")


# -- summarising ---------------------------------------------------------------------------

T1, T2, T3 = (datetime(2026, 11, 21, 8, m, tzinfo=UTC) for m in (0, 5, 10))


def test_summarise_fills_missing_counts_with_zero_and_totals_the_sums() -> None:
    fetched = Fetched(
        counts={"tp": {T1: 9.0, T3: 1.0}, "fp": {T1: 1.0, T2: 2.0}},
        latency={"p99": {T1: 30.0}, query.LATENCY_SAMPLES_ID: {T1: 10.0, T2: 5.0}},
        latency_total={"p99": 33.0},
    )
    rows, total = summarise(fetched, ["precision", "p99_latency"], ["tp", "fp"])
    assert [r.start for r in rows] == [T1, T2, T3]
    assert rows[0].values["precision"].value == 0.9 and rows[0].values["precision"].sample == 10
    assert rows[1].values["precision"].value == 0.0  # only false positives: precision 0, not a gap
    assert rows[1].counts == {"tp": 0.0, "fp": 2.0}
    assert rows[1].values["p99_latency"].value is None and rows[1].values["p99_latency"].sample == 5
    assert rows[2].values["precision"].value == 1.0
    assert total.counts == {"tp": 10.0, "fp": 3.0}
    assert total.values["precision"].value == pytest.approx(10 / 13) and total.values["precision"].sample == 13
    assert total.values["p99_latency"].value == 33.0 and total.values["p99_latency"].sample == 15
    assert total.as_dict()["metrics"]["precision"]["lower_bound"] == pytest.approx(wilson_lower_bound(10, 13))


# -- CloudWatch requests --------------------------------------------------------------------


class FakeCloudWatch(Paginated):
    """Answers GetMetricData from {(metric, stat, period): {timestamp: value}}, two results per page."""

    def __init__(self, data: dict[tuple[str, str, int], dict[datetime, float]], fail_percentiles: bool = False) -> None:
        self.data = data
        self.fail_percentiles = fail_percentiles
        self.requests: list[dict[str, Any]] = []

    def get_metric_data(self, **kwargs: Any) -> dict[str, Any]:
        self.requests.append(kwargs)
        queries = kwargs["MetricDataQueries"]
        if self.fail_percentiles and any(q["MetricStat"]["Stat"].startswith("p") for q in queries):
            raise RuntimeError("An error occurred (500) when calling the GetMetricData operation\nmore")
        page = int(kwargs.get("NextToken", "0"))
        results = []
        for q in queries[page * 2: page * 2 + 2]:
            ms = q["MetricStat"]
            series = self.data.get((ms["Metric"]["MetricName"], ms["Stat"], ms["Period"]), {})
            results.append({"Id": q["Id"], "Timestamps": list(series), "Values": list(series.values())})
        more = (page + 1) * 2 < len(queries)
        return {"MetricDataResults": results, **({"NextToken": str(page + 1)} if more else {})}


DATA = {
    ("TruePositives", "Sum", 300): {T1: 8.0, T2: 2.0},
    ("FalseNegatives", "Sum", 300): {T1: 2.0, T2: 8.0},
    ("Labeled", "Sum", 300): {T1: 50.0, T2: 40.0},
    ("Latency", "SampleCount", 300): {T1: 60.0, T2: 40.0},
    ("Latency", "p99", 300): {T1: 38.0, T2: 41.0},
    ("Latency", "p50", 300): {T1: 12.0, T2: 13.0},
    ("Latency", "p90", 300): {T1: 20.0, T2: 22.0},
}


def test_query_json_with_exact_dimensions(capsys: pytest.CaptureFixture[str], monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("ROLLGUARD_NAMESPACE", "RollguardX")
    start, end = align_range(parse_time("1h", NOW), NOW, 300)
    span = int((end - start).total_seconds())
    data = dict(DATA)
    data[("Latency", "p99", span)] = {start: 40.0}
    cw = FakeCloudWatch(data)
    argv = ["--endpoint", "fraud-ep", "--variant", "v6", "--metric", "recall,labeled", "--metric", "p99_latency",
            "--since", "1h", "--model-version", "fraud-v6", "--segment", "merchant_category=5411", "--json"]
    assert query_command.main(argv, client=cw, now=NOW) == 0
    out = json.loads(capsys.readouterr().out)
    assert out["namespace"] == "RollguardX"
    assert out["dimensions"] == {"EndpointName": "fraud-ep", "VariantName": "v6", "ModelVersion": "fraud-v6",
                                 "merchant_category": "5411"}
    assert (out["start"], out["end"], out["period"]) == ("2026-11-21T08:05:00Z", "2026-11-21T09:10:00Z", 300)
    assert [p["start"] for p in out["periods"]] == ["2026-11-21T08:00:00Z", "2026-11-21T08:05:00Z"]
    assert out["periods"][0]["metrics"]["recall"]["value"] == 0.8
    assert out["total"]["counts"] == {"tp": 10.0, "fn": 10.0, "labeled": 90.0}
    assert out["total"]["metrics"]["recall"] == {"value": 0.5, "sample": 20.0,
                                                 "lower_bound": pytest.approx(wilson_lower_bound(10, 20))}
    assert out["total"]["metrics"]["labeled"]["value"] == 90.0
    assert out["total"]["metrics"]["p99_latency"] == {"value": 40.0, "sample": 100.0}
    assert out["notes"] == []
    # every query names the full, exact dimension set; counts by Sum; pages followed
    sent = [q for r in cw.requests for q in r["MetricDataQueries"]]
    for q in sent:
        ms = q["MetricStat"]
        assert ms["Metric"]["Namespace"] == "RollguardX"
        assert {d["Name"]: d["Value"] for d in ms["Metric"]["Dimensions"]} == out["dimensions"]
    stats = {(q["MetricStat"]["Metric"]["MetricName"], q["MetricStat"]["Stat"]) for q in sent}
    assert stats == {("TruePositives", "Sum"), ("FalseNegatives", "Sum"), ("Labeled", "Sum"),
                     ("Latency", "SampleCount"), ("Latency", "p99")}
    assert all(r.get("ScanBy") == "TimestampAscending" for r in cw.requests)
    assert any("NextToken" in r for r in cw.requests)


def test_query_without_percentiles_still_answers_with_a_note(capsys: pytest.CaptureFixture[str]) -> None:
    cw = FakeCloudWatch(DATA, fail_percentiles=True)
    assert query_command.main(["--endpoint", "e", "--variant", "v", "--metric", "latency,recall", "--json"],
                      client=cw, now=NOW) == 0
    out = json.loads(capsys.readouterr().out)
    assert out["total"]["metrics"]["recall"]["value"] == 0.5
    assert out["total"]["metrics"]["p99_latency"] == {"value": None, "sample": 100.0}
    assert out["notes"] == ["latency percentiles unavailable: RuntimeError: An error occurred (500) when calling "
                            "the GetMetricData operation"]


def test_query_table(capsys: pytest.CaptureFixture[str]) -> None:
    assert query_command.main(["--endpoint", "fraud-ep", "--variant", "v6", "--metric", "recall,labeled,p50_latency",
                       "--since", "2026-11-21T08:00:00Z", "--until", "2026-11-21T08:10:00Z"],
                      client=FakeCloudWatch(DATA), now=NOW) == 0
    lines = capsys.readouterr().out.splitlines()
    assert lines[0] == "Rollguard  EndpointName=fraud-ep VariantName=v6"
    assert lines[1] == "2026-11-21T08:00:00Z .. 2026-11-21T08:10:00Z, period 300 s (UTC)"
    assert lines[3].split() == ["period", "start", "recall", "n", "labeled", "p50_latency", "n"]
    assert lines[4].split() == ["2026-11-21", "08:00", "0.8000", "10", "50", "12.0", "60"]
    assert lines[5].split() == ["2026-11-21", "08:05", "0.2000", "10", "40", "13.0", "40"]
    assert lines[6].split() == ["total", "0.5000", "20", "90", "-", "100"]


def test_query_with_no_data_says_so(capsys: pytest.CaptureFixture[str]) -> None:
    assert query_command.main(["--endpoint", "e", "--variant", "v", "--metric", "precision"],
                      client=FakeCloudWatch({}), now=NOW) == 0
    out = capsys.readouterr().out
    assert "no datapoints in this range for exactly these dimensions" in out
    assert out.splitlines()[-1].split() == ["total", "-", "0"]


@pytest.mark.parametrize("argv,message", [
    (["--metric", "recal"], "unknown metric 'recal'"),
    (["--metric", "recall", "--period", "90"], "--period must be a positive multiple of 60"),
    (["--metric", "recall", "--since", "1h", "--until", "2h"], "must be before --until"),
    (["--metric", "recall", "--since", "tomorrow"], "cannot read time 'tomorrow'"),
    (["--metric", "recall", "--segment", "5411"], "--segment must be ATTRIBUTE=VALUE"),
])
def test_query_argument_errors(argv: list[str], message: str, capsys: pytest.CaptureFixture[str]) -> None:
    with pytest.raises(SystemExit) as exc:
        query_command.main(["--endpoint", "e", "--variant", "v", *argv], client=FakeCloudWatch({}), now=NOW)
    assert exc.value.code == 2
    assert message in capsys.readouterr().err


def test_query_reports_a_cloudwatch_failure_in_one_line(capsys: pytest.CaptureFixture[str]) -> None:
    class Broken(Paginated):
        def get_metric_data(self, **kwargs: Any) -> dict[str, Any]:
            raise ConnectionError("Could not connect to the endpoint URL\nsecond line")

    assert query_command.main(["--endpoint", "e", "--variant", "v", "--metric", "recall"], client=Broken(), now=NOW) == 1
    err = capsys.readouterr().err
    assert err == "rollguard query: GetMetricData failed: ConnectionError: Could not connect to the endpoint URL\n"


# -- a comparison's Verdict history ------------------------------------------------------------

VERDICTS = {("Verdict", "Maximum", 300): {T1: 1.0, T3: 2.0, datetime(2026, 11, 21, 8, 15, tzinfo=UTC): 2.0}}
COMPARISON_RANGE = ["--since", "2026-11-21T08:00:00Z", "--until", "2026-11-21T08:20:00Z"]


def test_comparison_history_json_shows_missing_periods(capsys: pytest.CaptureFixture[str]) -> None:
    cw = FakeCloudWatch(VERDICTS)
    argv = ["--endpoint", "fraud-ep", "--comparison", "v6-vs-v5", *COMPARISON_RANGE, "--json"]
    assert query_command.main(argv, client=cw, now=NOW) == 0
    out = json.loads(capsys.readouterr().out)
    assert out["dimensions"] == {"EndpointName": "fraud-ep", "Comparison": "v6-vs-v5"}
    assert (out["metric"], out["statistic"], out["period"]) == ("Verdict", "Maximum", 300)
    assert out["periods"] == [
        {"start": "2026-11-21T08:00:00Z", "value": 1.0, "state": "INCONCLUSIVE"},
        {"start": "2026-11-21T08:05:00Z", "value": None, "state": "MISSING"},
        {"start": "2026-11-21T08:10:00Z", "value": 2.0, "state": "FAIL"},
        {"start": "2026-11-21T08:15:00Z", "value": 2.0, "state": "FAIL"},
    ]
    assert out["summary"] == {"PASS": 0, "INCONCLUSIVE": 1, "FAIL": 2, "MISSING": 1}
    [request] = cw.requests
    [q] = request["MetricDataQueries"]
    assert q["MetricStat"] == {"Metric": {"Namespace": "Rollguard", "MetricName": "Verdict",
                                          "Dimensions": [{"Name": "EndpointName", "Value": "fraud-ep"},
                                                         {"Name": "Comparison", "Value": "v6-vs-v5"}]},
                               "Period": 300, "Stat": "Maximum"}


def test_comparison_history_table_folds_runs(capsys: pytest.CaptureFixture[str]) -> None:
    argv = ["--endpoint", "fraud-ep", "--comparison", "v6-vs-v5", *COMPARISON_RANGE]
    assert query_command.main(argv, client=FakeCloudWatch(VERDICTS), now=NOW) == 0
    lines = capsys.readouterr().out.splitlines()
    assert lines[0] == "Rollguard  Verdict EndpointName=fraud-ep Comparison=v6-vs-v5"
    assert lines[1] == "2026-11-21T08:00:00Z .. 2026-11-21T08:20:00Z, period 300 s (UTC), Maximum per period"
    assert [line.split() for line in lines[3:6]] == [
        ["2026-11-21", "08:00", "..", "2026-11-21", "08:05", "INCONCLUSIVE", "1", "period"],
        ["2026-11-21", "08:05", "..", "2026-11-21", "08:10", "MISSING", "1", "period"],
        ["2026-11-21", "08:10", "..", "2026-11-21", "08:20", "FAIL", "2", "periods"],
    ]
    assert lines[7] == "periods: PASS 0, INCONCLUSIVE 1, FAIL 2, MISSING 1"
    assert lines[8].startswith("note: missing periods read as ALARM on the fail-safe Verdict alarm")


def test_verdict_periods_and_unknown_values() -> None:
    start, end = datetime(2026, 11, 21, 8, 0, tzinfo=UTC), datetime(2026, 11, 21, 8, 3, tzinfo=UTC)
    periods = query.verdict_periods({datetime(2026, 11, 21, 8, 1, tzinfo=UTC): 0.0,
                                     datetime(2026, 11, 21, 8, 2, tzinfo=UTC): 7.0}, start, end, 60)
    assert [p.state for p in periods] == ["MISSING", "PASS", "UNKNOWN(7)"]


@pytest.mark.parametrize("argv,message", [
    (["--comparison", "c", "--variant", "v"], "--comparison reads the Verdict metric (dimensions EndpointName, "
                                              "Comparison) and takes no --variant"),
    (["--comparison", "c", "--metric", "recall", "--segment", "a=b"], "takes no --metric/--segment"),
    (["--comparison", " "], "--comparison needs the comparison's name"),
    ([], "--variant and --metric are required (or --comparison NAME for a comparison's Verdict history)"),
    (["--variant", "v"], "--metric is required (or --comparison NAME"),
    (["--metric", "recall"], "--variant is required"),
])
def test_comparison_or_variant_and_metric(argv: list[str], message: str, capsys: pytest.CaptureFixture[str]) -> None:
    with pytest.raises(SystemExit) as exc:
        query_command.main(["--endpoint", "e", *argv], client=FakeCloudWatch({}), now=NOW)
    assert exc.value.code == 2
    assert message in capsys.readouterr().err
