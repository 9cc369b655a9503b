"""pipelines.comparison.report: the verdict's JSON shape and its fixed-width table."""
from __future__ import annotations

import json
from collections.abc import Mapping, Sequence

from pipelines.comparison.config import Arm, Comparison, MetricSpec
from pipelines.comparison.report import ordered_rows, render, render_plain, verdict_json
from pipelines.comparison.tally import ComparisonTally
from pipelines.verdict import Verdict, judge

CMP = Comparison("v6-vs-v5", "fraud-ep", Arm(variant="v5"), Arm(variant="v6-shadow", model_version="fraud-v6"),
                 (MetricSpec("recall", 0.02), MetricSpec("error_rate", 0.005)), segments=("merchant_category",))

FAIL_CELLS: dict[tuple[str, str, str | None, str | None], list[float]] = {
    ("recall", "paired", None, None): [5000, 400, 150],
    ("recall", "paired", "merchant_category", "5411"): [150, 52, 4],  # 32 points worse: FAIL
    ("recall", "paired", "merchant_category", "5812"): [10, 1, 1],  # under min_samples
    ("recall", "paired", "merchant_category", "5813"): [100, 3, 3],  # judged, undecided
    ("recall", "paired", "merchant_category", "0001"): [4000, 20, 20],  # ties: passes
    ("error_rate", "unpaired", None, None): [216, 43_200, 30, 4_800],
}


def verdict_of(cells: Mapping[tuple[str, str, str | None, str | None], Sequence[float]],
               comparison: Comparison = CMP) -> Verdict:
    tally = ComparisonTally(comparison.fingerprint(), shadow=True)
    for key, deltas in cells.items():
        tally.add(key, deltas)
    return judge(comparison.config(), tally.counts(comparison))


def test_verdict_json_shape() -> None:
    doc = verdict_json(CMP, verdict_of(FAIL_CELLS))
    assert json.loads(json.dumps(doc, allow_nan=False)) == doc  # plain, JSON-safe
    assert {k: doc[k] for k in ("name", "endpoint", "state", "alpha", "deciding")} == {
        "name": "v6-vs-v5", "endpoint": "fraud-ep", "state": "FAIL", "alpha": 0.01,
        "deciding": {"metric": "recall", "segment": None}}
    assert doc["baseline"] == {"variant": "v5", "model_version": None}
    assert doc["candidate"] == {"variant": "v6-shadow", "model_version": "fraud-v6"}
    rows = {(r["metric"], r["segment"]): r for r in doc["rows"]}
    assert set(rows) == {("recall", None), ("recall", "merchant_category=0001"), ("recall", "merchant_category=5411"),
                         ("recall", "merchant_category=5812"), ("recall", "merchant_category=5813"),
                         ("error_rate", None)}
    pooled = rows[("recall", None)]
    assert set(pooled) == {"metric", "segment", "state", "judged", "difference", "interval", "tolerance", "labels",
                           "labels_needed"}
    assert pooled["state"] == "FAIL" and pooled["judged"] is True
    assert abs(pooled["difference"] - 0.05) < 1e-12  # (400 - 150) / 5000, positive = candidate worse
    lower, upper = pooled["interval"]
    assert 0.02 < lower < 0.05 < upper
    assert (pooled["tolerance"], pooled["labels"], pooled["labels_needed"]) == (0.02, 5000, None)
    small = rows[("recall", "merchant_category=5812")]
    assert (small["judged"], small["state"], small["labels"], small["labels_needed"]) == (False, "INCONCLUSIVE", 10, 20)
    undecided = rows[("recall", "merchant_category=5813")]
    assert undecided["judged"] and undecided["state"] == "INCONCLUSIVE" and undecided["labels_needed"] > 0
    assert rows[("recall", "merchant_category=0001")]["state"] == "PASS"


def test_no_counts_is_every_pooled_test_not_judged() -> None:
    doc = verdict_json(CMP, verdict_of({}))
    assert doc["state"] == "INCONCLUSIVE" and doc["deciding"] is None
    assert doc["rows"] == [
        {"metric": "recall", "segment": None, "state": "INCONCLUSIVE", "judged": False, "difference": None,
         "interval": None, "tolerance": 0.02, "labels": 0, "labels_needed": 30},
        {"metric": "error_rate", "segment": None, "state": "INCONCLUSIVE", "judged": False, "difference": None,
         "interval": None, "tolerance": 0.005, "labels": 0, "labels_needed": 30},
    ]


