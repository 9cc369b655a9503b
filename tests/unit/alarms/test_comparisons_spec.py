"""Comparisons in the alarm spec (SPEC.md "Comparisons and verdicts"): the schema, its one-line,
line-numbered errors, and the conversion to `pipelines.comparison.config.Comparison`."""
from __future__ import annotations

import textwrap
from pathlib import Path

import pytest

from alarms.spec import SpecError, comparisons, load_spec, parse_spec, spec_warnings, verdict_alarms
from pipelines.comparison.config import DEFAULT_CONCURRENT_WITHIN_S, MAX_PER_ENDPOINT, Arm, Comparison, MetricSpec

# SPEC.md's example, verbatim but for the comments
SPEC_MD = """\
name: fraud
comparisons:
  - name: v6-vs-v5
    endpoint: fraud-ep
    baseline: {variant: v5}
    candidate: {variant: v6-shadow}
    metrics:
      recall: {tolerance: 0.02}
      precision: {tolerance: 0.02}
      error_rate: {tolerance: 0.005}
      latency_over: {threshold_ms: 40, tolerance: 0.005}
    segments: [merchant_category]
    min_samples: 30
    alpha: 0.01
"""

TOML = """\
name = "fraud"

[[comparisons]]
name = "v6-vs-v5"
endpoint = "fraud-ep"
baseline = {variant = "v5"}
candidate = {variant = "v6-shadow"}
segments = ["merchant_category"]
min_samples = 30
alpha = 0.01

[comparisons.metrics]
recall = {tolerance = 0.02}
precision = {tolerance = 0.02}
error_rate = {tolerance = 0.005}
latency_over = {threshold_ms = 40, tolerance = 0.005}
"""

V6_VS_V5 = Comparison(
    name="v6-vs-v5",
    endpoint="fraud-ep",
    baseline=Arm(variant="v5"),
    candidate=Arm(variant="v6-shadow"),
    metrics=(
        MetricSpec("recall", 0.02), MetricSpec("precision", 0.02), MetricSpec("error_rate", 0.005),
        MetricSpec("latency_over", 0.005, threshold_ms=40.0),
    ),
    segments=("merchant_category",),
    min_samples=30,
    alpha=0.01,
)

# one comparison per line, so a test can replace one key and know the line it is on
ONE = """\
name: s
comparisons:
  - name: c1
    endpoint: fraud-ep
    baseline: {model_version: fraud-v5}
    candidate: {model_version: fraud-v6}
    metrics:
      recall: {tolerance: 0.02}
"""


def write(tmp_path: Path, text: str, name: str = "alarms.yaml") -> Path:
    path = tmp_path / name
    path.write_text(textwrap.dedent(text))
    return path


def errors(tmp_path: Path, text: str) -> list[str]:
    with pytest.raises(SpecError) as exc:
        load_spec(write(tmp_path, text))
    return list(exc.value.problems)


def only_error(tmp_path: Path, text: str) -> str:
    (problem,) = errors(tmp_path, text)
    assert "\n" not in problem
    return problem.removeprefix(f"{tmp_path / 'alarms.yaml'}:")


# ---------------------------------------------------------------------------------------------
# what loads, and what it becomes


def test_the_spec_md_example_loads_and_converts(tmp_path: Path) -> None:
    spec = load_spec(write(tmp_path, SPEC_MD))
    assert spec.endpoints == ()  # a spec with only comparisons is valid
    assert comparisons(spec) == (V6_VS_V5,)
    assert comparisons(spec)[0].concurrent_within_s == DEFAULT_CONCURRENT_WITHIN_S
    (verdict,) = verdict_alarms(spec)
    assert verdict.name == "rollguard-fraud-ep-verdict-v6-vs-v5" and verdict.guardrail
    assert verdict.dimensions == (("EndpointName", "fraud-ep"), ("Comparison", "v6-vs-v5"))


def test_toml_carries_the_same_comparison(tmp_path: Path) -> None:
    assert comparisons(load_spec(write(tmp_path, TOML, "alarms.toml"))) == (V6_VS_V5,)


