"""`rollguard status`: the daemon's ``comparisons`` (verdict_json plus evidence) rendered as gate prints them."""
from __future__ import annotations

import json
from typing import Any

from pipelines.comparison.report import verdict_json
from service import status
from tests.unit.pipelines.test_comparison_report import CMP, FAIL_CELLS, verdict_of

NOW_MS = 1_795_000_000_000


def doc_with(comparisons: Any) -> dict[str, Any]:
    return {"now_ms": NOW_MS, "ready": True, "partitions": [0], "comparisons": comparisons}


def test_comparisons_section() -> None:
    item = {**verdict_json(CMP, verdict_of(FAIL_CELLS)),
            "evidence": {"partitions": 6, "stale": {"v6-vs-v5": 1}, "unreadable": ["comparison counts x: bad"]}}
    waiting = {**verdict_json(CMP, verdict_of({})), "name": "later"}
    text = status.render_status(doc_with([item, waiting]))
    assert "  comparisons       v6-vs-v5 FAIL, later INCONCLUSIVE" in text
    section = text.split("v6-vs-v5: FAIL  fraud-ep", 1)[1]
    lines = section.splitlines()
    assert lines[0].endswith("decided by recall (pooled)")
    assert lines[2].split()[:4] == ["recall", "pooled", "FAIL", "*"]
    assert ("  evidence: counts of 6 partition(s), 1 counted under another definition (left out), "
            "1 unreadable: comparison counts x: bad") in lines
    assert "later: INCONCLUSIVE  fraud-ep" in text
    # the section sits with the series, before the daemon's own health lines
    assert text.index("comparisons ") < text.index("pending joins")


def test_many_segments_are_limited() -> None:
    cells = dict(FAIL_CELLS)
    for i in range(40):
        cells[("recall", "paired", "merchant_category", f"{1000 + i}")] = [5, 0, 0]
    text = status.render_status(doc_with([verdict_json(CMP, verdict_of(cells))]))
    # 2 pooled rows and the 10 most telling segments (FAIL, undecided, PASS, then the nearest to min_samples)
    assert "  … 34 more segments of recall (34 not judged)" in text
    table = text.split("v6-vs-v5: FAIL", 1)[1].split("\n\n", 1)[0]
    rows = [line for line in table.splitlines() if line.endswith(("5,000", "150", "100", "4,000", "10", " 5", "48,000"))]
    assert len(rows) == status.COMPARISON_ROWS
    assert "merchant_category=5411  FAIL" in table and "merchant_category=0001  PASS" in table


def test_without_comparisons_nothing_changes() -> None:
    plain = {"now_ms": NOW_MS, "ready": True, "partitions": [0]}
    assert status.render_status(plain) == status.render_status({**plain, "comparisons": []})
    assert "comparisons" not in status.render_status(plain)
    assert "junk" not in status.render_status({**plain, "comparisons": ["junk", 3]})


def test_json_passes_the_comparisons_through() -> None:
    item = verdict_json(CMP, verdict_of(FAIL_CELLS))
    doc = doc_with([item])
    assert json.loads(json.dumps(doc, allow_nan=False))["comparisons"] == [item]
