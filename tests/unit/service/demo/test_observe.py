"""What the demo reads from rollguard: window rates from /v1/status, a comparison's state, worst
test and one-line explanation."""
from __future__ import annotations

import pytest

from alarms.spec import comparisons
from alarms.spec.loader import parse_spec
from pipelines.verdict import PairedCounts, Segment, UnpairedCounts, judge
from service.demo.observe import Rate, comparison_view, explain, variants
from service.demo.scenario import GATE, Scenario, spec_yaml

GATE_COMPARISON = next(c for c in comparisons(parse_spec(spec_yaml(Scenario.of()), "demo.yaml")) if c.name == GATE)
CATEGORIES = ("5812", "5999", "4829", "5411")


def test_wilson_bands() -> None:
    assert Rate(0, 0).value is None and Rate(0, 0).band() is None
    low, high = Rate(80, 100).band()  # type: ignore[misc]
    assert low == pytest.approx(0.7112, abs=1e-4) and high == pytest.approx(0.8666, abs=1e-4)
    assert Rate(0, 10).band()[0] == 0.0 and Rate(10, 10).band()[1] == pytest.approx(1.0)  # type: ignore[index]


def test_variants_come_from_the_model_version_series_of_status() -> None:
    doc = {"series": [
        {"dimensions": {"EndpointName": "fraud-ep", "VariantName": "AllTraffic"}, "gauges": {}, "samples": {}},
        {"dimensions": {"EndpointName": "fraud-ep", "VariantName": "v6-shadow", "ModelVersion": "fraud-v6"},
         "gauges": {}, "samples": {"TruePositives": 40, "FalseNegatives": 10, "Invocations": 200, "Errors": 1}},
        {"dimensions": {"EndpointName": "fraud-ep", "VariantName": "AllTraffic", "ModelVersion": "fraud-v5"},
         "gauges": {"LatencyP99": 31.0}, "samples": {"TruePositives": 80, "FalsePositives": 2, "FalseNegatives": 20,
                                                      "Invocations": 500, "Errors": 2, "LatencySamples": 500}},
    ]}
    v5, v6 = variants(doc, ["v6-shadow"])
    assert (v5.label, v5.recall.value, v5.precision.trials, v5.p99_ms, v5.latency_n) == ("fraud-v5 (served)", 0.8, 82, 31.0, 500)
    assert (v6.label, v6.recall.value, v6.error_rate.value, v6.p99_ms) == ("fraud-v6 (shadow)", 0.8, 0.005, None)


def _counts(regressed: bool, n: int):
    counts = {}
    pooled = PairedCounts(0, 0, 0)
    for code in CATEGORIES:
        drop = 0.30 if regressed and code == "5411" else 0.0
        paired = PairedCounts(n, n * (0.02 + drop), n * 0.02)
        counts[("recall", Segment("merchant_category", code))] = paired
        pooled = pooled + paired
        counts[("error_rate", Segment("merchant_category", code))] = UnpairedCounts(3, 1000, 3, 1000)
    counts[("recall", None)] = pooled
    counts[("error_rate", None)] = UnpairedCounts(12, 4000, 12, 4000)
    return counts


def test_a_segment_fail_is_explained_with_the_pooled_recall_beside_it() -> None:
    view = comparison_view(GATE_COMPARISON, judge(GATE_COMPARISON.config(), _counts(True, 150)))
    assert view.state == "FAIL" and view.worst is view.deciding
    assert (view.deciding.metric, view.deciding.segment) == ("recall", "merchant_category=5411")  # type: ignore[union-attr]
    line = explain(view)
    assert line.startswith(f"{GATE} FAIL: recall merchant_category=5411 +30.0 pp [")
    assert "pooled recall +7.5 pp" in line and "tolerance 5 pp" in line and "150 labels" in line


def test_an_undecided_comparison_names_the_test_nearest_to_fail() -> None:
    view = comparison_view(GATE_COMPARISON, judge(GATE_COMPARISON.config(), _counts(True, 40)))
    assert view.state == "INCONCLUSIVE" and view.deciding is None
    assert view.worst is not None and view.worst.segment == "merchant_category=5411"
    assert "tests decided; nearest to FAIL: recall merchant_category=5411" in explain(view)
    empty = comparison_view(GATE_COMPARISON, judge(GATE_COMPARISON.config(), {}))
    assert explain(empty) == f"{GATE} INCONCLUSIVE: no labelled counts yet"