def test_defaults_and_optional_keys() -> None:
    spec = parse_spec(ONE + "    guardrail: false\n    concurrent_within_s: 120\n    description: mine\n")
    (c,) = comparisons(spec)
    assert (c.segments, c.min_samples, c.alpha, c.concurrent_within_s) == ((), 30, 0.01, 120)
    assert c.metrics == (MetricSpec("recall", 0.02),) and c.baseline == Arm(model_version="fraud-v5")
    (verdict,) = verdict_alarms(spec)
    assert not verdict.guardrail and verdict.description == "mine"


def test_metrics_come_in_the_canonical_order_whatever_the_file_says() -> None:
    text = ONE.replace("      recall: {tolerance: 0.02}\n",
                       "      latency_over: {threshold_ms: 40, tolerance: 0.01}\n      recall: {tolerance: 0.02}\n")
    (c,) = comparisons(parse_spec(text))
    assert [m.name for m in c.metrics] == ["recall", "latency_over"]


def test_comparisons_beside_endpoints_and_with_empty_endpoints() -> None:
    both = parse_spec("""\
name: s
endpoints:
  - {name: fraud-ep, variant: AllTraffic, alarms: [{name: recall, metric: recall, threshold: 0.8}]}
""" + ONE.split("\n", 1)[1])
    assert [c.name for c in comparisons(both)] == ["c1"] and len(both.endpoints) == 1
    assert comparisons(parse_spec(ONE.replace("name: s\n", "name: s\nendpoints: []\n", 1)))[0].name == "c1"


def test_defaults_give_a_comparison_their_actions_only() -> None:
    arn, own = "arn:aws:sns:us-east-1:123456789012:page", "arn:aws:sns:us-east-1:123456789012:mine"
    text = f"name: s\ndefaults: {{alarm_actions: ['{arn}'], period: 300}}\n" + ONE.split("\n", 1)[1]
    second = "  - name: c2\n    endpoint: fraud-ep\n    baseline: {variant: a}\n    candidate: {variant: b}\n" \
             f"    metrics: {{recall: {{tolerance: 0.02}}}}\n    alarm_actions: ['{own}']\n"
    first, mine = verdict_alarms(parse_spec(text + second))
    assert first.alarm_actions == (arn,) and mine.alarm_actions == (own,)


def test_the_example_spec_has_the_story_comparisons() -> None:
    spec = load_spec(Path(__file__).resolve().parents[3] / "examples" / "alarms.yaml")
    shadow, shift = comparisons(spec)
    assert (shadow.name, shadow.baseline, shadow.candidate) == (
        "v6-shadow-vs-v5", Arm("AllTraffic", "fraud-v5"), Arm(variant="v6-shadow"))
    assert (shift.name, shift.baseline, shift.candidate) == (
        "fraud-v6-vs-v5", Arm(model_version="fraud-v5"), Arm(model_version="fraud-v6"))
    for c in (shadow, shift):
        assert [m.name for m in c.metrics] == ["recall", "precision", "error_rate", "latency_over"]
        assert c.metric("latency_over") == MetricSpec("latency_over", 0.005, 40.0)
        assert c.segments == ("merchant_category",)
    # the shadow arm is a shadow variant; the shift's arms, without a variant, never match it
    assert not shift.candidate.matches("v6-shadow", "fraud-v6", shadow=True)
    assert shadow.candidate.matches("v6-shadow", "fraud-v6", shadow=True)
    assert [v.guardrail for v in verdict_alarms(spec)] == [False, True]


# ---------------------------------------------------------------------------------------------
# refusals: one line each, with the line and the key path


