"""Period aggregation of MetricDatum values into CloudWatch statistics."""
from __future__ import annotations

import numpy as np
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from alarms.evaluator import (
    Datum,
    DatumError,
    StatisticSet,
    aggregate,
    aggregate_periods,
    datum_from_cloudwatch,
    parse_datapoints,
    percentile,
)


def test_value_values_counts_and_statistic_sets_add_up() -> None:
    data = [
        datum_from_cloudwatch({"Timestamp": 0, "Value": 4.0}),
        datum_from_cloudwatch({"Timestamp": 10, "Values": [1.0, 10.0], "Counts": [3, 1]}),
        datum_from_cloudwatch(
            {"Timestamp": 20, "StatisticValues": {"SampleCount": 2, "Sum": 6, "Minimum": 2, "Maximum": 4}}
        ),
    ]
    stats = aggregate(data)
    assert stats is not None
    assert stats.sample_count == 1 + 4 + 2
    assert stats.sum == 4 + 13 + 6
    assert stats.minimum == 1.0 and stats.maximum == 10.0
    assert stats.statistic("Average") == pytest.approx(23 / 7)
    assert stats.statistic("SampleCount") == 7
    # a statistic set with SampleCount 2 and Min != Max has no percentiles (documented)
    assert stats.statistic("p50") is None


def test_percentiles_from_values_and_counts_match_numpy() -> None:
    datum = datum_from_cloudwatch({"Timestamp": 0, "Values": [12.5, 3.0, 40.0, 7.25], "Counts": [10, 2, 1, 30]})
    stats = aggregate([datum])
    assert stats is not None
    sample = np.repeat([12.5, 3.0, 40.0, 7.25], [10, 2, 1, 30])
    for name, q in (("p50", 50), ("p90", 90), ("p99", 99), ("p99.9", 99.9), ("p0", 0), ("p100", 100)):
        assert stats.statistic(name) == pytest.approx(float(np.percentile(sample, q)))


@settings(max_examples=200, deadline=None)
@given(
    pairs=st.lists(
        st.tuples(st.floats(0, 1e6, allow_nan=False), st.integers(1, 20)), min_size=1, max_size=30
    ),
    q=st.floats(0, 100),
)
def test_percentile_equals_numpy_linear_on_the_expanded_sample(pairs: list[tuple[float, int]], q: float) -> None:
    sample = np.repeat([v for v, _ in pairs], [c for _, c in pairs])
    expected = float(np.percentile(sample, q))
    assert percentile([(v, float(c)) for v, c in pairs], q) == pytest.approx(expected, rel=1e-9, abs=1e-9)


def test_no_percentile_when_a_value_is_negative() -> None:
    stats = aggregate([Datum(0, (-1.0, 5.0), (1.0, 1.0))])
    assert stats is not None
    assert stats.statistic("Minimum") == -1.0
    assert stats.statistic("p50") is None


def test_statistic_set_with_one_sample_or_equal_min_max_has_percentiles() -> None:
    stats = aggregate(
        [
            Datum(0, statistics=StatisticSet(1, 5, 5, 5)),
            Datum(0, statistics=StatisticSet(3, 6, 2, 2)),
        ]
    )
    assert stats is not None
    assert stats.statistic("p50") == 2.0
    assert stats.statistic("p90") == pytest.approx(float(np.percentile([2, 2, 2, 5], 90)))


def test_aggregate_periods_buckets_by_stored_time() -> None:
    data = [
        Datum(59, (1.0,), (1.0,)),
        Datum(61, (2.0,), (1.0,)),
        Datum(119.9, (4.0,), (1.0,)),
        Datum(300, (8.0,), (1.0,)),
    ]
    periods = aggregate_periods(data, 60)
    assert sorted(periods) == [0, 60, 300]
    assert periods[60].sum == 6.0
    assert aggregate([]) is None


def test_standard_resolution_is_stored_by_the_minute() -> None:
    standard = datum_from_cloudwatch({"Timestamp": "2026-11-21T09:05:35Z", "Value": 1})
    high = datum_from_cloudwatch({"Timestamp": "2026-11-21T09:05:35Z", "Value": 1, "StorageResolution": 1})
    assert standard.stored_at % 60 == 0
    assert high.stored_at % 60 == 35
    assert aggregate_periods([standard], 10).keys() == {standard.stored_at}


def test_timestamps_iso_or_epoch_seconds() -> None:
    iso = datum_from_cloudwatch({"Timestamp": "2026-11-21T09:05:00Z", "Value": 1})
    offset = datum_from_cloudwatch({"Timestamp": "2026-11-21T10:05:00+01:00", "Value": 1})
    epoch = datum_from_cloudwatch({"Timestamp": iso.timestamp, "Value": 1})
    assert iso.timestamp == offset.timestamp == epoch.timestamp


@pytest.mark.parametrize(
    ("raw", "fragment"),
    [
        ({"Value": 1}, "Timestamp"),
        ({"Timestamp": "soon", "Value": 1}, "Timestamp"),
        ({"Timestamp": 1795251600000, "Value": 1}, "looks like epoch milliseconds"),
        ({"Timestamp": 0}, "exactly one of Value, StatisticValues or Values"),
        ({"Timestamp": 0, "Value": 1, "Values": [1]}, "exactly one of"),
        ({"Timestamp": 0, "Values": [1, 2], "Counts": [1]}, "Counts has 1 entries but Values has 2"),
        ({"Timestamp": 0, "Values": list(range(151))}, "1 to 150 values"),
        ({"Timestamp": 0, "Value": float("nan")}, "Value"),
        ({"Timestamp": 0, "Value": "3"}, "Value"),
        ({"Timestamp": 0, "Value": 1, "Colour": "red"}, "Colour: unknown parameter"),
        ({"Timestamp": 0, "StatisticValues": {"SampleCount": 0, "Sum": 0, "Minimum": 0, "Maximum": 0}}, "> 0"),
        ({"Timestamp": 0, "Value": 1, "StorageResolution": 5}, "1 or 60"),
    ],
)
def test_bad_datums_are_rejected_with_where_and_why(raw: dict[str, object], fragment: str) -> None:
    with pytest.raises(DatumError, match="datum"):
        datum_from_cloudwatch(raw)
    with pytest.raises(DatumError) as info:
        datum_from_cloudwatch(raw)
    assert fragment in str(info.value)


def test_parse_datapoints_names_the_key_and_index() -> None:
    with pytest.raises(DatumError, match=r"tp\[1\]"):
        parse_datapoints({"tp": [{"Timestamp": 0, "Value": 1}, {"Timestamp": 0}]})
    with pytest.raises(DatumError, match="expected a list"):
        parse_datapoints({"tp": {"Timestamp": 0, "Value": 1}})
