"""The demo's charts: per-model recall and precision over time with their 95 % bands, the
traffic steps, the deciding comparison's harm against its tolerance, and the moments of the
decisions, as PNG files.

`Timeline` collects what the story observed (pure); `series` turns it into plot data (pure);
`write_charts` draws it with matplotlib's Agg backend (no display needed).
"""
from __future__ import annotations

from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from service.demo.observe import Rate, Row

CHARTS = ("recall.png", "precision.png", "traffic.png", "comparison.png")


@dataclass(frozen=True)
class Point:
    """What was observed at ``t`` seconds after the traffic started."""

    t: float
    share: float  # the candidate's share of served traffic
    shadow: bool  # the candidate shadows every request
    recall: Mapping[str, Rate] = field(default_factory=dict)  # model label -> window recall
    precision: Mapping[str, Rate] = field(default_factory=dict)
    comparison: str | None = None  # the comparison being judged, and its worst test
    worst: Row | None = None


@dataclass(frozen=True)
class Marker:
    t: float
    text: str
    good: bool | None = None  # green / red / neutral line


@dataclass
class Timeline:
    points: list[Point] = field(default_factory=list)
    markers: list[Marker] = field(default_factory=list)


@dataclass(frozen=True)
class Series:
    t: tuple[float, ...]
    value: tuple[float, ...]
    low: tuple[float, ...]
    high: tuple[float, ...]


def series(points: Sequence[Point], metric: str) -> dict[str, Series]:
    """Per model label, the points where ``metric`` (``recall`` or ``precision``) had a sample."""
    out: dict[str, list[tuple[float, float, float, float]]] = {}
    for p in points:
        rates: Mapping[str, Rate] = getattr(p, metric)
        for label, rate in rates.items():
            value, band = rate.value, rate.band()
            if value is None or band is None:
                continue
            out.setdefault(label, []).append((p.t, value, band[0], band[1]))
    return {label: Series(*map(tuple, zip(*rows))) for label, rows in out.items()}  # type: ignore[arg-type]


def harm_series(points: Sequence[Point]) -> dict[str, list[tuple[float, float, float | None, float | None, float | None]]]:
    """Per comparison, (t, harm, interval low, high, tolerance) of its worst test over time."""
    out: dict[str, list[tuple[float, float, float | None, float | None, float | None]]] = {}
    for p in points:
        w = p.worst
        if p.comparison is None or w is None or w.difference is None:
            continue
        low, high = w.interval if w.interval else (None, None)
        out.setdefault(p.comparison, []).append((p.t, w.difference, low, high, w.tolerance))
    return out


def harm_limits(harms: Mapping[str, Sequence[tuple[float, float, float | None, float | None, float | None]]]
                ) -> tuple[float, float]:
    """The harm axis: every estimate and tolerance in view, the early, nearly unbounded intervals cut."""
    values = [r[1] for rows in harms.values() for r in rows]
    tolerances = [r[4] for rows in harms.values() for r in rows if r[4] is not None] or [0.05]
    span = max(tolerances)
    low = min([-2 * span, *(1.3 * v for v in values)])
    high = max([3 * span, *(1.5 * v for v in values)])
    return low, high


def _markers(ax: object, markers: Sequence[Marker]) -> None:
    for m in markers:
        colour = {True: "tab:green", False: "tab:red", None: "grey"}[m.good]
        ax.axvline(m.t, color=colour, linestyle="--", linewidth=1)  # type: ignore[attr-defined]
        ax.annotate(m.text, (m.t, 1.0), xycoords=("data", "axes fraction"), rotation=90,  # type: ignore[attr-defined]
                    va="top", ha="right", fontsize=7, color=colour)


def _shadow_span(ax: object, points: Sequence[Point]) -> None:
    shadow = [p.t for p in points if p.shadow]
    if shadow:
        ax.axvspan(min(shadow), max(shadow), color="tab:blue", alpha=0.06, label="shadow phase")  # type: ignore[attr-defined]


def write_charts(timeline: Timeline, directory: Path, *, hour_s: float = 1.0) -> list[Path]:
    """Draw the four charts into ``directory``; the paths written."""
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    directory.mkdir(parents=True, exist_ok=True)
    points, markers = timeline.points, timeline.markers
    xlabel = f"seconds since the traffic started (shadow phase: 1 s = {1 / hour_s:g} demo hour(s))"
    written: list[Path] = []

    def save(fig: Any, name: str) -> None:
        fig.tight_layout()
        path = directory / name
        fig.savefig(path, dpi=100)
        plt.close(fig)
        written.append(path)

    for metric in ("recall", "precision"):
        fig, ax = plt.subplots(figsize=(10, 5))
        _shadow_span(ax, points)
        for label, s in sorted(series(points, metric).items()):
            line, = ax.plot(s.t, s.value, label=label, linewidth=1.5)
            ax.fill_between(s.t, s.low, s.high, color=line.get_color(), alpha=0.2)
        _markers(ax, markers)
        ax.set(title=f"{metric} per model version: the daemon's window, with 95 % Wilson bands",
               xlabel=xlabel, ylabel=metric, ylim=(0, 1.05))
        ax.legend(loc="lower left", fontsize=8)
        save(fig, f"{metric}.png")

    fig, ax = plt.subplots(figsize=(10, 3.5))
    _shadow_span(ax, points)
    ax.step([p.t for p in points], [p.share * 100 for p in points], where="post", color="tab:orange",
            label="share of served traffic on the new model")
    _markers(ax, markers)
    ax.set(title="traffic: shadow phase (new model scores every request, serves none), then the linear shift",
           xlabel=xlabel, ylabel="% on the new model", ylim=(-5, 105))
    ax.legend(loc="upper left", fontsize=8)
    save(fig, "traffic.png")

    fig, ax = plt.subplots(figsize=(10, 5))
    harms = harm_series(points)
    low, high = harm_limits(harms)
    for name, rows in harms.items():
        t = [r[0] for r in rows]
        line, = ax.plot(t, [r[1] * 100 for r in rows], label=f"{name}: the worst test's harm")
        ax.fill_between(t, [max(low, r[2] if r[2] is not None else r[1]) * 100 for r in rows],
                        [min(high, r[3] if r[3] is not None else r[1]) * 100 for r in rows],
                        color=line.get_color(), alpha=0.2)
        tol = [r[4] * 100 for r in rows if r[4] is not None]
        if tol:
            ax.axhline(tol[-1], color=line.get_color(), linestyle=":", linewidth=1, label=f"{name}: its tolerance")
    _markers(ax, markers)
    ax.axhline(0, color="black", linewidth=0.5)
    ax.set(title="comparisons: the worst test's harm with its anytime-valid interval (FAIL once it clears the tolerance)",
           xlabel=xlabel, ylabel="harm, pp (+ = new model worse)", ylim=(low * 100, high * 100))
    ax.title.set_fontsize(10)
    ax.legend(loc="upper right", fontsize=8)
    save(fig, "comparison.png")
    return written