@pytest.mark.parametrize(
    ("old", "new", "expected"),
    [
        ("  - name: c1", "  - name: -c1",
         "3: comparisons[0].name: comparison name must match [A-Za-z0-9][A-Za-z0-9_-]{0,63}"),
        ("endpoint: fraud-ep", "endpoint: fraud_ep",
         "4: comparisons[0].endpoint: endpoint name must be 1-63 letters, digits and hyphens"),
        ("recall: {", "recal: {",
         "8: comparisons[0].metrics.recal: unknown comparison metric 'recal'; allowed: recall, precision, error_rate, latency_over"),
        ("tolerance: 0.02", "tolerance: 1.0",
         "8: comparisons[0].metrics.recall.tolerance: tolerance must be in [0, 1)"),
        ("tolerance: 0.02", "tolerance: -0.01",
         "8: comparisons[0].metrics.recall.tolerance: tolerance must be in [0, 1)"),
        ("tolerance: 0.02", "tolerance: .nan",
         "8: comparisons[0].metrics.recall.tolerance: tolerance must be in [0, 1)"),
        ("recall: {tolerance: 0.02}", "latency_over: {tolerance: 0.02}",
         "8: comparisons[0].metrics.latency_over.threshold_ms: required key is missing"),
        ("recall: {tolerance: 0.02}", "latency_over: {tolerance: 0.02, threshold_ms: 0}",
         "8: comparisons[0].metrics.latency_over.threshold_ms: threshold_ms must be a number of milliseconds > 0; got 0"),
        ("recall: {tolerance: 0.02}", "recall: {tolerance: 0.02, threshold_ms: 40}",
         "8: comparisons[0].metrics.recall.threshold_ms: unknown key 'threshold_ms'; allowed: tolerance"),
        ("      recall: {tolerance: 0.02}\n", "      {}\n",
         "7: comparisons[0].metrics: list at least one metric: recall, precision, error_rate, latency_over"),
        ("{model_version: fraud-v6}", "{}",
         "6: comparisons[0].candidate: an arm needs a variant, a model_version or both"),
        ("{model_version: fraud-v6}", "{variant: v6.shadow}",
         "6: comparisons[0].candidate.variant: variant name must be"),
        ("{model_version: fraud-v6}", "{model_version: fraud v6}",
         "6: comparisons[0].candidate.model_version: model_version must be 1-128 printable ASCII"),
        ("{model_version: fraud-v6}", "{model_version: 6}",
         "6: comparisons[0].candidate.model_version: Input should be a valid string; got 6"),
        ("{model_version: fraud-v6}", "{model: fraud-v6}",
         "6: comparisons[0].candidate.model: unknown key 'model'; allowed: variant, model_version"),
        ("{model_version: fraud-v6}", "{model_version: fraud-v5}",
         "3: comparisons[0]: baseline and candidate are the same captures (model version fraud-v5)"),
        ("  - name: c1", "  - name: c1\n    alpha: 0", "4: comparisons[0].alpha: alpha must be in (0, 1)"),
        ("  - name: c1", "  - name: c1\n    alpha: 1", "4: comparisons[0].alpha: alpha must be in (0, 1)"),
        ("  - name: c1", "  - name: c1\n    min_samples: 0",
         "4: comparisons[0].min_samples: Input should be greater than or equal to 1; got 0"),
        ("  - name: c1", "  - name: c1\n    concurrent_within_s: 0",
         "4: comparisons[0].concurrent_within_s: Input should be greater than or equal to 1"),
        ("  - name: c1", "  - name: c1\n    segments: [a, a]", "4: comparisons[0].segments: segments must be unique"),
        ("  - name: c1", "  - name: c1\n    alhpa: 0.01",
         "4: comparisons[0].alhpa: unknown key 'alhpa'; allowed: name, endpoint, baseline, candidate, metrics"),
    ],
)
def test_a_bad_comparison_is_refused_in_one_line(tmp_path: Path, old: str, new: str, expected: str) -> None:
    assert old in ONE
    assert only_error(tmp_path, ONE.replace(old, new, 1)).startswith(expected)


def test_a_missing_key_names_it(tmp_path: Path) -> None:
    assert only_error(tmp_path, ONE.replace("    endpoint: fraud-ep\n", "")) == (
        "3: comparisons[0].endpoint: required key is missing")


def test_names_are_unique_in_the_spec_even_across_endpoints(tmp_path: Path) -> None:
    again = "  - {name: c1, endpoint: other-ep, baseline: {variant: a}, candidate: {variant: b}, metrics: {recall: {tolerance: 0.1}}}\n"
    assert only_error(tmp_path, ONE + again) == (
        "9: comparisons[1].name: comparison name 'c1' is also used by comparisons[0]; names must be unique "
        "in the spec (gate and watch find a comparison by name)")


