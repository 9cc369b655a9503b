"""The backtest's report: the replay summary, alarm table and comparison lines for people, and one PNG per alarm."""
from __future__ import annotations

import math
import re
from collections.abc import Sequence
from datetime import datetime, timezone
from pathlib import Path

from alarms import spec as alarm_spec
from alarms.evaluator import format_time
from service.backtest.comparisons import Change, ComparisonResult
from service.backtest.evaluation import AlarmResult
from service.backtest.replay import Replay


class PlotError(RuntimeError):
    """A plot cannot be written (matplotlib missing); one line."""


def duration(seconds: float | None) -> str:
    """``1h05m``, ``12m``, ``45s``; ``-`` for None."""
    if seconds is None:
        return "-"
    s = int(round(seconds))
    hours, rest = divmod(s, 3600)
    minutes, secs = divmod(rest, 60)
    if hours:
        return f"{hours}h{minutes:02d}m"
    if minutes:
        return f"{minutes}m{secs:02d}s" if secs else f"{minutes}m"
    return f"{secs}s"


def render_replay(replayed: Replay, tick_seconds: float) -> str:
    """The replay summary for people."""
    lines = []
    if replayed.start_ms is None or replayed.end_ms is None:
        span = "no line had a usable event time"
    else:
        span = f"{format_time(replayed.start_ms / 1000)} .. {format_time(replayed.end_ms / 1000)}"
    lines.append(
        f"replayed {replayed.captures} capture lines and {replayed.labels} label lines, {span} "
        f"(simulated clock, {replayed.ticks} ticks of {tick_seconds:g} s)"
    )
    if replayed.bad:
        reasons = ", ".join(f"{reason} {n}" for reason, n in sorted(replayed.bad.items(), key=lambda kv: (-kv[1], kv[0])))
        lines.append(f"bad lines: {replayed.bad_total} ({reasons})")
        lines += [f"  {example}" for example in replayed.bad_examples]
    else:
        lines.append("bad lines: 0")
    j = replayed.join
    lines.append(
        f"join: {j.get('captures', 0)} captures, {j.get('labels', 0)} labels, "
        f"{j.get('duplicate_captures', 0)} duplicate captures, {j.get('corrections', 0)} corrections, "
        f"{j.get('expired', 0)} expired, {j.get('orphan_labels', 0)} orphan labels; the join still holds "
        f"{replayed.pending_captures} captures (kept for label_ttl) and {replayed.pending_labels} labels (label_wait)"
    )
    return "\n".join(lines)


def render_table(results: Sequence[AlarmResult]) -> str:
    """One row per alarm for people, plus a line per alarm that matched no data."""
    header = ("alarm", "fired", "first ALARM", "first bad datapoint", "delay", "false", "in ALARM")
    rows = [header]
    for r in results:
        o = r.outcome
        delay = duration(o.detection_delay)
        if o.first_bad is not None and o.detected_at is None:
            delay = "missed"
        rows.append((
            r.alarm.name,
            str(len(o.alarm_entries)),
            format_time(o.alarm_entries[0]) if o.alarm_entries else "-",
            format_time(o.first_bad.start) if o.first_bad else "-",
            delay,
            str(o.false_alarms),
            duration(o.alarm_seconds),
        ))
    widths = [max(len(row[i]) for row in rows) for i in range(len(header))]
    out = ["  ".join(cell.ljust(w) for cell, w in zip(row, widths)).rstrip() for row in rows]
    for r in results:
        if not any(r.data_found.values()):
            out.append(
                f"note: {r.alarm.name} matched no datum (dimensions {dict(r.alarm.dimensions)}); "
                "check the spec's endpoint, variant, model_version and segment against the inputs"
            )
    if results and results[0].bad is not None:
        bad = results[0].bad
        to = "open" if bad.end is None else format_time(bad.end)
        out.append(f"bad interval: {format_time(bad.start)} .. {to}; ALARM entries outside it are false alarms")
    elif results:
        out.append("no bad interval given: the history is taken as good, every ALARM entry is a false alarm")
    return "\n".join(out)


def _pp(x: float | None) -> str:
    return "?" if x is None or not math.isfinite(x) else f"{x * 100:+.2f}"


def _labels(x: float) -> str:
    return f"{x:,.0f}" if float(x).is_integer() else f"{x:,.1f}"


def change_text(change: Change) -> str:
    """``2026-11-21T09:24:00Z FAIL recall merchant_category=5411 +12.30 pp [+5.10, +19.00] (812 labels)``."""
    text = f"{format_time(change.at_ms / 1000)} {change.state.value}"
    if change.metric is not None:
        text += f" {change.metric} {change.segment or '(pooled)'} {_pp(change.difference)} pp"
        if change.interval is not None:
            text += f" [{_pp(change.interval[0])}, {_pp(change.interval[1])}]"
    return f"{text} ({_labels(change.labels)} labels)"


