"""A comparison's verdict for people and machines: one JSON shape and one fixed-width table.

`verdict_json` is what `rollguard gate --json`, the daemon's ``/v1/status`` (``comparisons``)
and anything else machine-facing carry; `render` and `render_plain` turn it into the table
that `gate`, `watch`, `status` and the demo print. The table is rendered from the JSON shape,
so the status command renders a document from the daemon exactly as `gate` renders its own.

Row order, per metric in the comparison's order: the pooled test, then the segments that
FAIL (surest first), the judged ones still INCONCLUSIVE (nearest to deciding first), those
that PASS, and those not judged yet (fewer than ``min_samples`` labels). Differences are
harm, in percentage points, positive = the candidate is worse (docs/deciding.md).
"""
from __future__ import annotations

import math
from collections.abc import Mapping, Sequence
from typing import Any

from pipelines.comparison.config import Arm, Comparison
from pipelines.verdict import Judgement, State, Verdict

POOLED = "pooled"  # the segment column of a pooled row


def _finite(x: float | None) -> float | None:
    return x if x is not None and math.isfinite(x) else None


def _count(x: float) -> int | float:
    return int(x) if float(x).is_integer() else x


def _arm(arm: Arm) -> dict[str, str | None]:
    return {"variant": arm.variant, "model_version": arm.model_version}


def row_json(comparison: Comparison, judgement: Judgement) -> dict[str, Any]:
    """One hypothesis of the table as plain data (see `verdict_json`)."""
    outcome = judgement.outcome
    spec = comparison.metric(judgement.metric)
    tolerance = outcome.tolerance if outcome is not None else (spec.tolerance if spec is not None else None)
    interval = None
    if outcome is not None:
        interval = [_finite(outcome.lower), _finite(outcome.upper)]
    return {
        "metric": judgement.metric,
        "segment": None if judgement.segment is None else str(judgement.segment),
        "state": judgement.state.value,
        "judged": judgement.judged,
        "difference": None if outcome is None else _finite(outcome.harm),
        "interval": interval,
        "tolerance": tolerance,
        "labels": 0 if outcome is None else _count(outcome.sample),
        "labels_needed": judgement.labels_needed,
    }


def verdict_json(comparison: Comparison, verdict: Verdict) -> dict[str, Any]:
    """The verdict as JSON-safe plain data (no NaN or infinity)::

        {"name", "endpoint", "baseline": {"variant", "model_version"}, "candidate": {...},
         "state": "PASS" | "INCONCLUSIVE" | "FAIL", "alpha", "min_samples",
         "deciding": {"metric", "segment"} | null,
         "rows": [{"metric", "segment": "attr=value" | null (pooled), "state", "judged",
                   "difference" (harm, + = candidate worse) | null, "interval": [lower, upper] | null,
                   "tolerance", "labels" (the test's sample), "labels_needed" | null}, ...]}

    ``rows`` are in the verdict engine's order (per metric: pooled, then segments by value);
    ``labels_needed`` is, for a judged INCONCLUSIVE row, the projected labels until it decides,
    and for a row not judged the labels it lacks to reach ``min_samples``.
    """
    deciding = verdict.deciding
    return {
        "name": comparison.name,
        "endpoint": comparison.endpoint,
        "baseline": _arm(comparison.baseline),
        "candidate": _arm(comparison.candidate),
        "state": verdict.state.value,
        "alpha": verdict.alpha,
        "min_samples": comparison.min_samples,
        "deciding": None if deciding is None else {
            "metric": deciding.metric,
            "segment": None if deciding.segment is None else str(deciding.segment),
        },
        "rows": [row_json(comparison, j) for j in verdict.judgements],
    }


def render(comparison: Comparison, verdict: Verdict, *, limit: int | None = None) -> str:
    """The verdict's table; with ``limit``, at most that many rows (pooled rows and the
    deciding one always shown) and a "… N more segments" line where rows were left out."""
    return render_plain(verdict_json(comparison, verdict), limit=limit)


