"""What one spec alarm watches: its own variant of an endpoint (shadow captures are counted under
the shadow variant), and only periods the published data can fill (60 s resolution)."""
from __future__ import annotations

import textwrap
from pathlib import Path
from typing import Any

import pytest
import yaml

from alarms.spec import SpecError, SpecFile, expand, guardrail_alarm_names, load_spec, parse_spec

EXAMPLE = Path(__file__).resolve().parents[3] / "examples" / "alarms.yaml"
SHADOW = {"name": "agreement", "metric": "shadow_agreement", "threshold": 0.95, "variant": "v6-shadow"}
RECALL = {"name": "recall", "metric": "recall", "threshold": 0.8}


def spec(*alarms: dict[str, Any], **endpoint: Any) -> SpecFile:
    ep = {"name": "fraud-ep", "variant": "AllTraffic", **endpoint, "alarms": list(alarms)}
    ep = {k: v for k, v in ep.items() if v is not None}
    return parse_spec(yaml.safe_dump({"name": "fraud", "endpoints": [ep]}, sort_keys=False), source="t.yaml")


def error(text: str, tmp_path: Path) -> str:
    path = tmp_path / "alarms.yaml"
    path.write_text(textwrap.dedent(text).lstrip(), encoding="utf-8")
    with pytest.raises(SpecError) as info:
        load_spec(path)
    return str(info.value)


def test_the_example_shadow_alarm_watches_the_shadow_variant_of_the_endpoint() -> None:
    alarms = {a.short_name: a for a in expand(load_spec(EXAMPLE))}
    shadow = alarms["shadow-agreement"]
    assert shadow.dimensions == (("EndpointName", "fraud-ep"), ("VariantName", "v6-shadow"))
    assert shadow.name == "rollguard-fraud-ep-v6-shadow-shadow-agreement"
    assert all(a.endpoint == "fraud-ep" for a in alarms.values())  # no series "fraud-ep-shadow" is ever published
    assert {a.variant for a in alarms.values()} == {"AllTraffic", "v6-shadow"}


def test_an_alarm_variant_overrides_the_endpoints_variant_or_variants() -> None:
    one = spec(RECALL, SHADOW)
    assert [(a.variant, a.name) for a in expand(one)] == [
        ("AllTraffic", "rollguard-fraud-ep-AllTraffic-recall"),
        ("v6-shadow", "rollguard-fraud-ep-v6-shadow-agreement"),
    ]
    several = spec(RECALL, SHADOW, variant=None, variants=["blue", "green"])
    assert [a.name for a in expand(several)] == [
        "rollguard-fraud-ep-blue-recall", "rollguard-fraud-ep-green-recall", "rollguard-fraud-ep-v6-shadow-agreement"]
    assert guardrail_alarm_names(one, "fraud-ep") == [a.name for a in expand(one)]


def test_an_endpoint_needs_no_variant_when_every_alarm_names_its_own() -> None:
    (only,) = expand(spec(SHADOW, variant=None))
    assert only.dimensions[1] == ("VariantName", "v6-shadow")
    with pytest.raises(SpecError, match=r"set exactly one of variant \(a name\) or variants .*or variant on every alarm"):
        spec(SHADOW, RECALL, variant=None)


def test_one_short_name_may_serve_two_variants_but_not_one_twice() -> None:
    shadow_recall = {**RECALL, "variant": "v6-shadow"}
    assert [a.name for a in expand(spec(RECALL, shadow_recall))] == [
        "rollguard-fraud-ep-AllTraffic-recall", "rollguard-fraud-ep-v6-shadow-recall"]
    with pytest.raises(SpecError, match="alarm name 'recall' is used twice in endpoint fraud-ep for variant v6-shadow"):
        spec(shadow_recall, shadow_recall)
    with pytest.raises(SpecError, match="used twice in endpoint fraud-ep"):
        spec({**RECALL, "variant": "AllTraffic"}, RECALL)


def test_a_bad_alarm_variant_names_file_line_and_key(tmp_path: Path) -> None:
    message = error("""
        name: fraud
        endpoints:
          - name: fraud-ep
            variant: AllTraffic
            alarms:
              - name: agreement
                metric: shadow_agreement
                threshold: 0.95
                variant: v6_shadow
    """, tmp_path)
    assert message.startswith(f"{tmp_path / 'alarms.yaml'}:9: endpoints[0].alarms[0].variant: variant name must be")
    assert "defaults.variant: unknown key" in error("""
        name: fraud
        defaults: {variant: v6-shadow}
        endpoints: [{name: fraud-ep, variant: AllTraffic, alarms: [{name: r, metric: recall, threshold: 0.8}]}]
    """, tmp_path)


HIGH_RES = "need high-resolution metrics, and rollguard publishes at 60 s resolution"


@pytest.mark.parametrize("period", [10, 20, 30])
def test_high_resolution_periods_are_refused_with_file_line_and_key(tmp_path: Path, period: int) -> None:
    message = error(f"""
        name: fraud
        endpoints:
          - name: fraud-ep
            variant: AllTraffic
            alarms:
              - name: recall
                metric: recall
                threshold: 0.8
                period: {period}
    """, tmp_path)
    assert message == (f"{tmp_path / 'alarms.yaml'}:9: endpoints[0].alarms[0].period: period must be a multiple "
                       f"of 60 seconds; got {period} (10, 20 and 30 s alarms {HIGH_RES})")
    in_defaults = error(f"""
        name: fraud
        defaults:
          period: {period}
        endpoints: [{{name: fraud-ep, variant: AllTraffic, alarms: [{{name: r, metric: recall, threshold: 0.8}}]}}]
    """, tmp_path)
    assert in_defaults.splitlines()[0] == (f"{tmp_path / 'alarms.yaml'}:3: defaults.period: period must be a "
                                           f"multiple of 60 seconds; got {period} (10, 20 and 30 s alarms {HIGH_RES})")


def test_minute_periods_still_load() -> None:
    assert [a.period for a in expand(spec({**RECALL, "period": 60}, {**SHADOW, "period": 300}))] == [60, 300]
