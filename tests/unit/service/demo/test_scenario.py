"""The demo's spec goes through rollguard's own spec code: two comparisons, the guardrail's alarms."""
from __future__ import annotations

from alarms.guardrail import build_update_endpoint
from alarms.spec import comparisons, guardrail_alarms, guardrail_verdicts, spec_warnings
from alarms.spec.loader import parse_spec
from service.demo.behaviour import REGRESSED_CATEGORY, V6_GOOD, V6_REGRESSED
from service.demo.scenario import FAST, GATE, NORMAL, SHIFT, Scenario, segment_values, spec_yaml


def test_flags_choose_the_candidate_and_the_clock() -> None:
    assert Scenario.of().candidate == V6_REGRESSED and V6_REGRESSED.recall_in(REGRESSED_CATEGORY) == 0.5
    assert Scenario.of(good=True).candidate == V6_GOOD
    regress = Scenario.of(regress_after_shift="errors", fast=True)
    assert regress.good and regress.timing == FAST and regress.rate > Scenario.of().rate
    assert Scenario.of().timing == NORMAL and Scenario.of().steps == tuple(range(10, 101, 10))
    assert NORMAL.shadow_s == 7 * 24.0


def test_the_spec_has_the_stories_comparisons_and_a_guardrail_sagemaker_accepts() -> None:
    spec = parse_spec(spec_yaml(Scenario.of()), "demo.yaml")
    found = {c.name: c for c in comparisons(spec)}
    assert set(found) == {GATE, SHIFT}
    assert found[GATE].candidate.variant == "v6-shadow" and found[SHIFT].candidate.model_version == "fraud-v6"
    assert found[GATE].segments == ("merchant_category",) and found[GATE].alpha == 0.01
    names = [*guardrail_alarms(spec, "fraud-ep"), *guardrail_verdicts(spec, "fraud-ep")]
    assert names == ["rollguard-fraud-ep-AllTraffic.fraud-v6-error-rate", f"rollguard-fraud-ep-verdict-{SHIFT}"]
    build_update_endpoint("fraud-ep", "fraud-ep-v6", names, linear_pct=10, wait_s=10)  # does not raise
    assert not [w for w in spec_warnings(spec)]
    assert segment_values() == "merchant_category=5812|5999|4829|5411"