# -- the table, from the plain shape ------------------------------------------------------


def _pp(x: Any, sign: bool = True) -> str:
    if isinstance(x, bool) or not isinstance(x, (int, float)) or not math.isfinite(x):
        return "?"
    text = f"{x * 100:+.2f}" if sign else f"{x * 100:.2f}"
    return text.replace("-0.00", "+0.00") if sign else text


def _int(x: Any) -> str:
    if isinstance(x, bool) or not isinstance(x, (int, float)):
        return "-"
    return f"{x:,.0f}" if float(x).is_integer() else f"{x:,.1f}"


def arm_text(arm: Any) -> str:
    """``{"variant": "v5", "model_version": None}`` -> ``"variant v5"``."""
    if not isinstance(arm, Mapping):
        return "?"
    parts = [f"variant {arm['variant']}"] if arm.get("variant") else []
    if arm.get("model_version"):
        parts.append(f"model version {arm['model_version']}")
    return " and ".join(parts) or "?"


def _test_name(item: Mapping[str, Any]) -> str:
    segment = item.get("segment")
    return f"{item.get('metric', '?')} {segment if segment else '(pooled)'}"


def header(doc: Mapping[str, Any]) -> str:
    """One line: name, state, arms, alpha and the deciding test."""
    state = doc.get("state", "?")
    line = (f"{doc.get('name', '?')}: {state}  {doc.get('endpoint', '?')}, candidate {arm_text(doc.get('candidate'))} "
            f"vs baseline {arm_text(doc.get('baseline'))}, alpha {doc.get('alpha', '?')}")
    deciding = doc.get("deciding")
    if isinstance(deciding, Mapping):
        line += f", decided by {_test_name(deciding)}"
    elif state == State.PASS.value:
        line += ", every judged test passes"
    elif state == State.INCONCLUSIVE.value:
        line += ", not decided yet"
    return line


def _state_text(row: Mapping[str, Any]) -> str:
    needed = row.get("labels_needed")
    if not row.get("judged"):
        return f"not judged (needs {_int(needed)} more)" if needed is not None else "not judged"
    state = str(row.get("state", "?"))
    if state == State.INCONCLUSIVE.value:
        return f"{state} (needs ~{_int(needed)} more)" if needed is not None else f"{state} (estimate at the tolerance)"
    return state


def _rank(row: Mapping[str, Any]) -> int:
    """0 pooled, then 1 FAIL, 2 INCONCLUSIVE judged, 3 PASS, 4 not judged."""
    if row.get("segment") is None:
        return 0
    if not row.get("judged"):
        return 4
    return {State.FAIL.value: 1, State.INCONCLUSIVE.value: 2, State.PASS.value: 3}.get(str(row.get("state")), 4)


def _within(row: Mapping[str, Any]) -> tuple[float, str]:
    rank, seg = _rank(row), str(row.get("segment") or "")
    interval = row.get("interval") or [None, None]
    if rank == 1:  # surest first: the largest lower bound
        lower = interval[0] if isinstance(interval[0], (int, float)) else -math.inf
        return (-lower, seg)
    if rank == 2:  # nearest to deciding first
        needed = row.get("labels_needed")
        return (float(needed) if isinstance(needed, (int, float)) else math.inf, seg)
    if rank == 4:  # the ones nearest to min_samples first
        needed = row.get("labels_needed")
        return (float(needed) if isinstance(needed, (int, float)) else math.inf, seg)
    return (0.0, seg)


def ordered_rows(doc: Mapping[str, Any]) -> list[Mapping[str, Any]]:
    """The rows in table order: per metric (first-seen order), pooled, FAIL, INCONCLUSIVE judged, the rest."""
    rows = [r for r in doc.get("rows") or [] if isinstance(r, Mapping)]
    metrics = list(dict.fromkeys(str(r.get("metric")) for r in rows))
    out: list[Mapping[str, Any]] = []
    for metric in metrics:
        mine = [r for r in rows if str(r.get("metric")) == metric]
        out += sorted(mine, key=lambda r: (_rank(r), *_within(r)))
    return out


