"""The demo on screen: a live terminal view (rich) on a TTY, plain lines otherwise (tests, CI, a
pipe). Both show the same `Screen`: the phase, the traffic split, per-model window rates with
their sample sizes, each comparison's state with its worst segment and the alarm states; each
decision is one line, printed as it happens (above the live view).
"""
from __future__ import annotations

import sys
import threading
import time
from collections.abc import Callable
from dataclasses import dataclass, field
from datetime import datetime
from typing import Any, Protocol, TextIO

from service.demo.observe import ComparisonView, Rate, VariantView, explain

@dataclass(frozen=True)
class AlarmLine:
    name: str
    state: str  # OK | ALARM | INSUFFICIENT_DATA | "not evaluated yet"
    value: float | None = None
    at: float | None = None  # the evaluation instant, epoch seconds


@dataclass
class Screen:
    """Everything the view shows; the story updates it, the view only reads it."""

    title: str = ""
    phase: str = "starting"
    clock: str = ""  # "shadow day 1 03:00", "shift 30 %, bake 4 of 10 s"
    traffic: str = ""
    note: str = ""
    variants: list[VariantView] = field(default_factory=list)
    comparisons: list[ComparisonView] = field(default_factory=list)
    alarms: list[AlarmLine] = field(default_factory=list)


class View(Protocol):
    def event(self, line: str) -> None: ...
    def refresh(self, screen: Screen) -> None: ...
    def print(self, text: str) -> None: ...
    def close(self) -> None: ...


def _stamp(now: float | None = None) -> str:
    return datetime.fromtimestamp(time.time() if now is None else now).strftime("%H:%M:%S")


def fmt_rate(rate: Rate, percent: bool = False) -> str:
    value = rate.value
    if value is None:
        return "-"
    text = f"{value * 100:.2f} %" if percent else f"{value:.3f}"
    return f"{text} n={rate.trials:,.0f}"


def variant_line(v: VariantView) -> str:
    p99 = "-" if v.p99_ms is None else f"{v.p99_ms:.0f} ms"
    return (f"{v.label}: recall {fmt_rate(v.recall)}, precision {fmt_rate(v.precision)}, p99 {p99} "
            f"n={v.latency_n:,.0f}, errors {fmt_rate(v.error_rate, percent=True)}")


class PlainView:
    """Plain lines: each decision as it happens, and the state every ``every_s`` seconds."""

    def __init__(self, out: TextIO | None = None, every_s: float = 10.0, clock: Callable[[], float] = time.time) -> None:
        self.out, self.every_s, self.clock = out or sys.stdout, every_s, clock
        self._last = 0.0
        self._lock = threading.Lock()

    def _write(self, text: str) -> None:
        with self._lock:
            self.out.write(text if text.endswith("\n") else text + "\n")
            self.out.flush()

    def event(self, line: str) -> None:
        self._write(f"[{_stamp(self.clock())}] {line}")

    def print(self, text: str) -> None:
        self._write(text)

    def refresh(self, screen: Screen) -> None:
        now = self.clock()
        if now - self._last < self.every_s or screen.phase in ("starting", "done"):
            return
        self._last = now
        parts = [f"{screen.clock}  {screen.traffic}"]
        parts += [f"  {variant_line(v)}" for v in screen.variants]
        parts += [f"  {explain(c)}" for c in screen.comparisons]
        if screen.alarms:
            parts.append("  alarms: " + ", ".join(f"{a.name} {a.state}" for a in screen.alarms))
        self._write(f"[{_stamp(now)}] " + "\n".join(parts))

    def close(self) -> None:
        pass


_STATE_STYLE = {"PASS": "bold green", "FAIL": "bold red", "INCONCLUSIVE": "yellow",
                "OK": "green", "ALARM": "bold red", "INSUFFICIENT_DATA": "yellow"}


class LiveView:
    """rich's Live display, redrawn from the `Screen`; tables and decisions print above it."""

    def __init__(self, console: Any = None) -> None:
        from rich.console import Console
        from rich.live import Live

        self.console = console or Console()
        self._screen = Screen()
        self._live = Live(console=self.console, refresh_per_second=4, get_renderable=self._render,
                          redirect_stdout=False, redirect_stderr=False)
        self._live.start()

    def event(self, line: str) -> None:
        from rich.text import Text

        self._live.console.print(Text(f"[{_stamp()}] ", style="dim") + Text(line))

    def print(self, text: str) -> None:
        from rich.text import Text

        self._live.console.print(Text(text.rstrip("\n")))

    def refresh(self, screen: Screen) -> None:
        self._screen = screen

    def close(self) -> None:
        self._live.stop()

    def _render(self) -> Any:
        from rich.console import Group
        from rich.panel import Panel
        from rich.table import Table
        from rich.text import Text

        s = self._screen
        head = Text()
        head.append(f"{s.phase.upper()}", style="bold cyan")
        head.append(f"  {s.clock}\n")
        head.append(f"traffic: {s.traffic}")
        if s.note:
            head.append(f"\n{s.note}", style="dim")
        models = Table(expand=True, title="per model version, the daemon's window (GET /v1/status)", title_justify="left")
        for column in ("model", "variant", "recall", "precision", "p99 latency", "error rate"):
            models.add_column(column)
        for v in s.variants:
            p99 = "-" if v.p99_ms is None else f"{v.p99_ms:.0f} ms n={v.latency_n:,.0f}"
            models.add_row(v.label, v.variant, fmt_rate(v.recall), fmt_rate(v.precision), p99,
                           fmt_rate(v.error_rate, percent=True))
        verdicts = Text()
        for c in s.comparisons:
            verdicts.append(f"{c.name}: ", style="bold")
            verdicts.append(c.state, style=_STATE_STYLE.get(c.state, ""))
            verdicts.append(f"  {explain(c).split(': ', 1)[-1]}\n")
        alarms = Text()
        for a in s.alarms:
            alarms.append(f"{a.name}  ")
            alarms.append(a.state, style=_STATE_STYLE.get(a.state, "dim"))
            if a.value is not None:
                alarms.append(f"  value {a.value:g}", style="dim")
            if a.at is not None:
                alarms.append(f"  evaluated {_stamp(a.at)}", style="dim")
            alarms.append("\n")
        parts: list[Any] = [Panel(head, title=s.title, title_align="left"), models]
        if s.comparisons:
            parts.append(Panel(verdicts, title="comparisons (judged as labels arrive)", title_align="left"))
        if s.alarms:
            parts.append(Panel(alarms, title="guardrail alarms (AutoRollbackConfiguration)", title_align="left"))
        return Group(*parts)


def make_view(plain: bool | None = None, every_s: float = 10.0) -> View:
    """The live view on a terminal, plain lines otherwise (or when ``plain``)."""
    if plain is None:
        plain = not sys.stdout.isatty()
    if not plain:
        try:
            return LiveView()
        except ImportError:  # rich missing: plain lines still tell the story
            pass
    return PlainView(every_s=every_s)