def test_at_most_max_per_endpoint_comparisons_per_endpoint(tmp_path: Path) -> None:
    def entry(i: int, endpoint: str = "fraud-ep") -> str:
        return (f"  - {{name: c{i}, endpoint: {endpoint}, baseline: {{variant: a}}, candidate: {{variant: b{i}}}, "
                "metrics: {recall: {tolerance: 0.1}}}\n")

    full = "name: s\ncomparisons:\n" + "".join(entry(i) for i in range(MAX_PER_ENDPOINT))
    assert len(comparisons(parse_spec(full + entry(99, "other-ep")))) == MAX_PER_ENDPOINT + 1
    message = only_error(tmp_path, full + entry(MAX_PER_ENDPOINT))
    assert message == (
        f"{MAX_PER_ENDPOINT + 3}: comparisons[{MAX_PER_ENDPOINT}].endpoint: endpoint fraud-ep has more than "
        f"{MAX_PER_ENDPOINT} comparisons, the most one endpoint may carry (each takes one bit of every pending capture)")


def test_a_verdict_alarm_name_taken_by_an_alarm_is_refused(tmp_path: Path) -> None:
    # variant "verdict" with alarm "c1" is rollguard-fraud-ep-verdict-c1 too
    text = "name: s\nendpoints:\n  - {name: fraud-ep, variant: verdict, alarms: [{name: c1, metric: recall, threshold: 0.8}]}\n"
    message = only_error(tmp_path, text + ONE.split("\n", 1)[1])
    assert message == ("5: comparisons[0].name: verdict alarm name rollguard-fraud-ep-verdict-c1 is also produced by "
                       "endpoints[0].alarms[0]; rename one")


def test_a_spec_needs_endpoints_or_comparisons(tmp_path: Path) -> None:
    for text in ("name: s\n", "name: s\nendpoints: []\n", "name: s\nendpoints: []\ncomparisons: []\n"):
        assert only_error(tmp_path, text).endswith(
            "(top level): list at least one endpoint (endpoints) or comparison (comparisons)")


def test_toml_errors_name_the_key_path(tmp_path: Path) -> None:
    with pytest.raises(SpecError) as exc:
        load_spec(write(tmp_path, TOML.replace("recall = {tolerance = 0.02}", "recall = {tolerance = 2}"), "alarms.toml"))
    assert str(exc.value).startswith(f"{tmp_path / 'alarms.toml'}: comparisons[0].metrics.recall.tolerance: tolerance must be in [0, 1)")


# ---------------------------------------------------------------------------------------------
# warnings: valid, probably a mistake


def test_a_comparison_on_an_endpoint_the_spec_does_not_list_is_warned_about() -> None:
    text = "name: s\nendpoints:\n  - {name: fraud-ep, variant: AllTraffic, alarms: [{name: r, metric: recall, threshold: 0.8}]}\n"
    typo = ONE.split("\n", 1)[1].replace("endpoint: fraud-ep", "endpoint: fraud-e")
    (warning,) = spec_warnings(parse_spec(text + typo))
    assert warning.startswith("comparison c1: endpoint fraud-e is not among the spec's endpoints (fraud-ep)")
    assert spec_warnings(parse_spec(ONE.replace("endpoint: fraud-ep", "endpoint: fraud-e"))) == []  # none listed


def test_more_guardrail_alarms_than_sagemaker_takes_is_warned_about() -> None:
    alarms = ", ".join(f"{{name: a{i}, metric: recall, threshold: 0.8}}" for i in range(10))
    text = f"name: s\nendpoints:\n  - {{name: fraud-ep, variant: AllTraffic, alarms: [{alarms}]}}\n"
    (warning,) = spec_warnings(parse_spec(text + ONE.split("\n", 1)[1]))
    assert warning.startswith("endpoint fraud-ep: 10 guardrail alarms and 1 comparison verdicts, but SageMaker's "
                              "AutoRollbackConfiguration takes at most 10")
    assert spec_warnings(parse_spec(text + ONE.split("\n", 1)[1] + "    guardrail: false\n")) == []