def _is_deciding(row: Mapping[str, Any], deciding: Any) -> bool:
    return (isinstance(deciding, Mapping) and row.get("metric") == deciding.get("metric")
            and row.get("segment") == deciding.get("segment"))


def _shown(rows: Sequence[Mapping[str, Any]], deciding: Any, limit: int | None) -> set[int]:
    if limit is None or limit >= len(rows):
        return set(range(len(rows)))
    keep = {i for i, r in enumerate(rows) if _rank(r) == 0 or _is_deciding(r, deciding)}
    # then the most telling segment rows across metrics: FAIL, INCONCLUSIVE judged, PASS, not judged
    rest = sorted((i for i in range(len(rows)) if i not in keep), key=lambda i: (_rank(rows[i]), i))
    for i in rest:
        if len(keep) >= limit:
            break
        keep.add(i)
    return keep


def _hidden_line(metric: str, hidden: Sequence[Mapping[str, Any]]) -> str:
    kinds: dict[str, int] = {}
    for r in hidden:
        kind = "not judged" if not r.get("judged") else str(r.get("state", "?"))
        kinds[kind] = kinds.get(kind, 0) + 1
    order = [State.FAIL.value, State.INCONCLUSIVE.value, State.PASS.value, "not judged"]
    detail = ", ".join(f"{kinds[k]} {k}" for k in sorted(kinds, key=lambda k: (order.index(k) if k in order else 9, k)))
    return f"  … {len(hidden)} more segments of {metric} ({detail})"


def render_plain(doc: Mapping[str, Any], *, limit: int | None = None) -> str:
    """The table of a `verdict_json` document (or the same shape from the daemon's status)."""
    rows = ordered_rows(doc)
    deciding = doc.get("deciding")
    shown = _shown(rows, deciding, limit)
    table: list[list[str] | str] = []
    columns = ["metric", "segment", "state", "difference", "interval", "tolerance", "labels"]
    cells: list[list[str]] = [columns]
    for metric in dict.fromkeys(str(r.get("metric")) for r in rows):
        hidden = []
        for i, r in enumerate(rows):
            if str(r.get("metric")) != metric:
                continue
            if i not in shown:
                hidden.append(r)
                continue
            interval = r.get("interval")
            interval_text = "-"
            if isinstance(interval, Sequence) and len(interval) == 2:
                interval_text = f"[{_pp(interval[0])}, {_pp(interval[1])}] pp"
            difference = r.get("difference")
            line = [
                str(r.get("metric", "?")),
                str(r.get("segment") or POOLED),
                _state_text(r) + (" *" if _is_deciding(r, deciding) else ""),
                "-" if difference is None else f"{_pp(difference)} pp",
                interval_text,
                f"{_pp(r.get('tolerance'), sign=False)} pp",
                _int(r.get("labels")),
            ]
            cells.append(line)
            table.append(line)
        if hidden:
            table.append(_hidden_line(metric, hidden))
    widths = [max(len(c[i]) for c in cells) for i in range(len(columns))]
    right = {3, 5, 6}  # numbers right-aligned

    def fmt(line: list[str]) -> str:
        return "  " + "  ".join(c.rjust(widths[i]) if i in right else c.ljust(widths[i])
                                for i, c in enumerate(line)).rstrip()

    out = [header(doc), fmt(columns)]
    out += [item if isinstance(item, str) else fmt(item) for item in table]
    if not rows:
        out.append("  no counts yet for this comparison")
    if isinstance(deciding, Mapping):
        out.append("  * the deciding test (Holm rejected it first); difference = harm, + = candidate worse")
    else:
        out.append("  difference = harm, + = candidate worse; interval: FAIL if above the tolerance, PASS if below")
    return "\n".join(out) + "\n"
