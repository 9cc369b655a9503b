"""What the demo shows, read from rollguard itself: per model version, the daemon's window rates
with their sample sizes (``/v1/status``), and each comparison's verdict (gate's look at the state
location). Plain values the live view, the log and the charts share. Pure.
"""
from __future__ import annotations

import math
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field
from typing import Any

from pipelines import metrics
from pipelines.comparison.config import Comparison
from pipelines.comparison.report import header, verdict_json
from pipelines.verdict import Verdict

Z95 = 1.959963984540054


@dataclass(frozen=True)
class Rate:
    """``events`` out of ``trials`` with its Wilson 95 % interval."""

    events: float = 0.0
    trials: float = 0.0

    @property
    def value(self) -> float | None:
        return self.events / self.trials if self.trials > 0 else None

    def band(self, z: float = Z95) -> tuple[float, float] | None:
        n = self.trials
        if n <= 0:
            return None
        p = min(1.0, max(0.0, self.events / n))
        centre = (p + z * z / (2 * n)) / (1 + z * z / n)
        half = z * math.sqrt(p * (1 - p) / n + z * z / (4 * n * n)) / (1 + z * z / n)
        return max(0.0, centre - half), min(1.0, centre + half)


@dataclass(frozen=True)
class VariantView:
    """One model version's window in one variant (``/v1/status`` series with a ModelVersion)."""

    variant: str
    version: str
    shadow: bool
    precision: Rate
    recall: Rate
    error_rate: Rate
    p99_ms: float | None
    latency_n: float

    @property
    def label(self) -> str:
        return f"{self.version} ({'shadow' if self.shadow else 'served'})"


def variants(doc: Mapping[str, Any], shadow_variants: Sequence[str]) -> list[VariantView]:
    """The model-version series of a ``/v1/status`` document, served before shadow, by version."""
    out = []
    for series in doc.get("series") or []:
        dims = series.get("dimensions") or {}
        version = dims.get(metrics.MODEL_VERSION)
        if not version:
            continue
        s: Mapping[str, Any] = series.get("samples") or {}
        g: Mapping[str, Any] = series.get("gauges") or {}

        def n(name: str) -> float:
            value = s.get(name, 0.0)
            return float(value) if isinstance(value, (int, float)) else 0.0

        tp, fp, fn = n(metrics.TRUE_POSITIVES), n(metrics.FALSE_POSITIVES), n(metrics.FALSE_NEGATIVES)
        p99 = g.get(next(k for k, pct in metrics.LATENCY_GAUGES.items() if pct == 99.0))
        variant = str(dims.get(metrics.VARIANT_NAME, "?"))
        out.append(VariantView(
            variant, str(version), variant in shadow_variants,
            precision=Rate(tp, tp + fp), recall=Rate(tp, tp + fn),
            error_rate=Rate(n(metrics.ERRORS), n(metrics.INVOCATIONS)),
            p99_ms=float(p99) if isinstance(p99, (int, float)) else None,
            latency_n=n("LatencySamples"),
        ))
    return sorted(out, key=lambda v: (v.shadow, v.version, v.variant))


@dataclass(frozen=True)
class Row:
    """One test of a comparison's table (pipelines.comparison.report's row shape, typed)."""

    metric: str
    segment: str | None
    state: str
    judged: bool
    difference: float | None
    interval: tuple[float | None, float | None] | None
    tolerance: float | None
    labels: float
    labels_needed: float | None

    @classmethod
    def of(cls, row: Mapping[str, Any]) -> Row:
        interval = row.get("interval")
        return cls(str(row["metric"]), row.get("segment"), str(row["state"]), bool(row.get("judged")),
                   row.get("difference"), tuple(interval) if interval else None,  # type: ignore[arg-type]
                   row.get("tolerance"), float(row.get("labels") or 0), row.get("labels_needed"))

    @property
    def where(self) -> str:
        return f"{self.metric} {self.segment or '(pooled)'}"

    def describe(self, where: bool = True) -> str:
        """``recall merchant_category=5411 +28.1 pp [+9.0, +47.2] pp, tolerance 5 pp, 104 labels``."""
        text = f"{self.where} {_pp(self.difference)}" if where else _pp(self.difference)
        if self.interval is not None:
            text += f" [{_pp(self.interval[0], unit=False)}, {_pp(self.interval[1], unit=False)}] pp"
        if self.tolerance is not None:
            text += f", tolerance {self.tolerance * 100:g} pp"
        return text + f", {self.labels:,.0f} labels"


def _pp(x: float | None, unit: bool = True) -> str:
    if x is None or not math.isfinite(x):
        return "?"
    return f"{x * 100:+.1f}" + (" pp" if unit else "")


@dataclass(frozen=True)
class ComparisonView:
    name: str
    state: str
    headline: str  # report.header: name, state, arms, alpha, the deciding test
    rows: tuple[Row, ...] = field(repr=False)
    deciding: Row | None = None

    @property
    def worst(self) -> Row | None:
        """The deciding test, else the segment nearest to FAIL: the largest lower bound of the
        harm, in tolerances above the tolerance (metrics' tolerances differ tenfold), among the
        judged segments (all of them while none is judged)."""
        if self.deciding is not None:
            return self.deciding
        segments = [r for r in self.rows if r.segment is not None and r.difference is not None]
        segments = [r for r in segments if r.judged] or segments
        if not segments:
            return None

        def nearness(r: Row) -> float:
            low = r.interval[0] if r.interval else None
            if low is None or not math.isfinite(low):
                return -math.inf
            return (low - (r.tolerance or 0.0)) / (r.tolerance or 1.0)

        return max(segments, key=lambda r: (nearness(r), r.difference or 0.0))

    def pooled(self, metric: str) -> Row | None:
        return next((r for r in self.rows if r.metric == metric and r.segment is None), None)


def comparison_view(comparison: Comparison, verdict: Verdict) -> ComparisonView:
    doc = verdict_json(comparison, verdict)
    rows = tuple(Row.of(r) for r in doc["rows"])
    deciding = doc.get("deciding")
    chosen = None
    if deciding:
        chosen = next((r for r in rows if r.metric == deciding["metric"] and r.segment == deciding["segment"]), None)
    return ComparisonView(comparison.name, doc["state"], header(doc), rows, chosen)


def explain(view: ComparisonView) -> str:
    """One line for a comparison's state, naming what decided it or what it waits for."""
    worst = view.worst
    if view.state == "FAIL" and worst is not None:
        text = f"{view.name} FAIL: {worst.describe()}"
        recall = view.pooled("recall")
        if recall is not None and worst.segment is not None and worst.metric == "recall":
            text += f"; pooled recall {recall.describe(where=False)} ({recall.state.lower()})"
        return text
    if view.state == "PASS":
        return f"{view.name} PASS: not worse than the baseline by more than the tolerance, pooled and in every segment"
    if worst is None:
        return f"{view.name} INCONCLUSIVE: no labelled counts yet"
    undecided = [r for r in view.rows if not r.judged or r.state == "INCONCLUSIVE"]
    text = (f"{view.name} INCONCLUSIVE, {len(view.rows) - len(undecided)} of {len(view.rows)} tests decided; "
            f"nearest to FAIL: {worst.describe()}")
    if len(undecided) <= 3:
        text += "; undecided: " + ", ".join(r.where + (f" (needs ~{r.labels_needed:,.0f} more)" if r.labels_needed else "")
                                            for r in undecided)
    return text