def test_rows_order_pooled_then_fail_then_undecided_then_the_rest() -> None:
    rows = ordered_rows(verdict_json(CMP, verdict_of(FAIL_CELLS)))
    assert [(r["metric"], r["segment"]) for r in rows] == [
        ("recall", None),
        ("recall", "merchant_category=5411"),  # FAIL
        ("recall", "merchant_category=5813"),  # INCONCLUSIVE, judged
        ("recall", "merchant_category=0001"),  # PASS
        ("recall", "merchant_category=5812"),  # not judged
        ("error_rate", None),
    ]


def test_render_table() -> None:
    lines = render(CMP, verdict_of(FAIL_CELLS)).splitlines()
    assert lines[0] == ("v6-vs-v5: FAIL  fraud-ep, candidate variant v6-shadow and model version fraud-v6 vs "
                        "baseline variant v5, alpha 0.01, decided by recall (pooled)")
    assert lines[1].split() == ["metric", "segment", "state", "difference", "interval", "tolerance", "labels"]
    pooled = lines[2].split()
    assert pooled[:4] == ["recall", "pooled", "FAIL", "*"] and pooled[4:6] == ["+5.00", "pp"]
    assert pooled[-3:] == ["2.00", "pp", "5,000"]
    assert lines[3].split()[:4] == ["recall", "merchant_category=5411", "FAIL", "+32.00"]
    assert "INCONCLUSIVE (needs ~" in lines[4]
    assert lines[6].split()[:5] == ["recall", "merchant_category=5812", "not", "judged", "(needs"]
    assert "not judged (needs 20 more)" in lines[6]
    assert lines[7].split()[:2] == ["error_rate", "pooled"] and "0.50 pp" in lines[7]
    assert lines[-1].startswith("  * the deciding test")
    # fixed width: the segment and labels columns line up on every row
    assert len({line.index(line.split()[1]) for line in lines[1:8]}) == 1
    assert len({len(line) for line in lines[1:8]}) == 1  # labels right-aligned at the end


def test_render_limit_keeps_pooled_and_fail_rows_and_counts_the_rest() -> None:
    text = render(CMP, verdict_of(FAIL_CELLS), limit=3)
    lines = text.splitlines()
    assert [line.split()[:2] for line in lines[2:4]] == [["recall", "pooled"], ["recall", "merchant_category=5411"]]
    assert lines[4] == "  … 3 more segments of recall (1 INCONCLUSIVE, 1 PASS, 1 not judged)"
    assert lines[5].split()[:2] == ["error_rate", "pooled"]
    # a limit below the pooled rows still shows every pooled row
    tight = render(CMP, verdict_of(FAIL_CELLS), limit=1).splitlines()
    assert "… 4 more segments of recall (1 FAIL, 1 INCONCLUSIVE, 1 PASS, 1 not judged)" in tight[3]
    assert tight[4].split()[:2] == ["error_rate", "pooled"]


def test_pass_and_inconclusive_headers() -> None:
    passing = verdict_of({("recall", "paired", None, None): [20_000, 100, 100],
                          ("error_rate", "unpaired", None, None): [50, 100_000, 50, 100_000]})
    assert passing.state.value == "PASS"
    assert render(CMP, passing).splitlines()[0].endswith("alpha 0.01, every judged test passes")
    waiting = render(CMP, verdict_of({})).splitlines()
    assert waiting[0].endswith("alpha 0.01, not decided yet")
    assert "not judged (needs 30 more)" in waiting[2]


def test_render_plain_survives_partial_documents() -> None:
    # what an older or newer daemon might send in /v1/status
    text = render_plain({"name": "x", "rows": [{"metric": "recall"}, "junk"]})
    assert text.splitlines()[0].startswith("x: ?")
    assert "recall" in text
    assert render_plain({}).splitlines()[-2] == "  no counts yet for this comparison"