def render_comparisons(results: Sequence[ComparisonResult]) -> str:
    """One line per comparison: its final state, then its state changes in order."""
    out = []
    for r in results:
        if not r.changes:
            out.append(f"comparison {r.comparison.name}: no tick to judge at (no line had an event time)")
            continue
        changes = "; ".join(change_text(c) for c in r.changes)
        out.append(f"comparison {r.comparison.name}: final {r.final.value if r.final else '-'}; changes: {changes}")
    if any(c.metric is not None for r in results for c in r.changes):
        out.append("a FAIL names its deciding test: harm (+ = candidate worse) and its interval in pp, on its labels")
    return "\n".join(out)


def plot_alarm(result: AlarmResult, path: Path) -> None:
    """Write a PNG: the alarm's value per evaluated period vs the threshold, ALARM shaded, bad interval marked."""
    try:
        from matplotlib.backends.backend_agg import FigureCanvasAgg
        from matplotlib.dates import AutoDateLocator, ConciseDateFormatter, date2num
        from matplotlib.figure import Figure
    except ImportError as ex:  # an optional dependency: pip install 'rollguard[plot]'
        raise PlotError(f"--plot needs matplotlib (pip install 'rollguard[plot]'): {ex}") from None

    def when(t: float) -> float:
        # matplotlib's date numbers, so the axis formats UTC times
        return float(date2num(datetime.fromtimestamp(t, tz=timezone.utc)))

    a, o = result.alarm, result.outcome
    # A figure without pyplot: no global state and no backend switch in the caller's process.
    fig = Figure(figsize=(11, 4.2), dpi=100)
    FigureCanvasAgg(fig)
    ax = fig.add_subplot(1, 1, 1)
    xs = [when(p.start) for p in result.periods]
    ys = [math.nan if p.value is None else p.value for p in result.periods]
    ax.plot(xs, ys, color="tab:blue", linewidth=1.2, marker=".", markersize=3, label=f"{a.metric} per period")
    breaching = [(x, y) for x, y, p in zip(xs, ys, result.periods) if p.breaching]
    if breaching:
        ax.scatter([x for x, _ in breaching], [y for _, y in breaching], color="tab:red", s=10, zorder=3,
                   label="breaching period")
    op = {v: k for k, v in alarm_spec.COMPARISONS.items()}.get(a.comparison, a.comparison)
    ax.axhline(a.threshold, color="tab:red", linestyle="--", linewidth=1, label=f"threshold ({op} {a.threshold:g})")
    for i, (enter, leave) in enumerate(o.alarm_intervals):
        ax.axvspan(when(enter), when(leave), color="tab:red", alpha=0.18, linewidth=0,
                   label="in ALARM" if i == 0 else None)
    if result.bad is not None:
        bad_end = result.bad.end if result.bad.end is not None else result.end
        ax.axvspan(when(result.bad.start), when(bad_end), facecolor="tab:orange", alpha=0.12, hatch="//",
                   edgecolor="tab:orange", linewidth=0, label="bad interval")
        for edge in (result.bad.start, result.bad.end):
            if edge is not None:
                ax.axvline(when(edge), color="tab:orange", linewidth=1.5)
    if o.first_bad is not None:
        ax.axvline(when(o.first_bad.start), color="tab:purple", linestyle=":", linewidth=1.2,
                   label="first bad datapoint")
    ax.set_xlim(when(result.start), when(result.end))
    locator = AutoDateLocator()
    ax.xaxis.set_major_locator(locator)
    ax.xaxis.set_major_formatter(ConciseDateFormatter(locator))
    ax.set_xlabel("period start (UTC)")
    # the value the alarm evaluates: with a sample guard, a thin period reads as the safe value
    ax.set_ylabel(a.metric if a.kind != "expression" else "value")
    ax.grid(True, alpha=0.3)
    ax.set_title(
        f"{a.name}\n{a.datapoints_to_alarm} of {a.evaluation_periods} periods of {a.period} s, "
        f"min {a.min_samples} samples, missing data {a.treat_missing_data}; "
        f"fired {len(o.alarm_entries)}x, {o.false_alarms} false, delay {duration(o.detection_delay)}",
        fontsize=10,
    )
    ax.legend(loc="best", fontsize=8, framealpha=0.8)
    fig.tight_layout()
    path.parent.mkdir(parents=True, exist_ok=True)
    fig.savefig(path, format="png")


def plot_name(alarm: alarm_spec.Alarm) -> str:
    """The PNG file name of an alarm: its CloudWatch name with unsafe characters replaced."""
    return re.sub(r"[^A-Za-z0-9._-]", "_", alarm.name) + ".png"
